"""The idempotency window: a repeat within EVENTS_DEDUP_WINDOW_HOURS is a duplicate, exactly, even at a bucket boundary.

The window's clock is the database's (keys.begin: PostgreSQL's now(), SQLite's
process clock); these tests move it on purpose by shifting what keys.begin returns,
per thread, so two "servers" can stand on either side of a boundary.
"""

import threading
import time
import uuid

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from events_app import idempotency as keys
from events_app.api.keys import issue_api_key
from events_app.ingest.service import ACCEPTED, DUPLICATE, REJECTED, ingest_events
from events_app.models import Event, EventKey

HOUR = 3600.0
_shift = threading.local()


@pytest.fixture(autouse=True)
def movable_clock(monkeypatch):
    """Let each thread move the window's clock: keys.begin(...) plus this thread's shift (seconds)."""
    real_begin = keys.begin
    monkeypatch.setattr(keys, "begin", lambda **kwargs: real_begin(**kwargs) + getattr(_shift, "seconds", 0.0))
    yield
    _shift.seconds = 0.0


def at(moment: float) -> None:
    """Stand this thread's clock at `moment` (epoch seconds), whatever the real time (to within milliseconds)."""
    _shift.seconds = moment - time.time()


def send(key, event: dict) -> dict:
    outcome = ingest_events(api_key=key, raw_events=[event], received_at=timezone.now())
    return outcome.results[0]


def install(event_id: str, player: str = "p1") -> dict:
    return {
        "event_id": event_id,
        "event_type": "install",
        "player_id": player,
        "occurred_at": timezone.now().isoformat(),
        "properties": {"store": "app_store"},
    }


def boundary() -> float:
    """Return the start of a bucket (a boundary) a few buckets from now."""
    width = keys.window_seconds()
    return (int(time.time() // width) + 3) * width


@pytest.mark.django_db
def test_a_repeat_within_the_window_is_a_duplicate_and_one_after_two_windows_is_stored_again(settings):
    settings.EVENTS_DEDUP_WINDOW_HOURS = 1
    key = issue_api_key(game_slug="window", name="t")[0]
    event_id = str(uuid.uuid4())
    start = boundary() + 0.5 * HOUR  # mid-bucket, far from any boundary's grace

    at(start)
    assert send(key, install(event_id))["status"] == ACCEPTED
    at(start + HOUR - 1)  # just inside the window, in the next bucket
    assert send(key, install(event_id))["status"] == DUPLICATE
    at(start + 2 * HOUR + 1)  # two windows on: forgotten, as the contract allows
    assert send(key, install(event_id))["status"] == ACCEPTED
    assert Event.objects.filter(event_id=event_id).count() == 2


@pytest.mark.django_db
def test_a_conflicting_repeat_in_a_buckets_last_minutes_is_rejected_and_claims_no_key(settings):
    # In the grace a new key also goes into the next bucket; a repeat of a key stored
    # earlier in this bucket must find it there, not slip its own key into the next one.
    settings.EVENTS_DEDUP_WINDOW_HOURS = 1
    key = issue_api_key(game_slug="grace", name="t")[0]
    event_id = str(uuid.uuid4())
    start = boundary()

    at(start + 100)
    assert send(key, install(event_id, player="alice"))["status"] == ACCEPTED
    at(start + HOUR - 60)  # inside the grace: keys are written into this bucket and the next
    conflict = send(key, install(event_id, player="mallory"))
    same = send(key, install(event_id, player="alice"))

    assert conflict["status"] == REJECTED and "Conflicts with an event already stored" in str(conflict["errors"])
    assert same["status"] == DUPLICATE
    bucket = int(start // keys.window_seconds())
    assert list(EventKey.objects.filter(event_id=event_id).values_list("bucket", flat=True)) == [bucket]


@pytest.mark.django_db
def test_a_purchase_transaction_id_stays_a_duplicate_long_after_the_event_window(settings, make_purchase):
    settings.EVENTS_DEDUP_WINDOW_HOURS = 1
    key = issue_api_key(game_slug="receipts", name="t")[0]
    purchase = make_purchase(
        properties={"transaction_id": "gp-1", "product_id": "gems", "price": "1.99", "currency": "USD"}
    )
    start = boundary() + 0.5 * HOUR

    at(start)
    assert send(key, purchase)["status"] == ACCEPTED
    at(start + 30 * 24 * HOUR)  # a month on, the same receipt with a new event id
    repeat = send(key, {**purchase, "event_id": str(uuid.uuid4())})
    assert (repeat["status"], repeat["event_id"]) == (DUPLICATE, purchase["event_id"])
    other_player = send(key, {**purchase, "event_id": str(uuid.uuid4()), "player_id": "someone-else"})
    assert other_player["status"] == REJECTED
    assert "transaction_id" in other_player["errors"]["properties"]


@pytest.mark.django_db
def test_near_a_boundary_a_new_key_is_written_in_both_buckets(settings):
    settings.EVENTS_DEDUP_WINDOW_HOURS = 1
    key = issue_api_key(game_slug="edge", name="t")[0]
    edge = boundary()

    at(edge - 10)
    send(key, install(str(uuid.uuid4())))
    at(edge - HOUR / 2)
    send(key, install(str(uuid.uuid4()), player="p2"))

    buckets = sorted(EventKey.objects.values_list("bucket", flat=True))
    first = int(edge // keys.window_seconds())
    assert buckets == [first - 1, first - 1, first]  # the one near the end is in the next bucket too


@pytest.mark.django_db
def test_a_copy_just_after_a_boundary_is_a_duplicate_of_one_just_before(settings):
    settings.EVENTS_DEDUP_WINDOW_HOURS = 1
    key = issue_api_key(game_slug="edge-seq", name="t")[0]
    edge = boundary()
    event_id = str(uuid.uuid4())

    at(edge - 1)
    assert send(key, install(event_id))["status"] == ACCEPTED
    at(edge + 1)
    assert send(key, install(event_id))["status"] == DUPLICATE


@pytest.mark.django_db(transaction=True)
def test_copies_arriving_at_the_same_moment_on_either_side_of_a_boundary_are_stored_once(settings):
    """Two servers, one just before a bucket's end, one just after, with the same event at the same moment.

    PostgreSQL's case: its writers run side by side (SQLite queues them, and the test above covers it).
    """
    if connection.vendor != "postgresql":
        pytest.skip("SQLite queues writers: the sequential case above is its whole story")
    settings.EVENTS_DEDUP_WINDOW_HOURS = 1
    key = issue_api_key(game_slug="race", name="t")[0]
    edge = boundary()
    event_id = str(uuid.uuid4())
    results: dict[str, dict] = {}
    first_claimed = threading.Event()
    release_first = threading.Event()

    def before_the_boundary():
        at(edge - 1)
        try:
            with transaction.atomic():
                results["before"] = send(key, install(event_id))
                first_claimed.set()  # its key is written, not yet committed
                release_first.wait(10)
        finally:
            connections.close_all()

    def after_the_boundary():
        at(edge + 1)
        try:
            results["after"] = send(key, install(event_id))
        finally:
            connections.close_all()

    first = threading.Thread(target=before_the_boundary)
    first.start()
    assert first_claimed.wait(10)
    second = threading.Thread(target=after_the_boundary)
    second.start()
    second.join(0.5)
    assert second.is_alive()  # waiting on the first's uncommitted key in the bucket both write
    release_first.set()
    first.join(10)
    second.join(10)

    assert sorted(result["status"] for result in results.values()) == [ACCEPTED, DUPLICATE]
    assert Event.objects.filter(event_id=event_id).count() == 1
