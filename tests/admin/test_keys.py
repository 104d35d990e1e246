"""The API key pages: issuing (plaintext shown once), revoking, rotating, last use, and who may do which."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from events_app.api.keys import ROTATION_GRACE, rotate_api_key
from events_app.models import ApiKey
from tests.support.users import make_user


@pytest.fixture
def clock():
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller


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


def test_revoking_a_key_on_its_page_asks_first_then_makes_the_api_refuse_it(admin_client, game_key, api, make_install):
    api_key = game_key[0]
    assert api.post("/v1/events", make_install(), format="json").status_code == 202
    url = reverse("admin:events_app_apikey_revoke", args=[api_key.pk])

    question = admin_client.get(url)
    still_working = api.post("/v1/events", make_install(), format="json").status_code
    response = admin_client.post(url, follow=True)

    assert 'id="confirm-revoke"' in question.content.decode()
    assert still_working == 202
    assert "Revoked key" in next(str(m) for m in response.context["messages"])
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is not None
    assert api.post("/v1/events", make_install(), format="json").status_code == 401


def test_rotating_keys_asks_for_the_grace_then_shows_the_new_plaintexts(admin_client, game_key, other_game_key, clock):
    old = [game_key[0], other_game_key[0]]
    selection = {"action": "rotate_selected", "_selected_action": [k.pk for k in old]}

    question = admin_client.post(reverse("admin:events_app_apikey_changelist"), selection)
    nothing_yet = ApiKey.objects.count()
    response = admin_client.post(
        reverse("admin:events_app_apikey_changelist"), {**selection, "confirmed": "1", "grace_hours": "24"}
    )

    assert 'id="confirm-rotate"' in question.content.decode()
    assert nothing_yet == 2
    assert response.status_code == 200
    issued = response.context["issued"]
    assert {new.game.slug for new, _ in issued} == {"space-raiders", "moon-miners"}
    ends = {ApiKey.objects.get(pk=k.pk).revoked_at for k in old}
    assert ends == {timezone.now() + timedelta(hours=24)}
    for new, plaintext in issued:
        assert ApiKey.objects.get(key_hash=ApiKey.hash(plaintext)).pk == new.pk
        assert new.name == "tests"


def test_revoke_action_reports_how_many_keys_it_revoked(admin_client, game_key, other_game_key):
    admin_client.post(reverse("admin:events_app_apikey_revoke", args=[other_game_key[0].pk]))

    response = admin_client.post(
        reverse("admin:events_app_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [game_key[0].pk, other_game_key[0].pk], "confirmed": "1"},
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
    response = client.post(reverse("admin:events_app_apikey_rotate", args=[api_key.pk]), {"grace_hours": "168"})

    assert 'id="rotate-button"' in page
    assert response.status_code == 200
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is not None
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == 1


# Rotation with a grace: the confirmation, the old key's end, ending it early


def test_the_rotation_page_says_until_when_the_old_key_works_and_when_it_was_last_used(admin_client, game_key, clock):
    api_key = game_key[0]
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=datetime(2026, 11, 20, 8, 30, tzinfo=UTC))
    url = reverse("admin:events_app_apikey_rotate", args=[api_key.pk])

    response = admin_client.get(url)

    html = response.content.decode()
    default_end = (timezone.now() + ROTATION_GRACE).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert f"for 7 days (the default), until {default_end}" in html
    assert "2026-11-20 08:30:00 UTC" in html  # last used
    assert response.context["form"]["grace_hours"].value() == 168
    assert ApiKey.objects.count() == 1  # nothing rotated by looking


def test_a_rotation_confirmed_keeps_the_old_key_working_through_the_chosen_grace(
    admin_client, game_key, api, make_install, clock
):
    api_key = game_key[0]

    response = admin_client.post(reverse("admin:events_app_apikey_rotate", args=[api_key.pk]), {"grace_hours": "720"})

    end = timezone.now() + timedelta(days=30)
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at == end
    assert f"works until <strong>{end:%Y-%m-%d %H:%M:%S} UTC</strong>, then answers 401" in response.content.decode()
    assert api.post("/v1/events", make_install(), format="json").status_code == 202
    clock.shift(timedelta(days=30, seconds=1))
    assert api.post("/v1/events", make_install(), format="json").status_code == 401


def test_a_grace_not_offered_is_refused_and_nothing_is_rotated(admin_client, game_key):
    url = reverse("admin:events_app_apikey_rotate", args=[game_key[0].pk])

    response = admin_client.post(url, {"grace_hours": "1000000000"})

    assert response.status_code == 200
    assert "grace_hours" in response.context["form"].errors
    assert list(ApiKey.objects.values_list("revoked_at", flat=True)) == [None]


def test_an_expiring_key_shows_its_end_in_the_list_and_on_its_page(admin_client, game_key, clock):
    rotate_api_key(api_key=game_key[0], grace=timedelta(hours=48))
    end = (timezone.now() + timedelta(hours=48)).strftime("%Y-%m-%d %H:%M:%S UTC")

    listing = admin_client.get(reverse("admin:events_app_apikey_changelist")).content.decode()
    expiring = admin_client.get(reverse("admin:events_app_apikey_changelist"), {"state": "expiring"})
    page = admin_client.get(reverse("admin:events_app_apikey_change", args=[game_key[0].pk])).content.decode()

    assert f'<td class="field-revoked">{end}</td>' in listing
    assert '<span class="state-badge key-expiring">expiring</span>' in listing
    assert [key.pk for key in expiring.context["cl"].result_list] == [game_key[0].pk]
    assert end in page and "End its grace now" in page
    assert 'id="rotate-button"' not in page  # already replaced


def test_ending_a_grace_early_asks_first_then_the_old_key_answers_401(admin_client, game_key, api, make_install, clock):
    old = game_key[0]
    rotate_api_key(api_key=old, grace=timedelta(hours=48))
    selection = {"action": "revoke_selected", "_selected_action": [old.pk]}

    question = admin_client.post(reverse("admin:events_app_apikey_changelist"), selection)
    in_grace = api.post("/v1/events", make_install(), format="json").status_code
    admin_client.post(reverse("admin:events_app_apikey_changelist"), {**selection, "confirmed": "1"})

    html = question.content.decode()
    assert 'id="confirm-revoke"' in html and "ends a rotation's grace early" in html
    assert (timezone.now() + timedelta(hours=48)).strftime("%Y-%m-%d %H:%M:%S UTC") in html
    assert in_grace == 202
    assert ApiKey.objects.get(pk=old.pk).revoked_at == timezone.now()
    assert api.post("/v1/events", make_install(), format="json").status_code == 401


def test_rotating_a_key_already_expiring_never_extends_its_grace(admin_client, game_key, clock):
    old = game_key[0]
    rotate_api_key(api_key=old, grace=timedelta(hours=2))
    selection = {"action": "rotate_selected", "_selected_action": [old.pk], "confirmed": "1", "grace_hours": "168"}

    admin_client.post(reverse("admin:events_app_apikey_changelist"), selection)

    assert ApiKey.objects.get(pk=old.pk).revoked_at == timezone.now() + timedelta(hours=2)
