"""Player erasure: the command, suppressed events over the API and Segment, the metric, the admin's list and action."""

import base64
import re
import threading
import time
import uuid
from datetime import timedelta
from html import unescape
from io import StringIO

import orjson
import pytest
from django.contrib.admin.models import ADDITION, DELETION, LogEntry
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from prometheus_client import REGISTRY

from events_app.api.keys import issue_api_key
from events_app.db import hold_erasure_lock
from events_app.delivery import engine, retry
from events_app.delivery.sending import CallReport, DeliveryCounts, SendReport
from events_app.ingest import service
from events_app.ingest.rejections import record_rejections
from events_app.ingest.service import ingest_events
from events_app.models import (
    DeliveryCall,
    DeliveryIssue,
    DeliveryState,
    Event,
    IssueState,
    RejectedEvent,
    SuppressedPlayer,
)
from events_app.privacy import erasure
from events_app.privacy.retention import purge_expired
from tests.admin.helpers import set_state
from tests.support.delivery import read_s3_lines
from tests.support.events import now_rfc3339
from tests.support.locks import wait_until_an_advisory_lock_is_awaited
from tests.support.users import make_user

pytestmark = pytest.mark.django_db

EVENTS, BATCH = "/v1/events", "/v1/events/batch"
SUPPRESSED_URL = reverse("admin:events_app_suppressedplayer_changelist")
SUPPRESS_ADD_URL = reverse("admin:events_app_suppressedplayer_add")
EVENTS_URL = reverse("admin:events_app_event_changelist")


def received(event_type: str, status: str) -> float:
    return REGISTRY.get_sample_value("events_received_total", {"event_type": event_type, "status": status}) or 0.0


def store(game_key, events: list[dict]) -> None:
    outcome = ingest_events(api_key=game_key[0], raw_events=events, received_at=timezone.now())
    assert outcome.accepted == len(events), outcome.results


def erase(*args: str) -> str:
    out = StringIO()
    call_command("erase_player", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def stored_player(game_key, make_install, make_purchase):
    """player-1 with two events (one failed: a delivery issue) and a rejected event; player-2 with one of each."""
    store(game_key, [make_install(), make_purchase(), make_install(player_id="player-2")])
    set_state([Event.objects.filter(player_id="player-1").order_by("pk").first()], DeliveryState.FAILED)
    game = game_key[0].game
    record_rejections(
        game=game,
        received_at=timezone.now(),
        rejected=[
            ({"player_id": "player-1", "event_type": "nope"}, {"event_type": ["bad"]}),
            ({"player_id": "player-2", "event_type": "nope"}, {"event_type": ["bad"]}),
        ],
    )
    return game


# -- the command ----------------------------------------------------------------------------------------------


def test_erase_player_deletes_the_players_rows_only_and_prints_counts_and_the_warehouse_sql(stored_player):
    output = erase("space-raiders", "player-1")

    assert "deleted events=2 issues=1 rejected_events=1" in output
    assert "DELETE FROM ANALYTICS.PLAYER_EVENTS.game_events_raw" in output
    assert "record:game::STRING = 'space-raiders'" in output
    assert "record:player_id::STRING = 'player-1';" in output
    assert list(Event.objects.values_list("player_id", flat=True)) == ["player-2"]
    assert list(RejectedEvent.objects.values_list("player_id", flat=True)) == ["player-2"]
    assert DeliveryIssue.objects.count() == 0
    suppression = SuppressedPlayer.objects.get()
    assert (suppression.game, suppression.player_id, suppression.created_by) == (
        stored_player,
        "player-1",
        "erase_player command",
    )


def test_erase_player_again_deletes_nothing_more_and_keeps_the_first_suppression(stored_player):
    erase("space-raiders", "player-1", "--reason", "ticket 42")
    first = SuppressedPlayer.objects.get()

    output = erase("space-raiders", "player-1")

    assert "deleted events=0 issues=0 rejected_events=0" in output
    assert "was already suppressed" in output
    assert list(SuppressedPlayer.objects.values_list("pk", "created_at", "reason")) == [
        (first.pk, first.created_at, "ticket 42")
    ]


def test_unsuppress_lets_the_players_events_be_stored_again(stored_player, api, make_install):
    erase("space-raiders", "player-1")

    output = erase("space-raiders", "player-1", "--unsuppress")

    assert "no longer suppressed" in output
    assert api.post(EVENTS, make_install(), format="json").json()["status"] == "accepted"
    assert "was not suppressed" in erase("space-raiders", "player-1", "--unsuppress")


def test_erase_player_of_an_unknown_game_exits_1_with_the_reason(db):
    with pytest.raises(CommandError, match="No game 'nowhere'"):
        erase("nowhere", "player-1")


def test_warehouse_sql_quotes_a_player_id_safely(game_key):
    sql = erasure.warehouse_delete_sql(game=game_key[0].game, player_id="o'brien\\'; DROP TABLE x; --")

    assert "record:player_id::STRING = 'o''brien\\\\''; DROP TABLE x; --';" in sql
    with pytest.raises(ValueError, match="identifier"):
        erasure.warehouse_delete_sql(game=game_key[0].game, player_id="p", schema="x; DROP")


def test_rejected_bodies_that_named_no_player_of_their_own_are_found_by_their_content(game_key):
    game = game_key[0].game
    batch = {"events": [{"player_id": "player-1"}, {"player_id": "player-2"}]}
    RejectedEvent.objects.create(game=game, received_at=timezone.now(), errors={}, body=orjson.dumps(batch).decode())
    RejectedEvent.objects.create(
        game=game, received_at=timezone.now(), errors={}, body='{"player_id":"player-10"}', player_id="player-10"
    )

    counts = erasure.erase_player(game=game, player_id="player-1")

    assert counts.rejected_events == 1
    assert list(RejectedEvent.objects.values_list("player_id", flat=True)) == ["player-10"]


# -- ingest ---------------------------------------------------------------------------------------------------


def test_a_suppressed_players_event_is_answered_suppressed_and_not_stored(api, game_key, make_install):
    erasure.erase_player(game=game_key[0].game, player_id="player-1")
    event = make_install()
    before = received("install", "suppressed")

    response = api.post(EVENTS, event, format="json")

    assert response.status_code == 202
    assert response.json() == {"event_id": event["event_id"], "status": "suppressed"}
    assert not Event.objects.exists()
    assert received("install", "suppressed") == before + 1


def test_a_suppressed_event_without_an_id_is_answered_without_one(api, game_key, make_install):
    erasure.erase_player(game=game_key[0].game, player_id="player-1")
    event = make_install()
    del event["event_id"]

    assert api.post(EVENTS, event, format="json").json() == {"status": "suppressed"}


def test_a_batch_answers_suppressed_per_event_and_keeps_the_other_players(api, game_key, make_install, make_purchase):
    erasure.erase_player(game=game_key[0].game, player_id="player-1")
    erased, other, erased_purchase = make_install(), make_install(player_id="player-2"), make_purchase()
    before = received("purchase", "suppressed")

    body = api.post(BATCH, {"events": [erased, other, erased_purchase]}, format="json").json()

    assert (body["accepted"], body["duplicates"], body["rejected"], body["suppressed"]) == (1, 0, 0, 2)
    assert [(r["index"], r["status"]) for r in body["results"]] == [
        (0, "suppressed"),
        (1, "accepted"),
        (2, "suppressed"),
    ]
    assert list(Event.objects.values_list("player_id", flat=True)) == ["player-2"]
    assert received("purchase", "suppressed") == before + 1


def test_a_repeat_of_an_erased_players_event_by_another_player_is_refused_not_called_a_duplicate(
    api, game_key, make_purchase
):
    erasure.erase_player(game=game_key[0].game, player_id="player-1")
    erased = make_purchase()
    other = make_purchase(player_id="player-2")
    other["properties"]["transaction_id"] = erased["properties"]["transaction_id"]

    body = api.post(BATCH, {"events": [erased, other]}, format="json").json()

    assert [r["status"] for r in body["results"]] == ["suppressed", "rejected"]  # was: duplicate of nothing stored
    assert body["results"][1]["errors"] == {"non_field_errors": [service.REPEATS_SUPPRESSED]}
    assert not Event.objects.exists()


def test_suppression_is_per_game(api, game_key, make_install):
    other = issue_api_key(game_slug="moon-miners", name="tests")
    erasure.erase_player(game=other[0].game, player_id="player-1")

    assert api.post(EVENTS, make_install(), format="json").json()["status"] == "accepted"


def test_the_suppression_list_is_read_in_one_query_per_request(api, game_key, make_install):
    erasure.erase_player(game=game_key[0].game, player_id="player-1")
    events = [make_install(player_id=f"player-{i}") for i in range(500)]

    with CaptureQueriesContext(connection) as queries:
        body = api.post(BATCH, {"events": events}, format="json").json()

    assert (body["accepted"], body["suppressed"]) == (499, 1)
    assert len([query for query in queries.captured_queries if "suppressedplayer" in query["sql"]]) == 1


def test_a_suppressed_event_is_never_forwarded(api, game_key, moto_firehose, make_install):
    erasure.erase_player(game=game_key[0].game, player_id="player-1")
    erased, other = make_install(), make_install(player_id="player-2")

    response = api.post(BATCH, {"events": [erased, other]}, format="json")
    assert engine.deliver_due().delivered == 1

    assert response.json()["suppressed"] == 1
    assert [orjson.loads(line)["event_id"] for line in read_s3_lines(moto_firehose)] == [other["event_id"]]
    assert list(Event.objects.values_list("player_id", flat=True)) == ["player-2"]


@pytest.mark.django_db(transaction=True)
def test_an_erasure_waits_for_a_request_storing_the_players_event_and_then_deletes_it(
    game_key, make_install, monkeypatch
):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite files queue every writer on one lock; the in-memory test database has one connection")
    read_list, go_on = threading.Event(), threading.Event()
    read_suppressions = service.suppressed_ids

    def read_then_hold(**kwargs):
        found = read_suppressions(**kwargs)
        read_list.set()  # the list is read, the row not yet inserted: the race an erasure must not lose
        go_on.wait(30)
        return found

    monkeypatch.setattr(service, "suppressed_ids", read_then_hold)
    event = make_install()
    answers, erased = [], []

    def request():
        answers.append(ingest_events(api_key=game_key[0], raw_events=[event], received_at=timezone.now()))
        connection.close()

    def erase_now():
        erased.append(erasure.erase_player(game=game_key[0].game, player_id="player-1"))
        connection.close()

    threads = [threading.Thread(target=request), threading.Thread(target=erase_now)]
    threads[0].start()
    assert read_list.wait(30)
    threads[1].start()
    wait_until_an_advisory_lock_is_awaited("the erasure")
    go_on.set()
    for thread in threads:
        thread.join(30)

    assert answers[0].accepted == 1  # committed before the erasure began: stored, then erased
    assert erased[0].events == 1
    assert not Event.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_request_arriving_during_an_erasure_waits_for_it_and_answers_suppressed(game_key, make_install):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite files queue every writer on one lock; the in-memory test database has one connection")
    game = game_key[0].game
    holding, finish = threading.Event(), threading.Event()
    answers = []

    def erasure_in_progress():  # an erasure's first transaction, held open until told to commit
        with transaction.atomic():
            hold_erasure_lock(game.pk, exclusive=True)
            SuppressedPlayer.objects.create(game=game, player_id="player-1", created_at=timezone.now())
            holding.set()
            finish.wait(30)
        connection.close()

    def request():
        answers.append(ingest_events(api_key=game_key[0], raw_events=[make_install()], received_at=timezone.now()))
        connection.close()

    eraser = threading.Thread(target=erasure_in_progress)
    eraser.start()
    assert holding.wait(30)
    requester = threading.Thread(target=request)
    requester.start()
    wait_until_an_advisory_lock_is_awaited("the request")
    finish.set()
    for thread in (eraser, requester):
        thread.join(30)

    assert answers[0].suppressed == 1  # it read the suppression list after the erasure committed
    assert not Event.objects.exists()


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def test_segment_calls_of_a_suppressed_player_are_not_stored(client, game_key, make_install):
    erasure.erase_player(game=game_key[0].game, player_id="player-1")
    message = {
        "type": "track",
        "event": "Application Installed",
        "messageId": str(uuid.uuid4()),
        "timestamp": now_rfc3339(),
        "properties": {},
    }
    before = received("install", "suppressed")

    single = client.post(
        "/v1/track",
        {**message, "userId": "player-1"},
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(game_key[1]),
    )
    batch = client.post(
        "/v1/batch",
        {
            "batch": [
                {**message, "messageId": str(uuid.uuid4()), "anonymousId": "player-1"},
                {**message, "messageId": str(uuid.uuid4()), "userId": "player-2"},
            ]
        },
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(game_key[1]),
    )

    assert (single.status_code, single.json()) == (200, {"success": True})
    assert (batch.status_code, batch.json()) == (200, {"success": True})
    assert list(Event.objects.values_list("player_id", flat=True)) == ["player-2"]
    assert received("install", "suppressed") == before + 2


# -- the admin ------------------------------------------------------------------------------------------------


@pytest.fixture
def eraser(client, db):
    """A logged-in operator who may browse events and erase players."""
    user = make_user("eraser", ["view_event", "view_game", "erase_player"])
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def reader(client, db):
    """A logged-in operator who may browse events and the suppression list, and erase no one."""
    client.force_login(make_user("reader", ["view_event", "view_game", "view_suppressedplayer"]))
    return client


@pytest.mark.django_db(transaction=True)  # commits for real: the erasure runs after the admin's own transaction
def test_adding_to_the_suppression_list_erases_the_player_and_is_logged(eraser, stored_player, monkeypatch):
    form = eraser.get(SUPPRESS_ADD_URL).content.decode()
    assert 'name="player_id"' in form
    assert 'name="created_by"' not in form  # set by the erasure, not asked for

    inside_a_transaction = []
    erase_player = erasure.erase_player

    def watched(**kwargs):
        inside_a_transaction.append(connection.in_atomic_block)
        return erase_player(**kwargs)

    monkeypatch.setattr(erasure, "erase_player", watched)
    response = eraser.post(
        SUPPRESS_ADD_URL, {"game": stored_player.pk, "player_id": "player-1", "reason": "GDPR request 7"}, follow=True
    )

    assert inside_a_transaction == [False]  # not in the admin's (it would hold the erasure lock throughout)

    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert any("deleted 2 events, 1 delivery issue and 1 rejected event" in m for m in messages)
    assert list(Event.objects.values_list("player_id", flat=True)) == ["player-2"]
    suppression = SuppressedPlayer.objects.get()
    assert (suppression.created_by, suppression.reason) == ("eraser", "GDPR request 7")
    assert LogEntry.objects.get(action_flag=ADDITION).object_id == str(suppression.pk)
    listing = eraser.get(SUPPRESSED_URL).content.decode()
    assert "player-1" in listing
    assert "eraser" in listing


def test_lifting_a_suppression_in_the_admin_is_logged_and_lets_events_in(eraser, game_key, api, make_install):
    erasure.erase_player(game=game_key[0].game, player_id="player-1", by="someone")
    suppression = SuppressedPlayer.objects.get()
    delete_url = reverse("admin:events_app_suppressedplayer_delete", args=[suppression.pk])

    assert eraser.get(delete_url).status_code == 200  # the confirmation page
    eraser.post(delete_url, {"post": "yes"})

    assert not SuppressedPlayer.objects.exists()
    assert LogEntry.objects.get(action_flag=DELETION).object_repr == str(suppression)
    assert api.post(EVENTS, make_install(), format="json").json()["status"] == "accepted"


def test_the_suppression_list_is_visible_but_not_writable_without_the_erase_permission(reader, game_key):
    erasure.erase_player(game=game_key[0].game, player_id="player-1")
    suppression = SuppressedPlayer.objects.get()

    assert reader.get(SUPPRESSED_URL).status_code == 200
    page = reader.get(reverse("admin:events_app_suppressedplayer_change", args=[suppression.pk]))
    assert page.status_code == 200
    assert "record:player_id::STRING = &#x27;player-1&#x27;;" in page.content.decode()  # the warehouse SQL
    assert reader.post(SUPPRESS_ADD_URL, {"game": game_key[0].game.pk, "player_id": "p"}).status_code == 403
    delete_url = reverse("admin:events_app_suppressedplayer_delete", args=[suppression.pk])
    assert reader.post(delete_url, {"post": "yes"}).status_code == 403
    assert SuppressedPlayer.objects.count() == 1


def test_erasing_the_players_of_selected_events_asks_first_then_erases_each_once(eraser, stored_player):
    selected = list(Event.objects.filter(player_id="player-1").values_list("pk", flat=True))
    action = {"action": "erase_selected_players", "_selected_action": selected}

    confirm = eraser.post(EVENTS_URL, action)

    assert confirm.status_code == 200
    assert "Yes, erase them" in confirm.content.decode()
    assert [player[:2] for player in confirm.context["players"]] == [("space-raiders", "player-1")]
    assert Event.objects.count() == 3  # nothing yet

    done = eraser.post(EVENTS_URL, {**confirmed(confirm), "reason": "ticket 9"}, follow=True)

    assert any("Erased 1 player: deleted 2 events" in str(m) for m in done.context["messages"])
    assert list(Event.objects.values_list("player_id", flat=True)) == ["player-2"]
    assert SuppressedPlayer.objects.get().reason == "ticket 9"
    entry = LogEntry.objects.get(user=eraser.user)
    assert (entry.action_flag, "2 events" in entry.get_change_message()) == (ADDITION, True)


def confirmed(page) -> dict:
    """Return what the confirmation page's form posts back (its hidden fields), as the browser would."""
    html = page.content.decode()
    start = html.index('<form method="post">')
    form = html[start : html.index("</form>", start)]
    fields: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form):
        fields.setdefault(name, []).append(unescape(value))
    return fields


def test_select_all_erases_every_player_it_confirmed_and_none_that_appeared_since(eraser, stored_player, game_key):
    one = Event.objects.filter(player_id="player-1").values_list("pk", flat=True)[0]
    action = {"action": "erase_selected_players", "_selected_action": [one], "select_across": "1"}

    confirm = eraser.post(EVENTS_URL, action)
    ingest_events(
        api_key=game_key[0],
        raw_events=[{"event_type": "install", "player_id": "player-3", "occurred_at": "2026-11-25T10:00:00Z"}],
        received_at=timezone.now(),
    )
    eraser.post(EVENTS_URL, confirmed(confirm))

    assert [player[:2] for player in confirm.context["players"]] == [
        ("space-raiders", "player-1"),
        ("space-raiders", "player-2"),
    ]
    assert sorted(SuppressedPlayer.objects.values_list("player_id", flat=True)) == ["player-1", "player-2"]
    assert list(Event.objects.values_list("player_id", flat=True)) == ["player-3"]


def test_the_erase_action_is_not_offered_without_the_permission(reader, stored_player):
    selected = list(Event.objects.values_list("pk", flat=True))

    page = reader.get(EVENTS_URL)
    reader.post(EVENTS_URL, {"action": "erase_selected_players", "_selected_action": selected, "post": "yes"})

    assert "erase_selected_players" not in page.content.decode()
    assert Event.objects.count() == 3
    assert not SuppressedPlayer.objects.exists()


# -- rejected events (finding 6) -------------------------------------------------------------------------------


def test_a_batch_of_invalid_events_keeps_only_the_first_few_bodies(api, settings, make_install):
    settings.EVENTS_REJECTIONS_PER_REQUEST = 20
    invalid = [make_install(player_id="") for _ in range(500)]

    body = api.post(BATCH, {"events": invalid}, format="json").json()

    assert body["rejected"] == 500
    assert RejectedEvent.objects.count() == 20


def test_a_segment_batch_keeps_at_most_the_per_request_number_of_rejections_in_all(client, game_key, settings):
    settings.EVENTS_REJECTIONS_PER_REQUEST = 20
    # Refused while mapping (no user) and by the native rules (a bad timestamp), across several ingest calls.
    unmapped = [{"type": "track", "event": "Application Installed", "messageId": str(uuid.uuid4())}] * 600
    invalid = [
        {
            "type": "track",
            "event": "Application Installed",
            "userId": "p",
            "timestamp": "soon",
            "messageId": str(uuid.uuid4()),
        }
    ] * 600

    response = client.post(
        "/v1/batch",
        {"batch": unmapped + invalid},
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(game_key[1]),
    )

    assert response.status_code == 200
    assert RejectedEvent.objects.count() == 20


def test_rejected_events_are_kept_seven_days_by_default(game_key):
    game = game_key[0].game
    now = timezone.now()
    old = RejectedEvent.objects.create(game=game, received_at=now - timedelta(days=8), errors={})
    recent = RejectedEvent.objects.create(game=game, received_at=now - timedelta(days=6), errors={})

    record_rejections(game=game, received_at=now, rejected=[({"player_id": "p"}, {"x": ["bad"]})])

    kept = set(RejectedEvent.objects.values_list("pk", flat=True))
    assert old.pk not in kept
    assert recent.pk in kept
    assert len(kept) == 2


def test_purge_deletes_rejected_events_past_the_max_age(game_key, settings):
    settings.EVENTS_REJECTIONS_MAX_AGE_DAYS = 2
    game = game_key[0].game
    now = timezone.now()
    RejectedEvent.objects.create(game=game, received_at=now - timedelta(days=3), errors={})
    RejectedEvent.objects.create(game=game, received_at=now - timedelta(days=1), errors={})

    assert purge_expired(now=now).rejected_events == 1
    assert RejectedEvent.objects.count() == 1


def test_a_rejected_event_keeps_the_player_it_named(api, make_install):
    api.post(BATCH, {"events": [make_install(platform="nintendo-64", player_id="player-9")]}, format="json")

    assert RejectedEvent.objects.get().player_id == "player-9"


@pytest.mark.django_db(transaction=True)
def test_a_retry_worker_recording_outcomes_for_an_event_erased_meanwhile_keeps_the_others(game_key, make_install):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite queues every writer on one lock: an erasure never runs between a sender's read and write")
    store(game_key, [make_install(), make_install(player_id="player-2")])
    set_state(list(Event.objects.order_by("pk")), DeliveryState.FAILED)  # both due for a retry
    token, issues = retry.claim_due(limit=10)
    assert len(issues) == 2
    erased, kept = Event.objects.get(player_id="player-1"), Event.objects.get(player_id="player-2")
    locked, go_on, errors = threading.Event(), threading.Event(), []

    def erasure_batch():  # erase_player's batch: the player's issues locked, then deleted with the events
        try:
            with transaction.atomic():
                list(DeliveryIssue.objects.filter(event_id=erased.pk).select_for_update().values_list("pk", flat=True))
                locked.set()
                go_on.wait(30)
                DeliveryIssue.objects.filter(event_id=erased.pk).delete()
                Event.objects.filter(pk=erased.pk).delete()
        finally:
            connection.close()

    def sender():  # the retry worker recording that the destination took both
        now = timezone.now()
        report = SendReport(emitted_at=now, calls=[CallReport(called_at=now, members=[0, 1], records=1, bytes=600)])
        try:
            retry._record(issues=issues, token=token, report=report, destination="firehose", counts=DeliveryCounts())
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=erasure_batch), threading.Thread(target=sender)]
    threads[0].start()
    assert locked.wait(30)
    threads[1].start()
    deadline = time.monotonic() + 30
    with connection.cursor() as cursor:
        while True:  # until the sender queues behind the erasure's row lock
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            if cursor.fetchone()[0]:
                break
            assert time.monotonic() < deadline, "the sender did not wait for the erasure"
    go_on.set()
    for thread in threads:
        thread.join(30)

    assert errors == []  # an outcome for the erased row must not fail the whole record
    assert list(Event.objects.values_list("player_id", flat=True)) == ["player-2"]
    (issue,) = DeliveryIssue.objects.all()
    assert (issue.event_id, issue.state, issue.claim_token) == (kept.pk, IssueState.DELIVERED, None)
    assert issue.delivered_by == DeliveryCall.objects.get()
