"""The game pages: creating a game, its policy for custom types, its custom types and its events by type."""

import re
from datetime import timedelta

import time_machine
from django.urls import reverse
from django.utils import timezone

from events_app.admin import queries
from events_app.api.keys import issue_api_key
from events_app.event_types import custom
from events_app.models import Game, UnknownEventPolicy
from tests.admin.helpers import EVENTS_URL, LEVEL_UP_SCHEMA, accept_unknown_types, ad_impression, make_event, store
from tests.support.users import make_user


def test_a_game_is_created_in_the_admin(admin_client):
    inline_management = {"api_keys-TOTAL_FORMS": 0, "api_keys-INITIAL_FORMS": 0}
    response = admin_client.post(
        reverse("admin:events_app_game_add"),
        {"slug": "star-farm", "name": "Star Farm", "unknown_events": "reject", **inline_management},
    )

    assert response.status_code == 302
    assert Game.objects.filter(slug="star-farm", name="Star Farm").exists()


def test_game_page_sets_the_policy_for_custom_types_without_a_schema(admin_client, api, make_install):
    (api_key, plaintext) = issue_api_key(game_slug="star-farm")
    game = api_key.game
    url = reverse("admin:events_app_game_change", args=[game.pk])
    page = admin_client.get(url).content.decode()
    keys = {
        "api_keys-TOTAL_FORMS": 1,
        "api_keys-INITIAL_FORMS": 1,
        "api_keys-0-id": api_key.pk,
        "api_keys-0-game": game.pk,
    }  # the page's (read-only) key inline

    response = admin_client.post(url, {"name": "Star Farm", "unknown_events": "accept", **keys})

    assert 'name="unknown_events"' in page
    assert "Custom types without a schema" in page
    assert response.status_code == 302
    assert Game.objects.get(pk=game.pk).unknown_events == UnknownEventPolicy.ACCEPT
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert api.post("/v1/events", make_event("boss_defeated", {"boss": "hydra"}), format="json").status_code == 202


def test_game_list_shows_each_games_policy(admin_client, game_key):
    Game.objects.create(slug="star-farm", unknown_events=UnknownEventPolicy.ACCEPT)

    html = admin_client.get(reverse("admin:events_app_game_changelist")).content.decode()

    assert "Accept without a schema" in html
    assert "Reject (400 naming event_type)" in html


def test_game_page_lists_its_custom_types_with_their_latest_versions(admin_client, game_key, other_game_key):
    game = game_key[0].game
    for schema in ({"type": "object"}, LEVEL_UP_SCHEMA):
        custom.register_schema(game=game, event_type="level_up", schema=schema)
    custom.register_schema(game=game, event_type="chest_opened", schema={"type": "object"})
    custom.register_schema(game=other_game_key[0].game, event_type="quest_done", schema={"type": "object"})

    html = admin_client.get(reverse("admin:events_app_game_change", args=[game.pk])).content.decode()

    rows = html.split('id="custom-types"', 1)[1].split("</table>", 1)[0]
    assert rows.index("chest_opened") < rows.index("level_up")
    level_up = rows.split('<tr id="custom-type-level_up">', 1)[1].split("</tr>", 1)[0]
    assert re.search(r'<td><code>level_up</code></td>\s*<td class="num">2</td>', level_up)
    assert "quest_done" not in rows
    assert f"?game__id__exact={game.pk}&amp;event_type=level_up" in rows  # all versions
    assert f"?game={game.pk}&amp;event_type=level_up" in rows  # register a new version
    assert 'id="register-schema-link"' in html


def test_game_page_counts_the_games_events_by_type(admin_client, game_key, other_game_key, make_install, make_purchase):
    game = game_key[0].game
    custom.register_schema(game=game, event_type="level_up", schema=LEVEL_UP_SCHEMA)
    store(game_key[0], [make_install(), make_install(), make_install(), make_purchase()])
    store(game_key[0], [make_event("level_up", {"level": 2}), make_event("level_up", {"level": 3})])
    store(other_game_key[0], [make_install()])

    html = admin_client.get(reverse("admin:events_app_game_change", args=[game.pk])).content.decode()

    section = html.split('id="type-counts"', 1)[1]
    counts = re.findall(
        r'<code>([a-z_]+)</code></td><td class="quiet">([a-z-]+)</td><td class="num"><a href="([^"]+)"'
        r' id="type-count-[a-z_]+">(\d+)</a>',
        section,
    )
    assert [(name, kind, int(n)) for name, kind, _link, n in counts] == [
        ("install", "built-in", 3),
        ("level_up", "custom", 2),
        ("purchase", "built-in", 1),
    ]
    # The list over the days counted, so that it shows the events counted.
    assert counts[1][2] == f"{EVENTS_URL}?game__id__exact={game.pk}&amp;received=30d&amp;event_type=level_up"
    assert "6 events received in the last 30 days" in section


def test_game_event_counts_cover_the_last_30_days_as_the_relays_counted_them(admin_client, game_key, make_install):
    accept_unknown_types(game_key[0].game)
    with time_machine.travel(timezone.now() - timedelta(days=31)):
        store(game_key[0], [make_install(), make_install()])
    store(game_key[0], [make_event("chest_opened", {}) for _ in range(3)])

    html = admin_client.get(reverse("admin:events_app_game_change", args=[game_key[0].game_id])).content.decode()

    assert 'id="type-count-chest_opened">3<' in html
    assert 'id="type-count-install"' not in html
    assert "3 events received in the last 30 days" in html


def test_game_event_counts_take_one_query_whatever_the_number_of_types(
    game_key, make_install, make_purchase, django_assert_num_queries
):
    store(
        game_key[0],
        [make_install(), make_purchase(), ad_impression(), make_event("session_start", {}, session_id="s-1")],
    )

    with django_assert_num_queries(1):
        counts = queries.type_counts(game=game_key[0].game)

    assert counts.counts == {"ad_impression": 1, "install": 1, "purchase": 1, "session_start": 1}
    assert counts.total == 4


def test_a_game_without_events_or_custom_types_says_so(admin_client, db):
    game = Game.objects.create(slug="star-farm")

    html = admin_client.get(reverse("admin:events_app_game_change", args=[game.pk])).content.decode()

    assert 'id="no-custom-types"' in html
    assert "No events from this game sent in the last 30 days." in html


def test_a_user_who_may_only_view_games_sees_neither_their_event_counts_nor_custom_types(
    client, game_key, make_install
):
    game = game_key[0].game
    custom.register_schema(game=game, event_type="secret_raid", schema={"type": "object"})
    store(game_key[0], [make_install(), make_event("secret_raid", {})])
    client.force_login(make_user("game-viewer", ["view_game"]))

    response = client.get(reverse("admin:events_app_game_change", args=[game.pk]))

    html = response.content.decode()
    assert response.status_code == 200 and "space-raiders" in html
    assert "secret_raid" not in html
    assert 'id="type-counts"' not in html and 'id="custom-types"' not in html
    assert 'id="type-count-install"' not in html


def test_viewing_events_shows_the_counts_and_viewing_schemas_the_custom_types(client, game_key, make_install):
    game = game_key[0].game
    custom.register_schema(game=game, event_type="secret_raid", schema={"type": "object"})
    store(game_key[0], [make_install(), make_event("secret_raid", {})])
    url = reverse("admin:events_app_game_change", args=[game.pk])

    client.force_login(make_user("event-viewer", ["view_game", "view_event"]))
    events_only = client.get(url).content.decode()
    client.force_login(make_user("schema-viewer", ["view_game", "view_eventschema"]))
    schemas_only = client.get(url).content.decode()

    assert 'id="type-count-secret_raid">1<' in events_only and 'id="custom-types"' not in events_only
    assert 'id="custom-type-secret_raid"' in schemas_only and 'id="type-counts"' not in schemas_only


def test_a_game_with_events_shows_no_delete_button_and_cannot_be_deleted(admin_client, game_key, make_install):
    store(game_key[0], [make_install()])
    empty = Game.objects.create(slug="empty-game")

    with_events = admin_client.get(reverse("admin:events_app_game_change", args=[game_key[0].game_id]))
    without = admin_client.get(reverse("admin:events_app_game_change", args=[empty.pk]))

    assert 'class="deletelink"' not in with_events.content.decode()
    assert admin_client.get(reverse("admin:events_app_game_delete", args=[game_key[0].game_id])).status_code == 403
    assert 'class="deletelink"' in without.content.decode()  # a game nothing refers to yet may go


def test_game_event_counts_agree_with_the_dashboard_of_the_game(admin_client, game_key, make_install, make_purchase):
    now = timezone.now()
    start_of_period = queries.period_start(now, days=queries.DAYS_SHOWN)
    with time_machine.travel(start_of_period - timedelta(minutes=1)):  # the day before the dashboard's first
        store(game_key[0], [make_install()])
    with time_machine.travel(start_of_period + timedelta(minutes=1)):
        store(game_key[0], [make_install(), make_purchase()])
    store(game_key[0], [make_purchase()])

    html = admin_client.get(reverse("admin:events_app_game_change", args=[game_key[0].game_id])).content.decode()
    dashboard = queries.build_dashboard(game=game_key[0].game)

    assert {name: sum(values) for name, values in dashboard.daily.series.items()} == {"install": 1, "purchase": 2}
    assert 'id="type-count-install">1<' in html and 'id="type-count-purchase">2<' in html
