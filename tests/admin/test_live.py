"""Live events (the page and its JSON feed) and a player's timeline."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from events_app.admin import live
from events_app.models import Event, RejectedEvent
from tests.admin.helpers import READ_ONLY_PERMISSIONS, store
from tests.support.users import make_user

LIVE_URL = reverse("admin:events_app_event_live")
FEED_URL = reverse("admin:events_app_event_live_feed")
TIMELINE_URL = reverse("admin:events_app_event_timeline")


def reject(game, *, player_id="", errors=None, body='{"event_type": "install", "player_id": ""}', ago=timedelta(0)):
    return RejectedEvent.objects.create(
        game=game,
        received_at=timezone.now() - ago,
        errors=errors or {"player_id": ["This field may not be blank."]},
        body=body,
        player_id=player_id,
    )


def feed(client, **params):
    response = client.get(FEED_URL, params)
    assert response.status_code == 200, response.content
    assert "no-store" in response["Cache-Control"]
    return response.json()


def test_the_feed_shows_a_games_accepted_and_rejected_events_with_the_reason(
    operator, game_key, other_game_key, make_install, make_purchase
):
    install, purchase = store(game_key[0], [make_install(player_id="alice"), make_purchase(player_id="bob")])
    store(other_game_key[0], [make_install(player_id="carol")])
    refused = reject(game_key[0].game, errors={"properties": {"price": ["Not a decimal."]}})
    reject(other_game_key[0].game)

    answer = feed(operator, game="space-raiders")

    assert [row["id"] for row in answer["events"]] == [install.pk, purchase.pk]  # oldest first
    assert [row["player_id"] for row in answer["events"]] == ["alice", "bob"]
    assert answer["events"][1]["details"].endswith(purchase.currency)
    assert answer["events"][0]["url"] == reverse("admin:events_app_event_change", args=[install.pk])
    assert answer["events"][0]["timeline_url"] == f"{TIMELINE_URL}?game={install.game_id}&player_id=alice"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", answer["events"][0]["received"])
    (rejection,) = answer["rejections"]
    assert (rejection["id"], rejection["reason"]) == (refused.pk, "properties.price: Not a decimal.")
    assert (rejection["event_type"], rejection["status_code"]) == ("install", 400)
    assert (answer["after"], answer["after_rejection"], answer["more"]) == (purchase.pk, refused.pk, False)


def test_the_next_poll_brings_only_what_arrived_after_the_ids_seen(operator, game_key, make_install):
    (first,) = store(game_key[0], [make_install()])
    seen = feed(operator, game="space-raiders")
    (second,) = store(game_key[0], [make_install()])
    refused = reject(game_key[0].game)

    answer = feed(operator, game="space-raiders", after=seen["after"], after_rejection=seen["after_rejection"] or 0)

    assert [row["id"] for row in answer["events"]] == [second.pk]
    assert [row["id"] for row in answer["rejections"]] == [refused.pk]
    assert feed(operator, game="space-raiders", after=answer["after"])["events"] == []
    assert first.pk < second.pk


def test_a_poll_answers_the_newest_events_and_says_when_it_left_some_out(operator, game_key, make_install):
    events = store(game_key[0], [make_install(player_id=f"p{i}") for i in range(7)])

    answer = live.live_feed(live.FeedQuery(game=game_key[0].game), limit=3)

    assert [row["id"] for row in answer["events"]] == [event.pk for event in events[-3:]]
    assert answer["more"] is True


def test_the_feed_filters_by_exact_type_and_player(operator, game_key, make_install, make_purchase):
    store(
        game_key[0],
        [make_install(player_id="alice"), make_purchase(player_id="alice"), make_install(player_id="bob")],
    )
    reject(game_key[0].game, player_id="alice", body='{"event_type": "purchase", "player_id": "alice"}')
    reject(game_key[0].game, player_id="bob")

    purchases = feed(operator, game="space-raiders", event_type="purchase")
    alices = feed(operator, game="space-raiders", player_id="alice")

    assert [row["event_type"] for row in purchases["events"]] == ["purchase"]
    assert [row["player_id"] for row in purchases["rejections"]] == ["alice"]
    assert [row["event_type"] for row in alices["events"]] == ["install", "purchase"]
    assert [row["player_id"] for row in alices["rejections"]] == ["alice"]


def test_events_received_before_the_live_window_are_not_in_the_feed(operator, game_key, make_install):
    old, new = store(game_key[0], [make_install(), make_install()])
    Event.objects.filter(pk=old.pk).update(received_at=timezone.now() - live.LIVE_WINDOW - timedelta(minutes=10))
    reject(game_key[0].game, ago=live.LIVE_WINDOW + timedelta(minutes=1))

    answer = feed(operator, game="space-raiders", after=0)

    assert [row["id"] for row in answer["events"]] == [new.pk]
    assert answer["rejections"] == []


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"game": "no-such-game"}, "game"),
        ({}, "game"),
        ({"game": "space-raiders", "after": "-1"}, "after"),
        ({"game": "space-raiders", "after": "1e9"}, "after"),
        ({"game": "space-raiders", "after_rejection": "x"}, "after_rejection"),
        ({"game": "space-raiders", "after": "9" * 40}, "after"),
        ({"game": "space-raiders", "event_type": "x" * 65}, "event_type"),
        ({"game": "space-raiders", "player_id": "a\x00b"}, "player_id"),
    ],
)
def test_a_poll_it_cannot_use_answers_400_naming_the_parameter(operator, game_key, params, named):
    response = operator.get(FEED_URL, params)

    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{named}:")


def test_a_poll_costs_the_same_queries_whatever_it_returns(operator, game_key, make_install):
    store(game_key[0], [make_install()])
    feed(operator, game="space-raiders")  # the session and permissions, read once
    with CaptureQueriesContext(connection) as one:
        feed(operator, game="space-raiders")
    store(game_key[0], [make_install(player_id=f"p{i}") for i in range(30)])
    for _ in range(5):
        reject(game_key[0].game)
    with CaptureQueriesContext(connection) as many:
        answer = feed(operator, game="space-raiders")

    assert len(answer["events"]) == 31
    assert len(many.captured_queries) == len(one.captured_queries)


def test_rejections_stay_out_of_the_feed_without_their_view_permission(client, db, game_key, make_install):
    client.force_login(make_user("events-only", ["view_event"]))
    store(game_key[0], [make_install()])
    reject(game_key[0].game)

    answer = feed(client, game="space-raiders")

    assert len(answer["events"]) == 1
    assert answer["rejections"] == []


def test_live_events_need_the_event_view_permission(client, db, game_key):
    client.force_login(make_user("games-only", ["view_game"]))

    assert client.get(FEED_URL, {"game": "space-raiders"}).status_code == 403
    assert client.get(LIVE_URL).status_code == 403
    assert client.get(TIMELINE_URL).status_code == 403


def test_the_live_page_polls_through_a_static_script_without_inline_code(operator, game_key, other_game_key):
    page = operator.get(LIVE_URL, {"game": "moon-miners"}).content.decode()

    assert 'data-game="moon-miners"' in page
    assert f'data-feed-url="{FEED_URL}"' in page
    assert 'src="/static/events_app/live.js"' in page
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page) is None  # no inline script
    assert " onclick=" not in page and " onchange=" not in page
    assert '<option value="space-raiders">' in page and '<option value="moon-miners" selected>' in page


def test_the_game_page_links_its_live_events(client, db, game_key):
    client.force_login(make_user("reader", READ_ONLY_PERMISSIONS))

    page = client.get(reverse("admin:events_app_game_change", args=[game_key[0].game_id])).content.decode()

    assert f'href="{LIVE_URL}?game=space-raiders"' in page


# -- a player's timeline ---------------------------------------------------------------------------------------


def test_a_players_timeline_lists_all_their_events_in_arrival_order(operator, game_key, other_game_key, make_install):
    mine = store(game_key[0], [make_install(player_id="alice", platform="ios") for _ in range(3)])
    store(game_key[0], [make_install(player_id="bob")])
    store(other_game_key[0], [make_install(player_id="alice")])
    Event.objects.filter(pk=mine[0].pk).update(received_at=timezone.now() - timedelta(days=400))  # any age

    response = operator.get(TIMELINE_URL, {"game": game_key[0].game_id, "player_id": "alice"})

    assert response.status_code == 200
    assert [row["id"] for row in response.context["rows"]] == [event.pk for event in mine]
    assert "Timeline of player alice" in response.content.decode()


def test_a_long_timeline_goes_on_by_keyset_pages(operator, game_key, make_install, monkeypatch):
    monkeypatch.setattr(live, "TIMELINE_PAGE", 2)
    events = store(game_key[0], [make_install(player_id="alice") for _ in range(5)])
    ids = []
    url = f"{TIMELINE_URL}?game=space-raiders&player_id=alice"
    while url:
        response = operator.get(url)
        ids += [row["id"] for row in response.context["rows"]]
        url = response.context["later_url"] and TIMELINE_URL + response.context["later_url"]

    assert ids == [event.pk for event in events]


def test_an_events_page_links_its_players_timeline(operator, game_key, make_install):
    (event,) = store(game_key[0], [make_install(player_id="alice & bob")])

    page = operator.get(reverse("admin:events_app_event_change", args=[event.pk])).content.decode()

    assert f'href="{TIMELINE_URL}?game={event.game_id}&amp;player_id=alice+%26+bob"' in page


def test_the_timeline_search_form_says_what_it_cannot_use(operator, game_key):
    empty = operator.get(TIMELINE_URL)
    unknown = operator.get(TIMELINE_URL, {"game": "nope", "player_id": "alice"})
    bad_after = operator.get(TIMELINE_URL, {"game": "space-raiders", "player_id": "alice", "after": "x"})
    nobody = operator.get(TIMELINE_URL, {"game": "space-raiders", "player_id": "nobody"})

    assert empty.status_code == 200 and 'id="timeline-search"' in empty.content.decode()
    assert unknown.status_code == 400 and "game: no such game" in unknown.content.decode()
    assert bad_after.status_code == 400 and "after: not an id" in bad_after.content.decode()
    assert nobody.status_code == 200 and "No event of player “nobody” in space-raiders" in nobody.content.decode()
