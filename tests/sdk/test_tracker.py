"""The background Tracker against a local stand-in for the tracker: batching, retries, overflow, persistence."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from devtools.processes import free_port, wait_for
from sdk import (
    DROP_OLDEST,
    EventRejectedError,
    EventSetAsideError,
    InvalidEventError,
    RetryPolicy,
    SpoolPermissionWarning,
    Tracker,
    TrackerAuthError,
    TrackerBadResponseError,
    TrackerRejectedError,
    TrackerStats,
    TrackerUnavailableError,
    __version__,
    default_spool_path,
)
from tests.sdk.helpers import (
    CLOSE,
    Answer,
    FakeClock,
    FakeTracker,
    RecordedRequest,
    accept_everything,
    answer,
    answers,
    fail_batches_holding,
    spool_count,
)

API_KEY = "test-key"


@pytest.fixture
def fake(fake_server: FakeTracker) -> FakeTracker:
    fake_server.reset()
    return fake_server


@pytest.fixture
def make_tracker(fake: FakeTracker) -> Iterator[Callable[..., Tracker]]:
    """Return a factory of Trackers aimed at the stand-in (override with base_url); all closed after the test."""
    made: list[Tracker] = []

    def make(**options: Any) -> Tracker:
        options = {"base_url": fake.url, "api_key": API_KEY, **options}
        tracker = Tracker(**options)
        made.append(tracker)
        return tracker

    yield make
    for tracker in made:
        tracker.close(timeout=5)


class Errors:
    """An on_error callback that records what it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[Exception, list[dict]]] = []

    def __call__(self, error: Exception, events: list[dict]) -> None:
        self.calls.append((error, events))


@pytest.fixture
def gate(fake: FakeTracker) -> Iterator[threading.Event]:
    """Make the stand-in hold every request until the test sets the returned event."""
    opened = threading.Event()

    def respond(request: RecordedRequest):
        opened.wait(30)
        return accept_everything(request)

    fake.respond = respond
    yield opened
    opened.set()


def balanced(stats: TrackerStats) -> bool:
    return stats.queued + stats.restored == stats.sent + stats.failed + stats.dropped + stats.pending


def purchase_of(tracker: Tracker, n: int = 0, **changes: Any) -> str | None:
    options = {"transaction_id": f"GPA.{uuid.uuid4()}", "product_id": "gems_100", "price": "4.99", "currency": "EUR"}
    return tracker.track_purchase(f"player-{n}", **{**options, **changes})


def spooled_ids(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [row[0] for row in db.execute("SELECT event_id FROM spooled_event ORDER BY id")]


# Tracking and batching


def test_tracked_events_arrive_gzipped_with_their_fields(make_tracker, fake):
    tracker = make_tracker(flush_interval=3600)

    install_id = tracker.track_install("player-42", store="google_play", country="DE", platform="android")
    purchase_id = tracker.track_purchase(
        "player-42",
        transaction_id="GPA.1",
        product_id="coins_500",
        price=Decimal("4.99"),
        currency="EUR",
        quantity=2,
        platform="android",
        app_version="1.2.3",
        session_id="s-1",
        context={"level": 7},
    )
    assert tracker.flush(timeout=30)

    (request,) = fake.requests
    assert request.path == "/v1/events/batch"
    assert request.headers["Content-Encoding"] == "gzip"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["User-Agent"].startswith(f"playertrack/{__version__} python/")
    install, purchase = request.json["events"]
    assert install["event_id"] == install_id
    assert install["properties"] == {"store": "google_play", "country": "DE"}
    assert purchase["event_id"] == purchase_id
    assert purchase["properties"] == {
        "transaction_id": "GPA.1",
        "product_id": "coins_500",
        "price": "4.99",
        "currency": "EUR",
        "quantity": 2,
    }
    assert (purchase["platform"], purchase["app_version"], purchase["session_id"]) == ("android", "1.2.3", "s-1")
    assert purchase["context"] == {"level": 7}
    assert request.json["sent_at"].endswith("Z")
    assert tracker.stats() == TrackerStats(
        queued=2,
        restored=0,
        sent=2,
        accepted=2,
        duplicates=0,
        failed=0,
        rejected=0,
        dropped=0,
        retried=0,
        requests=1,
        pending=0,
    )


def test_a_batch_goes_as_soon_as_100_events_wait(make_tracker, fake):
    tracker = make_tracker(flush_interval=3600)

    ids = [tracker.track_install(f"player-{n}") for n in range(130)]
    fake.wait_for_requests(1)

    assert fake.requests[0].event_ids == ids[:100]
    assert tracker.flush(timeout=30)
    assert fake.sent_event_ids() == ids


def test_a_batch_goes_as_soon_as_500_kb_wait(make_tracker, fake):
    tracker = make_tracker(flush_interval=3600)
    blob = "x" * 7000  # about 7 KB per event: 500 KB is about 73 events

    ids = [tracker.track_install(f"player-{n}", context={"blob": blob}) for n in range(90)]
    fake.wait_for_requests(1)

    first = fake.requests[0]
    assert 60 < len(first.event_ids) < 90
    assert len(first.body) <= 500 * 1024 + 100  # the batch, plus its envelope
    assert tracker.flush(timeout=30)
    assert fake.sent_event_ids() == ids


def test_a_partial_batch_goes_when_the_flush_interval_passes(make_tracker, fake):
    tracker = make_tracker(flush_interval=0.05)

    ids = [tracker.track_install(f"player-{n}") for n in range(3)]
    fake.wait_for_requests(1)  # no flush() call: the interval alone sends it

    assert fake.requests[0].event_ids == ids


def test_flush_returns_once_everything_is_sent_in_batches_of_at_most_100(make_tracker, fake):
    tracker = make_tracker(flush_interval=3600)
    ids = [tracker.track_install(f"player-{n}") for n in range(250)]

    assert tracker.flush(timeout=30)

    assert fake.sent_event_ids() == ids
    assert all(len(request.event_ids) <= 100 for request in fake.requests)
    assert tracker.stats().sent == 250
    assert tracker.pending == 0


def test_close_sends_what_waits(make_tracker, fake):
    tracker = make_tracker(flush_interval=3600)
    ids = [tracker.track_install(f"player-{n}") for n in range(5)]

    assert tracker.close() is True

    assert fake.sent_event_ids() == ids


def test_events_tracked_after_close_are_dropped_and_counted(make_tracker, fake):
    tracker = make_tracker()
    tracker.close()

    assert tracker.track_install("player-1") is None

    assert tracker.stats().dropped == 1
    assert fake.requests == []


def test_many_threads_tracking_at_once_lose_and_repeat_nothing(make_tracker, fake):
    tracker = make_tracker(flush_interval=0.05)
    ids: list[str] = []

    def play(player: int) -> None:
        ids.extend(tracker.track_install(f"player-{player}-{n}") for n in range(500))

    threads = [threading.Thread(target=play, args=(player,)) for player in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tracker.flush(timeout=60)

    assert sorted(fake.sent_event_ids()) == sorted(ids)
    assert len(set(ids)) == 4000
    assert balanced(tracker.stats())


def test_the_sync_mode_has_sent_the_event_when_track_returns_and_starts_no_thread(make_tracker, fake):
    threads_before = threading.active_count()
    tracker = make_tracker(sync=True)

    event_id = tracker.track_install("player-1")

    assert fake.sent_event_ids() == [event_id]
    assert tracker.stats().sent == 1
    assert threading.active_count() <= threads_before + 1  # at most the stand-in's request thread


# Local checks


def test_an_invalid_event_raises_naming_every_bad_field_and_is_not_queued(make_tracker, fake):
    tracker = make_tracker(sync=True)

    with pytest.raises(InvalidEventError) as caught:
        tracker.track_purchase(
            "", transaction_id="GPA.1", product_id="gems", price="-1", currency="EURO", platform="amiga"
        )

    assert set(caught.value.errors) == {"player_id", "platform", "properties.price", "properties.currency"}
    assert "player_id: may not be blank" in str(caught.value)
    assert tracker.stats().queued == 0
    assert fake.requests == []


def test_a_float_price_is_refused(make_tracker):
    tracker = make_tracker(sync=True)

    with pytest.raises(InvalidEventError, match="float"):
        tracker.track_purchase("player-1", transaction_id="GPA.1", product_id="gems", price=4.99, currency="EUR")


def test_a_price_with_more_decimals_than_its_currency_has_is_refused(make_tracker):
    tracker = make_tracker(sync=True)

    with pytest.raises(InvalidEventError, match="JPY"):
        tracker.track_purchase("player-1", transaction_id="GPA.1", product_id="gems", price="120.5", currency="JPY")


def test_a_given_event_id_is_kept_and_written_canonically(make_tracker, fake):
    tracker = make_tracker(sync=True)
    event_id = uuid.uuid4()

    returned = tracker.track_install("player-1", event_id=event_id.hex.upper())

    assert returned == str(event_id)
    assert fake.sent_event_ids() == [str(event_id)]


def test_an_event_id_that_is_not_a_uuid_is_refused(make_tracker):
    tracker = make_tracker(sync=True)

    with pytest.raises(InvalidEventError, match="event_id"):
        tracker.track_install("player-1", event_id="order-42")


def test_occurred_at_goes_out_in_utc_and_a_naive_one_is_refused(make_tracker, fake):
    tracker = make_tracker(sync=True)
    paris = timezone(timedelta(hours=2))

    tracker.track_install("player-1", occurred_at=datetime(2025, 7, 1, 14, 30, 5, 123456, tzinfo=paris))
    with pytest.raises(InvalidEventError, match="time zone"):
        tracker.track_install("player-1", occurred_at=datetime(2025, 7, 1, 14, 30))  # noqa: DTZ001 (naive on purpose)

    assert fake.requests[0].json["events"][0]["occurred_at"] == "2025-07-01T12:30:05.123Z"


def test_occurred_at_defaults_to_now(make_tracker, fake):
    tracker = make_tracker(sync=True)

    before = datetime.now(UTC).replace(microsecond=0)
    tracker.track_install("player-1")
    after = datetime.now(UTC)

    occurred_at = datetime.fromisoformat(fake.requests[0].json["events"][0]["occurred_at"])
    assert before <= occurred_at <= after


def test_without_validation_types_the_sdk_does_not_know_yet_go_out(make_tracker, fake):
    tracker = make_tracker(sync=True, validate=False)

    tracker.track("level_up", "player-1", properties={"level": 7})

    assert fake.requests[0].json["events"][0]["event_type"] == "level_up"


# The typed helpers of the other built-in types, and custom types


def test_each_typed_helper_queues_its_type_with_its_properties(make_tracker, fake):
    tracker = make_tracker(flush_interval=3600)

    ids = [
        tracker.track_session_start("player-1", session_id="s-1", platform="ios"),
        tracker.track_progression("player-1", status="start", level="world1:level3", session_id="s-1"),
        tracker.track_progression(
            "player-1", status="complete", level="world1:level3", score=1200, attempt=2, session_id="s-1"
        ),
        tracker.track_resource(
            "player-1", flow="source", resource="gems", amount=Decimal("25"), item_type="reward", session_id="s-1"
        ),
        tracker.track_ad_impression(
            "player-1",
            ad_network="admob",
            ad_format="rewarded",
            ad_unit="level_end",
            revenue="0.0125",
            currency="USD",
            session_id="s-1",
        ),
        tracker.track_session_end("player-1", session_id="s-1", duration_ms=61_000),
    ]
    assert tracker.flush(timeout=30)

    events = fake.requests[0].json["events"]
    assert [event["event_id"] for event in events] == ids
    assert [event["event_type"] for event in events] == [
        "session_start",
        "progression",
        "progression",
        "resource",
        "ad_impression",
        "session_end",
    ]
    assert {event["session_id"] for event in events} == {"s-1"}
    assert [event.get("properties", {}) for event in events] == [
        {},
        {"status": "start", "level": "world1:level3"},
        {"status": "complete", "level": "world1:level3", "score": 1200, "attempt": 2},
        {"flow": "source", "resource": "gems", "amount": "25", "item_type": "reward"},
        {
            "ad_network": "admob",
            "ad_format": "rewarded",
            "ad_unit": "level_end",
            "revenue": "0.0125",
            "currency": "USD",
        },
        {"duration_ms": 61_000},
    ]
    assert events[0]["platform"] == "ios"


@pytest.mark.parametrize(
    ("helper", "arguments", "fields"),
    [
        ("track_session_start", {"session_id": ""}, {"session_id"}),
        ("track_session_end", {"session_id": "s-1", "duration_ms": -1}, {"properties.duration_ms"}),
        ("track_session_end", {"session_id": None, "duration_ms": 8e8}, {"session_id", "properties.duration_ms"}),
        ("track_progression", {"status": "won", "level": ""}, {"properties.status", "properties.level"}),
        ("track_progression", {"status": "fail", "level": "w1", "attempt": 0}, {"properties.attempt"}),
        ("track_resource", {"flow": "spend", "resource": "g", "amount": "0"}, {"properties.flow", "properties.amount"}),
        ("track_resource", {"flow": "sink", "resource": "gems", "amount": 2.5}, {"properties.amount"}),
        ("track_ad_impression", {"ad_network": "admob", "ad_format": "video"}, {"properties.ad_format"}),
        ("track_ad_impression", {"ad_network": "x", "ad_format": "banner", "revenue": "0.01"}, {"properties.currency"}),
        (
            "track_ad_impression",
            {"ad_network": "x", "ad_format": "banner", "revenue": 0.01, "currency": "USD"},
            {"properties.revenue"},
        ),
    ],
)
def test_a_helper_given_bad_values_raises_naming_them_and_queues_nothing(make_tracker, fake, helper, arguments, fields):
    tracker = make_tracker(sync=True)

    with pytest.raises(InvalidEventError) as caught:
        getattr(tracker, helper)("player-1", **arguments)

    assert set(caught.value.errors) == fields
    assert tracker.stats().queued == 0
    assert fake.requests == []


def test_a_float_amount_is_refused_as_inexact(make_tracker):
    tracker = make_tracker(sync=True)

    with pytest.raises(InvalidEventError, match="float"):
        tracker.track_resource("player-1", flow="source", resource="gems", amount=0.1)


def test_a_custom_type_is_checked_for_its_name_size_and_json_only(make_tracker, fake):
    tracker = make_tracker(sync=True)

    event_id = tracker.track("level_up", "player-1", properties={"level": 3, "hero": {"class": "mage"}})

    (sent,) = fake.requests[0].json["events"]
    assert (sent["event_id"], sent["event_type"]) == (event_id, "level_up")
    assert sent["properties"] == {"level": 3, "hero": {"class": "mage"}}


def test_a_custom_event_can_pin_its_schema_version_and_a_built_in_one_cannot(make_tracker, fake):
    tracker = make_tracker(sync=True)

    tracker.track("level_up", "player-1", properties={"level": 3}, event_schema_version=2)
    with pytest.raises(InvalidEventError) as built_in:
        tracker.track("install", "player-1", properties={"store": "app_store"}, event_schema_version=1)
    with pytest.raises(InvalidEventError) as not_a_version:
        tracker.track("level_up", "player-1", event_schema_version=True)

    (sent,) = fake.requests[0].json["events"]
    assert sent["event_schema_version"] == 2
    assert "built-in event types have no schema version" in built_in.value.errors["event_schema_version"][0]
    assert list(not_a_version.value.errors) == ["event_schema_version"]


@pytest.mark.parametrize(
    ("event_type", "properties", "field"),
    [
        ("Level Up", {}, "event_type"),
        ("a" * 65, {}, "event_type"),
        ("level_up", {"ratio": float("nan")}, "properties.ratio"),
        ("level_up", {"blob": "x" * 40_000}, "event"),
    ],
)
def test_a_custom_event_that_cannot_be_sent_raises_naming_why(make_tracker, fake, event_type, properties, field):
    tracker = make_tracker(sync=True)

    with pytest.raises(InvalidEventError) as caught:
        tracker.track(event_type, "player-1", properties=properties)

    assert field in caught.value.errors
    assert fake.requests == []


def test_segment_call_types_take_free_form_properties(make_tracker, fake):
    tracker = make_tracker(sync=True)

    tracker.track("identify", "player-1", properties={"name": "Ada", "vip": True})

    assert fake.requests[0].json["events"][0]["properties"] == {"name": "Ada", "vip": True}


# Delivery: retries, rejections


def sync_tracker(make_tracker, clock: FakeClock, **options: Any) -> Tracker:
    policy = options.pop("retry", RetryPolicy(random=lambda: 1.0))
    return make_tracker(sync=True, clock=clock, sleep=clock.sleep, retry=policy, **options)


def test_network_errors_429_and_5xx_are_retried_with_the_same_event_ids(make_tracker, fake):
    clock = FakeClock()
    fake.respond = answers((503, {"detail": "down"}, {}), CLOSE, (429, {"detail": "slow down"}, {}))
    tracker = sync_tracker(make_tracker, clock)

    event_id = tracker.track_install("player-1")

    assert [request.event_ids for request in fake.requests] == [[event_id]] * 4
    assert len({request.json["events"][0]["occurred_at"] for request in fake.requests}) == 1
    stats = tracker.stats()
    assert (stats.sent, stats.retried, stats.requests, stats.failed) == (1, 3, 4, 0)


def test_retries_back_off_exponentially_up_to_the_cap(make_tracker, fake):
    clock = FakeClock()
    fake.respond = answers(*[(503, {}, {})] * 6)
    tracker = sync_tracker(make_tracker, clock, retry=RetryPolicy(base=0.5, cap=4, budget=1000, random=lambda: 1.0))

    tracker.track_install("player-1")

    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_backoff_is_full_jitter_between_zero_and_the_ceiling():
    policy = RetryPolicy(base=0.5, cap=30)
    for retry in range(1, 12):
        ceiling = min(30, 0.5 * 2 ** (retry - 1))
        delays = [policy.delay(retry) for _ in range(200)]
        assert all(0 <= delay <= ceiling for delay in delays)
        assert max(delays) > ceiling / 2  # spread out, not a fixed step


def test_retry_after_is_honoured(make_tracker, fake):
    clock = FakeClock()
    fake.respond = answers((429, {"detail": "slow down"}, {"Retry-After": "7"}))
    tracker = sync_tracker(make_tracker, clock, retry=RetryPolicy(random=lambda: 0.0))

    tracker.track_install("player-1")

    assert clock.sleeps == [7.0]
    assert tracker.stats().sent == 1


def test_a_batch_is_given_up_once_its_retry_budget_is_spent(make_tracker, fake):
    clock = FakeClock()
    errors = Errors()
    fake.respond = answer(503, {"detail": "down"})
    tracker = sync_tracker(
        make_tracker, clock, on_error=errors, retry=RetryPolicy(base=1, cap=8, budget=20, random=lambda: 1.0)
    )

    event_id = tracker.track_install("player-1")

    assert clock.sleeps == [1, 2, 4, 8]  # the next wait, 8 more, would end past 20 s
    assert len(fake.requests) == 5
    ((error, events),) = errors.calls
    assert isinstance(error, TrackerUnavailableError)
    assert [event["event_id"] for event in events] == [event_id]
    stats = tracker.stats()
    assert (stats.failed, stats.rejected, stats.sent, stats.pending) == (1, 0, 0, 0)


@pytest.mark.parametrize("status", [400, 404, 413])
def test_other_4xx_answers_are_not_retried_and_go_to_on_error(make_tracker, fake, status):
    errors = Errors()
    fake.respond = answer(status, {"detail": "no"})
    tracker = make_tracker(sync=True, on_error=errors)

    event_id = tracker.track_install("player-1")

    assert len(fake.requests) == 1
    ((error, events),) = errors.calls
    assert isinstance(error, TrackerRejectedError)
    assert (error.status_code, error.body) == (status, {"detail": "no"})
    assert [event["event_id"] for event in events] == [event_id]
    stats = tracker.stats()
    assert (stats.failed, stats.rejected, stats.retried) == (1, 1, 0)


# A refused key (401, 403): the events are kept, the key asked for again slowly.


def refuse_the_key(request: RecordedRequest) -> Answer:
    return 401, {"detail": "Invalid API key."}, {}


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_keeps_the_events_reports_each_refusal_and_asks_again_slowly(make_tracker, fake, status):
    clock = FakeClock()
    errors = Errors()
    fake.respond = answer(status, {"detail": "no"})
    tracker = sync_tracker(make_tracker, clock, on_error=errors)  # random 1.0: waits of 30 s, then 60 s

    first = tracker.track_install("player-1")
    second = tracker.track_install("player-2")  # within the 30 s: not sent
    clock.now += 30
    third = tracker.track_install("player-3")  # asks again, with everything kept, in order

    assert [request.event_ids for request in fake.requests] == [[first], [first, second, third]]
    assert [type(error) for error, _ in errors.calls] == [TrackerAuthError, TrackerAuthError]
    assert errors.calls[0][1][0]["event_id"] == first and errors.calls[0][0].status_code == status
    stats = tracker.stats()
    assert (stats.failed, stats.dropped, stats.pending, stats.retried) == (0, 0, 3, 0)
    assert clock.sleeps == []  # the caller's thread never waited: the next try comes with a later call

    fake.respond = accept_everything  # the key is good again (the server restored it)
    clock.now += 59
    tracker.track_install("player-4")
    assert len(fake.requests) == 2  # the second refusal holds off 60 s
    clock.now += 1
    fourth = tracker.track_install("player-5")

    assert fake.requests[-1].event_ids[0] == first and fake.requests[-1].event_ids[-1] == fourth
    assert fake.sent_event_ids().count(first) == 3  # refused twice, then accepted once
    stats = tracker.stats()
    assert (stats.sent, stats.failed, stats.pending) == (5, 0, 0)
    assert balanced(stats)


def test_the_slow_retries_of_a_refused_key_double_up_to_their_cap_and_are_jittered():
    assert [RetryPolicy(random=lambda: 1.0).auth_delay(n) for n in (1, 2, 3, 5, 6, 20)] == [30, 60, 120, 480, 600, 600]
    delays = [RetryPolicy().auth_delay(1) for _ in range(200)]
    assert all(15 <= delay <= 30 for delay in delays) and max(delays) - min(delays) > 5
    with pytest.raises(ValueError, match="auth_base"):
        RetryPolicy(auth_base=60, auth_cap=30)


def test_a_refused_key_keeps_the_queue_until_the_tracker_takes_it_again_then_close_reports_the_rest(make_tracker, fake):
    errors = Errors()
    fake.respond = refuse_the_key
    tracker = make_tracker(on_error=errors)
    ids = [tracker.track_install(f"player-{n}") for n in range(3)]

    assert tracker.flush(timeout=10) is False  # answered, but not taken
    assert tracker.stats().pending == 3 and tracker.stats().failed == 0
    fake.respond = accept_everything
    assert tracker.flush(timeout=10) is True  # flush asks at once, however long the hold

    assert fake.sent_event_ids() == ids + ids
    assert [type(error) for error, _ in errors.calls] == [TrackerAuthError]

    # Refused again until close: without a spool, what is still in memory is given up and reported.
    fake.respond = refuse_the_key
    late = tracker.track_install("player-9")
    assert tracker.close(timeout=2) is False
    error, events = errors.calls[-1]
    assert not isinstance(error, TrackerAuthError) and "401" in str(error)
    assert [event["event_id"] for event in events] == [late]
    assert (tracker.stats().failed, tracker.stats().pending) == (1, 0)


def test_a_key_rotated_on_the_server_loses_no_spooled_event_and_the_next_start_with_the_new_key_sends_them(
    make_tracker, fake, tmp_path
):
    spool = tmp_path / "spool.sqlite3"
    errors = Errors()

    def only_the_new_key(request: RecordedRequest) -> Answer:
        if request.headers["Authorization"] != "Bearer new-key":
            return refuse_the_key(request)
        return accept_everything(request)

    fake.respond = only_the_new_key
    old = make_tracker(persist=spool, api_key="old-key", on_error=errors)
    ids = [purchase_of(old, n) for n in range(3)]

    assert old.flush(timeout=10) is False
    assert old.close(timeout=2) is False
    assert spooled_ids(spool) == ids  # kept, not dropped (issue: the spooled event was lost 6 s later)
    assert isinstance(errors.calls[0][0], TrackerAuthError)
    assert [event["event_id"] for event in errors.calls[0][1]] == ids
    assert old.stats().failed == 0

    new = make_tracker(persist=spool, api_key="new-key")
    assert new.flush(timeout=10) is True

    accepted = [
        event_id
        for request in fake.requests
        if request.headers["Authorization"] == "Bearer new-key"
        for event_id in request.event_ids
    ]
    assert accepted == ids
    assert spool_count(spool) == 0
    assert (new.stats().restored, new.stats().sent) == (3, 3)


def test_events_the_server_rejects_go_to_on_error_with_its_reasons_and_are_not_resent(make_tracker, fake):
    errors = Errors()
    reasons = {"properties": {"price": ["EUR allows at most 2 decimal places."]}}

    def reject_the_second(request: RecordedRequest):
        first, _ = request.event_ids
        return (
            200,
            {
                "accepted": 1,
                "duplicates": 0,
                "rejected": 1,
                "results": [
                    {"index": 0, "event_id": first, "status": "accepted"},
                    {"index": 1, "status": "rejected", "errors": reasons},
                ],
            },
            {},
        )

    fake.respond = reject_the_second
    tracker = make_tracker(flush_interval=3600, on_error=errors)
    tracker.track_install("player-1")
    rejected_id = purchase_of(tracker)

    assert tracker.flush(timeout=30)
    assert tracker.flush(timeout=30)

    assert len(fake.requests) == 1
    ((error, events),) = errors.calls
    assert isinstance(error, EventRejectedError)
    assert (error.errors, error.event_id) == (reasons, rejected_id)
    assert "price" in str(error)
    assert events[0]["event_id"] == rejected_id
    assert events[0]["properties"]["price"] == "4.99"
    stats = tracker.stats()
    assert (stats.accepted, stats.rejected, stats.failed, stats.pending) == (1, 1, 1, 0)


def test_duplicates_count_as_sent(make_tracker, fake):
    def duplicate(request: RecordedRequest):
        results = [{"index": i, "event_id": e, "status": "duplicate"} for i, e in enumerate(request.event_ids)]
        return 200, {"accepted": 0, "duplicates": len(results), "rejected": 0, "results": results}, {}

    fake.respond = duplicate
    tracker = make_tracker(sync=True)

    tracker.track_install("player-1")

    stats = tracker.stats()
    assert (stats.sent, stats.duplicates, stats.accepted) == (1, 1, 0)


def test_events_of_an_erased_player_count_as_sent_and_suppressed_not_as_errors(make_tracker, fake):
    def suppressed(request: RecordedRequest):
        results = [{"index": i, "status": "suppressed"} for i, _ in enumerate(request.event_ids)]
        return 200, {"accepted": 0, "duplicates": 0, "suppressed": len(results), "rejected": 0, "results": results}, {}

    fake.respond = suppressed
    errors = Errors()
    tracker = make_tracker(sync=True, on_error=errors)

    tracker.track_install("erased-player")

    stats = tracker.stats()
    assert (stats.sent, stats.suppressed, stats.failed, stats.rejected, stats.pending) == (1, 1, 0, 0, 0)
    assert not errors.calls
    assert len(fake.requests) == 1  # acknowledged: never sent again


def test_an_answer_that_is_not_the_trackers_json_is_retried(make_tracker, fake):
    clock = FakeClock()
    fake.respond = answers((200, "<html>Welcome to the airport wifi</html>", {}))
    errors = Errors()
    tracker = sync_tracker(make_tracker, clock, on_error=errors)

    tracker.track_install("player-1")

    assert len(fake.requests) == 2
    assert tracker.stats().sent == 1
    assert errors.calls == []


def test_a_captive_portal_error_names_the_problem():
    error = TrackerBadResponseError("the tracker answered 200 without a result for every event", status_code=200)

    assert error.retryable is True


def test_an_on_error_that_raises_does_not_stop_the_tracker(make_tracker, fake):
    def broken(error, events):
        raise RuntimeError("bug in the game's callback")

    fake.respond = answers((400, {"detail": "no"}, {}))
    tracker = make_tracker(flush_interval=3600, on_error=broken)

    tracker.track_install("player-1")
    assert tracker.flush(timeout=30)
    event_id = tracker.track_install("player-2")
    assert tracker.flush(timeout=30)

    assert fake.requests[-1].event_ids == [event_id]
    assert tracker.stats().sent == 1


def test_close_gives_up_by_its_deadline_when_the_tracker_is_down_and_reports_every_event(make_tracker):
    errors = Errors()
    tracker = make_tracker(
        base_url=f"http://127.0.0.1:{free_port()}",
        flush_interval=3600,
        on_error=errors,
        retry=RetryPolicy(base=0.05, cap=0.1, budget=600),
    )
    ids = [tracker.track_install(f"player-{n}") for n in range(250)]

    assert tracker.close(timeout=0.5) is False

    ((error, events),) = errors.calls  # one report, with the last reason
    assert sorted(event["event_id"] for event in events) == sorted(ids)
    assert "Connection refused" in str(error)
    stats = tracker.stats()
    assert (stats.failed, stats.pending, stats.sent) == (250, 0, 0)
    assert stats.retried > 0


# Overflow


def test_a_full_queue_drops_the_newest_events_counts_them_and_never_blocks(make_tracker, fake, gate):
    tracker = make_tracker(batch_size=5, max_queue_size=10, flush_interval=3600)
    first = [tracker.track_install(f"player-{n}") for n in range(5)]
    fake.wait_for_requests(1)  # the sender is now stuck in that request
    returned: list[str | None] = []

    caller = threading.Thread(target=lambda: returned.extend(tracker.track_install(f"p-{n}") for n in range(100)))
    caller.start()
    caller.join(timeout=30)

    assert not caller.is_alive(), "track_* blocked while the tracker was busy"
    assert all(returned[:10]) and returned[10:] == [None] * 90
    assert tracker.stats().dropped == 90
    gate.set()
    assert tracker.flush(timeout=30)
    assert fake.sent_event_ids() == first + returned[:10]
    assert balanced(tracker.stats())


def test_drop_oldest_keeps_the_latest_events(make_tracker, fake, gate):
    tracker = make_tracker(batch_size=5, max_queue_size=10, flush_interval=3600, overflow=DROP_OLDEST)
    first = [tracker.track_install(f"player-{n}") for n in range(5)]
    fake.wait_for_requests(1)

    later = [tracker.track_install(f"p-{n}") for n in range(100)]
    gate.set()

    assert tracker.flush(timeout=30)
    assert fake.sent_event_ids() == first + later[-10:]
    stats = tracker.stats()
    assert (stats.dropped, stats.sent) == (90, 15)
    assert balanced(stats)


# Persistence


def test_with_persistence_tracked_events_reach_the_spool_before_any_request(make_tracker, fake, tmp_path):
    spool = tmp_path / "spool.sqlite3"
    tracker = make_tracker(persist=spool, batch_size=500, flush_interval=3600)

    ids = [tracker.track_install(f"player-{n}") for n in range(10)]

    wait_for(lambda: spool_count(spool) == 10, timeout=10, what="10 events in the spool")
    assert spooled_ids(spool) == ids
    assert fake.requests == []


def test_spooled_events_leave_the_spool_only_once_the_tracker_answered(make_tracker, fake, gate, tmp_path):
    spool = tmp_path / "spool.sqlite3"
    tracker = make_tracker(persist=spool, flush_interval=3600)
    ids = [tracker.track_install(f"player-{n}") for n in range(3)]
    flushing = threading.Thread(target=tracker.flush, kwargs={"timeout": 30})
    flushing.start()

    fake.wait_for_requests(1)  # in flight, not yet answered
    assert spooled_ids(spool) == ids
    gate.set()
    flushing.join()

    assert spool_count(spool) == 0
    assert tracker.stats().sent == 3


def test_events_left_in_the_spool_are_sent_on_the_next_start(make_tracker, fake, tmp_path):
    spool = tmp_path / "spool.sqlite3"
    offline = make_tracker(
        persist=spool, base_url=f"http://127.0.0.1:{free_port()}", retry=RetryPolicy(base=0.05, cap=0.1)
    )
    ids = [offline.track_install(f"player-{n}") for n in range(20)]

    assert offline.close(timeout=0.3) is False
    assert offline.stats().pending == 20
    assert offline.stats().failed == 0
    assert spooled_ids(spool) == ids

    online = make_tracker(persist=spool, flush_interval=3600)
    assert online.stats().restored == 20
    assert online.flush(timeout=30)

    assert fake.sent_event_ids() == ids
    assert spool_count(spool) == 0
    assert balanced(online.stats())


@pytest.mark.parametrize(("overflow", "kept"), [("drop_newest", slice(0, 5)), ("drop_oldest", slice(3, 8))])
def test_a_full_spool_drops_by_the_overflow_policy(make_tracker, tmp_path, overflow, kept):
    spool = tmp_path / "spool.sqlite3"
    tracker = make_tracker(
        persist=spool,
        base_url=f"http://127.0.0.1:{free_port()}",
        max_spool_events=5,
        overflow=overflow,
        flush_interval=3600,
        batch_size=500,
    )

    ids = [tracker.track_install(f"player-{n}") for n in range(8)]

    wait_for(lambda: tracker.stats().dropped == 3, timeout=10, what="3 events dropped")
    assert spooled_ids(spool) == ids[kept]
    assert balanced(tracker.stats())
    tracker.close(timeout=0.1)  # offline: the spool keeps them


def test_rejected_events_leave_the_spool_too(make_tracker, fake, tmp_path):
    spool = tmp_path / "spool.sqlite3"
    fake.respond = answer(400, {"detail": "JSON parse error."})
    errors = Errors()
    tracker = make_tracker(persist=spool, sync=True, on_error=errors)

    tracker.track_install("player-1")

    assert spool_count(spool) == 0
    assert tracker.stats().rejected == 1
    assert len(errors.calls) == 1


def test_persistence_works_in_sync_mode(make_tracker, fake, tmp_path):
    spool = tmp_path / "spool.sqlite3"
    tracker = make_tracker(persist=spool, sync=True)

    event_id = tracker.track_install("player-1")

    assert fake.sent_event_ids() == [event_id]
    assert spool_count(spool) == 0


def test_options_out_of_range_are_refused():
    with pytest.raises(ValueError, match="batch_size"):
        Tracker(api_key=API_KEY, batch_size=501)
    with pytest.raises(ValueError, match="overflow"):
        Tracker(api_key=API_KEY, overflow="block")


# The spool's file permissions


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """Run with umask 000, so a mode the SDK gets right is not the umask's doing."""
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_the_spool_and_its_wal_files_are_private_in_a_private_folder_it_creates(make_tracker, tmp_path, loose_umask):
    spool = tmp_path / "game" / "data" / "spool.sqlite3"
    tracker = make_tracker(persist=spool, base_url=f"http://127.0.0.1:{free_port()}", flush_interval=3600)

    tracker.track_install("player-1")
    wait_for(lambda: spool_count(spool) == 1, timeout=10, what="1 event in the spool")

    assert mode_of(spool.parent) == 0o700
    files = [spool, Path(f"{spool}-wal"), Path(f"{spool}-shm")]
    assert all(file.exists() for file in files)
    assert {file.name: mode_of(file) for file in files} == {file.name: 0o600 for file in files}
    tracker.close(timeout=0.1)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_an_existing_readable_spool_is_tightened_and_a_loose_folder_reported_not_changed(
    make_tracker, fake, tmp_path, loose_umask, caplog
):
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    spool = folder / "spool.sqlite3"
    for file in (spool, Path(f"{spool}-wal"), Path(f"{spool}-shm")):
        file.touch(mode=0o644)

    with pytest.warns(SpoolPermissionWarning, match="other users") as caught:
        tracker = make_tracker(persist=spool, sync=True)
    tracker.track_install("player-1")

    assert caught[0].filename == __file__
    assert "can be read by other users" in caplog.text
    assert mode_of(folder) == 0o755  # the user's folder: reported, left alone
    assert {mode_of(spool), mode_of(Path(f"{spool}-wal")), mode_of(Path(f"{spool}-shm"))} == {0o600}


def test_persist_true_keeps_the_spool_in_the_users_data_folder(make_tracker, fake, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.chdir(tmp_path)

    tracker = make_tracker(persist=True, sync=True)
    tracker.track_install("player-1")

    assert default_spool_path() == tmp_path / "data" / "player-event-tracker" / "events.sqlite3"
    assert default_spool_path().exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]  # nothing left in the working directory
    assert tracker.stats().sent == 1


# Poison events: one event the tracker answers 5xx for, every time


def set_aside_rows(path: Path) -> list[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT event_id, reason FROM set_aside_event ORDER BY id").fetchall()


def requests_holding(fake: FakeTracker, event_id: str) -> int:
    return sum(event_id in request.event_ids for request in fake.requests)


def test_a_poison_event_is_isolated_by_bisection_and_the_others_of_its_batch_get_through(make_tracker, fake, tmp_path):
    clock = FakeClock()
    fake.respond = fail_batches_holding("poison")
    spool = tmp_path / "spool.sqlite3"
    tracker = make_tracker(  # the default backoff at its longest: 7 halvings of 100 must fit its budget
        persist=spool, flush_interval=3600, clock=clock, sleep=clock.sleep, retry=RetryPolicy(random=lambda: 1.0)
    )
    poison = tracker.track_install("poison")  # first: every first half holds it, 8 failures in a row
    others = [tracker.track_install(f"player-{n}") for n in range(99)]

    tracker.flush(timeout=30)

    answered = [request.event_ids for request in fake.requests if poison not in request.event_ids]
    assert sorted(event_id for ids in answered for event_id in ids) == sorted(others)  # each once
    assert [len(request.event_ids) for request in fake.requests][:9] == [100, 50, 25, 13, 7, 4, 2, 1, 1]
    assert spooled_ids(spool) == [poison]  # it waits alone and blocks nothing
    assert tracker.stats().sent == 99


def test_an_event_answered_5xx_alone_while_the_others_get_through_is_set_aside_and_never_resent(
    make_tracker, fake, tmp_path
):
    clock = FakeClock()
    errors = Errors()
    fake.respond = fail_batches_holding("poison")
    spool = tmp_path / "spool.sqlite3"
    tracker = make_tracker(
        persist=spool,
        flush_interval=3600,
        on_error=errors,
        clock=clock,
        sleep=clock.sleep,
        retry=RetryPolicy(random=lambda: 1.0),
    )
    poison = tracker.track_install("poison", store="bugged")
    others = [tracker.track_install(f"player-{n}") for n in range(5)]
    settled = [tracker.flush(timeout=30)]
    for round_ in range(4):  # the game goes on: each flush sends new events, then tries the poison alone again
        others += [tracker.track_install(f"player-{round_}-{n}") for n in range(2)]
        settled.append(tracker.flush(timeout=30))

    assert settled[-1] is True
    stats = tracker.stats()
    assert (stats.set_aside, stats.failed, stats.rejected, stats.sent, stats.pending) == (1, 1, 0, len(others), 0)
    assert balanced(stats)
    ((error, events),) = errors.calls
    assert isinstance(error, EventSetAsideError)
    assert (error.event_id, error.status_code) == (poison, 500)
    assert error.attempts > 5  # 5 of them while the tracker took the other events
    assert "5 of them while it took every other event" in str(error)
    assert events == [{**events[0], "event_id": poison, "properties": {"store": "bugged"}}]
    assert spool_count(spool) == 0
    ((row_id, reason),) = set_aside_rows(spool)  # kept for inspection, not deleted
    assert row_id == poison and "500" in reason
    (kept,) = tracker.set_aside_events()
    assert (kept.event_id, kept.event["player_id"]) == (poison, "poison")
    assert kept.set_aside_at.endswith("Z")

    attempts = requests_holding(fake, poison)
    tracker.track_install("player-late")
    assert tracker.flush(timeout=30)
    assert requests_holding(fake, poison) == attempts  # never resent

    tracker.close()
    assert [event.event_id for event in tracker.set_aside_events()] == [poison]  # still readable
    restarted = make_tracker(persist=spool, flush_interval=3600)
    assert restarted.stats().restored == 0  # nor after a restart
    assert [event.event_id for event in restarted.set_aside_events()] == [poison]


def test_when_every_request_fails_it_is_an_outage_and_nothing_is_set_aside(make_tracker, fake, tmp_path):
    clock = FakeClock()
    errors = Errors()
    fake.respond = answer(500, {"detail": "A server error occurred."})
    spool = tmp_path / "spool.sqlite3"
    tracker = make_tracker(
        persist=spool,
        flush_interval=3600,
        on_error=errors,
        clock=clock,
        sleep=clock.sleep,
        retry=RetryPolicy(random=lambda: 1.0),
    )
    ids: list[str | None] = []
    for round_ in range(8):  # a long outage: budget after budget spent, batches bisected down to single events
        ids += [tracker.track_install(f"player-{round_}-{n}") for n in range(5)]
        assert tracker.flush(timeout=30) is False

    assert len(fake.requests) > 40
    assert any(len(request.event_ids) == 1 for request in fake.requests)
    assert (tracker.stats().set_aside, tracker.stats().failed) == (0, 0)
    assert errors.calls == []
    assert spooled_ids(spool) == ids
    fake.respond = accept_everything  # the tracker is back
    assert tracker.flush(timeout=30)
    assert set(fake.sent_event_ids()) == set(ids)
    assert (tracker.stats().sent, tracker.stats().set_aside, spool_count(spool)) == (40, 0, 0)


def test_without_persistence_a_poison_event_is_set_aside_while_the_others_flow(make_tracker, fake):
    clock = FakeClock()
    errors = Errors()
    released = threading.Event()
    poison_rule = fail_batches_holding("poison")

    def hold_the_first_then_fail_the_poison(request: RecordedRequest):
        released.wait(30)
        return poison_rule(request)

    fake.respond = hold_the_first_then_fail_the_poison
    tracker = make_tracker(
        batch_size=2,
        flush_interval=3600,
        on_error=errors,
        clock=clock,
        sleep=clock.sleep,
        retry=RetryPolicy(random=lambda: 1.0),
    )
    poison = tracker.track_install("poison")
    others = [tracker.track_install(f"player-{n}") for n in range(15)]
    released.set()  # the first batch (the poison and one other) was in flight; the rest waited behind it

    assert tracker.flush(timeout=30)

    ((error, events),) = errors.calls
    assert isinstance(error, EventSetAsideError)
    assert events[0]["event_id"] == poison
    assert set(fake.sent_event_ids()) - {poison} == set(others)
    stats = tracker.stats()
    assert (stats.set_aside, stats.failed, stats.sent, stats.pending) == (1, 1, 15, 0)
    assert balanced(stats)
    assert tracker.set_aside_events() == []  # no spool: reported and counted only


def test_a_suspect_the_tracker_finally_takes_is_not_set_aside(make_tracker, fake, tmp_path):
    clock = FakeClock()
    failing = fail_batches_holding("flaky")
    fake.respond = answers(failing, failing, failing)  # a hiccup while that event was in flight: 3 times 500
    spool = tmp_path / "spool.sqlite3"
    tracker = make_tracker(
        persist=spool, flush_interval=3600, clock=clock, sleep=clock.sleep, retry=RetryPolicy(random=lambda: 1.0)
    )
    flaky = tracker.track_install("flaky")
    others = [tracker.track_install(f"player-{n}") for n in range(3)]

    assert tracker.flush(timeout=30)

    assert set(fake.sent_event_ids()) == {flaky, *others}
    assert (tracker.stats().set_aside, tracker.stats().sent) == (0, 4)
    assert tracker.set_aside_events() == []


def test_close_while_a_request_hangs_reports_every_event_still_in_memory(make_tracker, fake, gate):
    errors = Errors()
    tracker = make_tracker(batch_size=2, flush_interval=3600, on_error=errors)
    tracker.track_install("player-0")
    tracker.track_install("player-1")
    fake.wait_for_requests(1)  # the sender is held in that request
    waiting = [tracker.track_install(f"player-{n}") for n in range(2, 5)]

    assert tracker.close(timeout=0.2) is False

    ((error, events),) = errors.calls
    assert [event["event_id"] for event in events] == waiting
    assert "closed before these events were sent" in str(error)


@pytest.mark.parametrize(
    ("platform", "variable", "folder"),
    [
        ("linux", "XDG_DATA_HOME", "xdg"),
        ("darwin", None, "home/Library/Application Support"),
        ("win32", "LOCALAPPDATA", "xdg"),
    ],
)
def test_the_default_spool_is_in_the_platforms_user_data_folder(tmp_path, monkeypatch, platform, variable, folder):
    monkeypatch.setattr("sys.platform", platform)
    monkeypatch.setattr(Path, "home", lambda: tmp_path / "home")
    for name in ("XDG_DATA_HOME", "LOCALAPPDATA"):
        monkeypatch.delenv(name, raising=False)
    if variable:
        monkeypatch.setenv(variable, str(tmp_path / "xdg"))

    assert default_spool_path("mygame") == tmp_path / folder / "player-event-tracker" / "mygame.sqlite3"


def test_without_xdg_data_home_the_linux_default_is_under_local_share(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)

    assert default_spool_path() == tmp_path / ".local" / "share" / "player-event-tracker" / "events.sqlite3"


# disabled, shutdown, debug


def tracker_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name.startswith("tracker-")}


def test_a_disabled_tracker_checks_events_but_sends_and_stores_nothing_and_needs_no_key(fake, tmp_path, monkeypatch):
    monkeypatch.delenv("TRACKER_API_KEY", raising=False)
    threads_before = tracker_threads()
    spool = tmp_path / "spool.sqlite3"
    tracker = Tracker(disabled=True, base_url=fake.url, persist=spool)

    event_id = tracker.track_install("player-1", country="FR")
    with pytest.raises(InvalidEventError, match="player_id"):
        tracker.track_install("")  # a test still learns its event is wrong

    assert str(uuid.UUID(event_id)) == event_id
    assert tracker.flush() is True and tracker.shutdown() is True
    assert fake.requests == []
    assert not spool.exists()
    assert tracker_threads() == threads_before
    stats = tracker.stats()
    assert (stats.queued, stats.dropped, stats.sent, stats.pending) == (1, 1, 0, 0)


def test_shutdown_sends_everything_then_stops_the_threads(make_tracker, fake):
    threads_before = tracker_threads()
    tracker = make_tracker(flush_interval=3600)  # nothing would go on its own within the test
    ids = [tracker.track_install(f"player-{n}") for n in range(3)]
    assert tracker_threads() > threads_before

    assert tracker.shutdown(timeout=10) is True

    assert fake.sent_event_ids() == ids
    assert tracker_threads() == threads_before
    assert tracker.track_install("player-late") is None and tracker.stats().dropped == 1


def test_shutdown_answers_false_when_the_tracker_could_not_take_everything(make_tracker, fake):
    fake.respond = answer(503, {"detail": "down"})
    errors = Errors()
    tracker = make_tracker(on_error=errors, retry=RetryPolicy(base=0.01, cap=0.01, budget=0.05))
    event_id = tracker.track_install("player-1")

    assert tracker.shutdown(timeout=10) is False

    assert [event["event_id"] for _, events in errors.calls for event in events] == [event_id]


@pytest.fixture
def sdk_logger() -> Iterator[logging.Logger]:
    """The SDK's logger, put back as it was: debug=True changes it for the whole process."""
    logger = logging.getLogger("playertrack")
    level, handlers = logger.level, list(logger.handlers)
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers


def test_debug_logs_each_event_queued_and_each_request_with_its_answer_never_the_key(
    make_tracker, fake, caplog, sdk_logger
):
    tracker = make_tracker(sync=True, debug=True)

    event_id = tracker.track_install("player-1")

    assert sdk_logger.getEffectiveLevel() == logging.DEBUG
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("playertrack.")]
    assert any(event_id in line and "queued" in line for line in lines)
    assert any("1 events" in line and "answered 200" in line for line in lines)
    assert any("accepted 1" in line for line in lines)
    assert not any(API_KEY in line for line in lines)


def test_without_debug_the_sdk_logs_nothing_below_warning_by_default(make_tracker, fake, caplog, sdk_logger):
    caplog.set_level(logging.WARNING)
    tracker = make_tracker(sync=True)

    tracker.track_install("player-1")

    assert [record for record in caplog.records if record.name.startswith("playertrack.")] == []
