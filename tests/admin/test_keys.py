"""The API key pages: issuing (plaintext shown once), revoking, rotating, last use, and who may do which."""

from datetime import UTC, datetime

from django.urls import reverse

from events_app.models import ApiKey
from tests.support.users import make_user


def test_issuing_a_key_shows_the_plaintext_once_and_stores_only_its_hash(admin_client, game_key, api, make_install):
    game = game_key[0].game
    form = admin_client.get(reverse("admin:events_app_apikey_add"), {"game": game.pk})

    response = admin_client.post(reverse("admin:events_app_apikey_add"), {"game": game.pk, "name": "ios-prod"})

    assert form.status_code == 200
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    (api_key, plaintext) = response.context["issued"][0]
    assert plaintext in response.content.decode()
    assert ApiKey.objects.get(pk=api_key.pk).key_hash == ApiKey.hash(plaintext)
    key_page = admin_client.get(reverse("admin:events_app_apikey_change", args=[api_key.pk])).content.decode()
    assert plaintext not in key_page
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert api.post("/v1/events", make_install(), format="json").status_code == 202


def test_revoking_a_key_on_its_page_makes_the_api_refuse_it(admin_client, game_key, api, make_install):
    api_key = game_key[0]
    assert api.post("/v1/events", make_install(), format="json").status_code == 202

    response = admin_client.post(reverse("admin:events_app_apikey_revoke", args=[api_key.pk]), follow=True)

    assert "Revoked key" in next(str(m) for m in response.context["messages"])
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is not None
    assert api.post("/v1/events", make_install(), format="json").status_code == 401
    assert admin_client.get(reverse("admin:events_app_apikey_revoke", args=[api_key.pk])).status_code == 405


def test_rotating_keys_shows_the_new_plaintexts_and_revokes_the_old(admin_client, game_key, other_game_key):
    old = [game_key[0], other_game_key[0]]

    response = admin_client.post(
        reverse("admin:events_app_apikey_changelist"),
        {"action": "rotate_selected", "_selected_action": [k.pk for k in old]},
    )

    assert response.status_code == 200
    issued = response.context["issued"]
    assert {new.game.slug for new, _ in issued} == {"space-raiders", "moon-miners"}
    assert all(ApiKey.objects.get(pk=k.pk).revoked_at is not None for k in old)
    for new, plaintext in issued:
        assert ApiKey.objects.get(key_hash=ApiKey.hash(plaintext)).pk == new.pk
        assert new.name == "tests"


def test_revoke_action_reports_how_many_keys_it_revoked(admin_client, game_key, other_game_key):
    admin_client.post(reverse("admin:events_app_apikey_revoke", args=[other_game_key[0].pk]))

    response = admin_client.post(
        reverse("admin:events_app_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [game_key[0].pk, other_game_key[0].pk]},
        follow=True,
    )

    assert "Revoked 1 key; skipped 1 already revoked." in [str(m) for m in response.context["messages"]]


def test_key_list_shows_last_use(admin_client, api, game_key, make_install):
    api.post("/v1/events", make_install(), format="json")
    ApiKey.objects.filter(pk=game_key[0].pk).update(last_used_at=datetime(2026, 11, 20, 8, 30, tzinfo=UTC))

    html = admin_client.get(reverse("admin:events_app_apikey_changelist")).content.decode()

    assert f"{game_key[0].prefix}…" in html
    assert '<td class="field-last_used">2026-11-20 08:30:00 UTC</td>' in html
    assert "key-active" in html


def test_read_only_operator_cannot_issue_or_revoke_keys(operator, game_key):
    assert operator.get(reverse("admin:events_app_apikey_add")).status_code == 403
    assert operator.post(reverse("admin:events_app_apikey_revoke", args=[game_key[0].pk])).status_code == 403
    assert ApiKey.objects.get(pk=game_key[0].pk).revoked_at is None


def test_rotating_a_key_needs_the_add_permission(client, game_key):
    """A rotation issues a new key: whoever may only change keys may revoke them, not create them."""
    client.force_login(make_user("key-changer", ["view_apikey", "change_apikey"]))
    api_key = game_key[0]
    change_url = reverse("admin:events_app_apikey_change", args=[api_key.pk])
    keys_url = reverse("admin:events_app_apikey_changelist")

    page = client.get(change_url).content.decode()
    listing = client.get(keys_url).content.decode()
    button = client.post(reverse("admin:events_app_apikey_rotate", args=[api_key.pk]))
    client.post(keys_url, {"action": "rotate_selected", "_selected_action": [api_key.pk]})

    assert 'id="revoke-button"' in page and 'id="rotate-button"' not in page
    assert "revoke_selected" in listing and "rotate_selected" not in listing
    assert button.status_code == 403
    assert list(ApiKey.objects.values_list("pk", "revoked_at")) == [(api_key.pk, None)]


def test_a_user_who_may_add_and_change_keys_rotates_them(client, game_key):
    client.force_login(make_user("key-manager", ["view_apikey", "change_apikey", "add_apikey"]))
    api_key = game_key[0]

    page = client.get(reverse("admin:events_app_apikey_change", args=[api_key.pk])).content.decode()
    response = client.post(reverse("admin:events_app_apikey_rotate", args=[api_key.pk]))

    assert 'id="rotate-button"' in page
    assert response.status_code == 200
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is not None
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == 1
