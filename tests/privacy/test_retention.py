"""Retention: purge_events deletes old delivered events with their issues, keeps what is not done, prunes by age."""

import threading
import time
import uuid
from datetime import UTC, timedelta
from decimal import Decimal

import psycopg
import pytest
import requests
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bench.purge import seed_events
from events_app import idempotency as keys
from events_app import logstore
from events_app.delivery import engine, hours
from events_app.models import (
    CallOutcome,
    DeliveryCall,
    DeliveryIssue,
    DeliveryState,
    DuplicateTally,
    Event,
    EventHour,
    Game,
    RejectedEvent,
)
from events_app.privacy.retention import purge_events, purge_expired
from tests.admin.helpers import FailingDestination, set_state, state_of

DAY = timedelta(days=1)


@pytest.fixture
def game(db):
    return Game.objects.create(slug="retention-game")


@pytest.fixture
def make_event(game):
    """Return a builder of stored events: derived state, age in days, and whether a resend gave it an issue row.

    Any state but pending moves the relay past the event (and every event made before
    it): make the pending ones last.
    """

    def build(*, state=DeliveryState.DELIVERED, age_days: float = 40, resent: bool = False, **issue) -> Event:
        received_at = timezone.now() - timedelta(days=age_days)
        logstore.ensure_partitions(now=received_at, ahead=0, back=0)  # PostgreSQL: that day's own partition
        event = Event.objects.create(
            game=game,
            event_id=uuid.uuid4(),
            event_type="install",
            player_id="p1",
            occurred_at=received_at,
            received_at=received_at,
            derived_at=received_at,
            payload={"event_type": "install"},
        )
        if resent:
            issue.setdefault("resent_at", received_at)
        if state != DeliveryState.PENDING or issue:
            set_state([event], state, **issue)
        return event

    return build


def call_at(moment) -> DeliveryCall:
    """Record a relay call made at `moment`."""
    return DeliveryCall.objects.create(
        called_at=moment,
        emitted_at=moment,
        destination="firehose",
        sender="relay",
        shard=0,
        events=1,
        records=1,
        bytes=300,
        outcome=CallOutcome.DELIVERED,
    )


def states_left() -> list[str]:
    return sorted(state_of(event) for event in Event.objects.all())


def test_old_delivered_events_go_with_their_issues(make_event):
    old_resent = make_event(resent=True)  # delivered again after a resend: an issue row, delivered
    make_event()
    recent = make_event(age_days=5, resent=True)

    counts = purge_events(older_than_days=30)

    assert (counts.events, counts.issues) == (2, 1)
    assert list(Event.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not DeliveryIssue.objects.filter(event_id=old_resent.pk).exists()
    assert list(DeliveryIssue.objects.values_list("event_id", flat=True)) == [recent.pk]


def test_pending_failed_and_dead_events_stay_however_old(make_event):
    for state in (DeliveryState.FAILED, DeliveryState.DEAD):
        make_event(state=state, age_days=400)
    make_event(state=DeliveryState.PENDING, age_days=400, resent=True)  # resent: due now
    make_event(state=DeliveryState.PENDING, age_days=400)  # no relay has passed it

    counts = purge_events(older_than_days=30)

    assert (counts.events, counts.issues) == (0, 0)
    assert states_left() == ["dead", "failed", "pending", "pending"]
    assert DeliveryIssue.objects.count() == 3


def test_dead_events_go_only_with_include_dead(make_event):
    make_event(state=DeliveryState.DEAD, age_days=40, attempts=12)
    make_event(state=DeliveryState.PENDING, age_days=40)

    assert purge_events(older_than_days=30).events == 0
    counts = purge_events(older_than_days=30, include_dead=True)

    assert (counts.events, counts.issues) == (1, 1)
    assert states_left() == ["pending"]


def test_a_dry_run_changes_nothing_and_counts_what_would_go(make_event):
    make_event(resent=True)
    make_event(state=DeliveryState.DEAD)
    make_event(age_days=1)

    dry = purge_expired(older_than_days=30, include_dead=True, dry_run=True)
    assert Event.objects.count() == 3
    assert DeliveryIssue.objects.count() == 2

    real = purge_expired(older_than_days=30, include_dead=True)
    assert (dry.events, dry.issues) == (real.events, real.issues) == (2, 2)
    assert Event.objects.count() == 1
    assert not DeliveryIssue.objects.exists()


def test_events_are_deleted_in_id_ordered_batches_one_log_line_each(make_event, caplog):
    for _ in range(5):
        make_event()
    kept = make_event(state=DeliveryState.FAILED)
    make_event()

    with caplog.at_level("INFO", logger="events_app.privacy.retention"):
        counts = purge_events(older_than_days=30, batch_size=2)

    assert counts.events == 6
    assert list(Event.objects.values_list("pk", flat=True)) == [kept.pk]
    batch_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("purge batch table=events")]
    # 7 rows read 2 at a time: batches of 2, 2, 1 (+ the failed one) and 1.
    assert [line.split(" events=")[1].split()[0] for line in batch_lines] == ["2", "2", "1", "1"]


def test_the_scan_stops_at_the_first_batch_with_nothing_old(make_event):
    for _ in range(10):
        make_event(age_days=1)

    with CaptureQueriesContext(connection) as queries:
        assert purge_events(older_than_days=30, batch_size=3).events == 0

    # SQLite: one read for old events. PostgreSQL: whether the log is partitioned, and its day partitions.
    assert len(queries) <= 3
    assert not [query["sql"] for query in queries if not query["sql"].lstrip().upper().startswith("SELECT")]


def test_old_events_stored_after_young_ones_are_found_too(make_event):
    young = [make_event(age_days=1) for _ in range(5)]
    make_event(age_days=40)  # ids out of time order: loaded from elsewhere, or a clock far off
    more_young = make_event(age_days=1)
    make_event(age_days=50)

    assert purge_events(older_than_days=30, batch_size=2).events == 2
    assert set(Event.objects.values_list("pk", flat=True)) == {event.pk for event in [*young, more_young]}


def test_a_delivered_event_past_the_dedup_window_and_purged_can_be_stored_again(api, make_install, monkeypatch):
    then = timezone.now() - 40 * DAY
    real_begin = keys.begin
    # The window's clock is the database's on PostgreSQL (keys.begin): move it with the process's.
    monkeypatch.setattr(keys, "begin", lambda **kwargs: (real_begin(**kwargs), then.timestamp())[1])
    with time_machine.travel(then, tick=False):
        event = make_install()
        logstore.ensure_partitions(now=then, ahead=0, back=0)  # PostgreSQL: the days and key buckets it had
        assert api.post("/v1/events", event, format="json").json()["status"] == "accepted"
        assert engine.deliver_due(destination=FailingDestination()).delivered == 1
    monkeypatch.setattr(keys, "begin", real_begin)

    counts = purge_expired(older_than_days=30)

    assert (counts.events, counts.event_keys) == (1, 1)
    assert not Event.objects.exists()
    assert api.post("/v1/events", event, format="json").json()["status"] == "accepted"
    assert Event.objects.count() == 1


def test_other_tables_are_pruned_by_their_own_age(make_event, game, settings):
    settings.EVENTS_CALL_RETENTION_DAYS = 10
    settings.EVENTS_DUPLICATE_TALLY_RETENTION_DAYS = 20
    settings.EVENTS_REJECTION_RETENTION_DAYS = 20
    dead = make_event(state=DeliveryState.DEAD, age_days=40, attempts=4)  # kept, but its calls are old
    now = timezone.now()
    call_at(now - 40 * DAY)
    recent_call = call_at(now - 5 * DAY)
    DuplicateTally.objects.create(game=game, received_at=now - 25 * DAY, duplicates=3)
    DuplicateTally.objects.create(game=game, received_at=now - 5 * DAY, duplicates=1)
    RejectedEvent.objects.create(game=game, received_at=now - 25 * DAY, errors={})
    RejectedEvent.objects.create(game=game, received_at=now - 5 * DAY, errors={})

    counts = purge_expired(older_than_days=30)

    assert (counts.events, counts.issues, counts.calls, counts.duplicate_tallies, counts.rejected_events) == (
        0,
        0,
        1,
        1,
        1,
    )
    assert DeliveryIssue.objects.filter(event_id=dead.pk, attempts=4).exists()
    assert list(DeliveryCall.objects.values_list("pk", flat=True)) == [recent_call.pk]
    assert list(DuplicateTally.objects.values_list("duplicates", flat=True)) == [1]
    assert RejectedEvent.objects.count() == 1


def test_the_relays_hourly_counts_go_by_their_own_age(game, settings):
    settings.EVENTS_HOUR_COUNT_RETENTION_DAYS = 90
    now = hours.hour_of(timezone.now())
    hours.add({(moment, game.pk, "install", "ios", ""): (1, Decimal(0)) for moment in (now, now - 100 * DAY)})

    counts = purge_expired(older_than_days=30)

    assert counts.hour_counts == 1
    assert list(EventHour.objects.values_list("hour", flat=True)) == [now]


def test_calls_of_events_a_run_keeps_for_their_age_stay(make_event, settings):
    settings.EVENTS_CALL_RETENTION_DAYS = 10
    make_event(age_days=40)
    call = call_at(timezone.now() - 40 * DAY)

    counts = purge_expired(older_than_days=90)

    assert (counts.events, counts.calls) == (0, 0)
    assert list(DeliveryCall.objects.values_list("pk", flat=True)) == [call.pk]


def test_retention_days_is_the_default_age(make_event, settings):
    settings.EVENTS_RETENTION_DAYS = 50
    make_event(age_days=40)
    assert purge_expired().events == 0
    settings.EVENTS_RETENTION_DAYS = 35
    assert purge_expired().events == 1


def test_command_prints_what_it_deleted_or_would(make_event, capsys):
    make_event(resent=True)
    call_at(timezone.now() - 400 * DAY)

    call_command("purge_events", "--older-than", "30", "--dry-run")
    assert capsys.readouterr().out.strip() == (
        "would delete events=1 issues=1 calls=1 event_keys=0 purchase_keys=0 duplicate_tallies=0 rejected_events=0 "
        "kpi_rows=0 hour_counts=0"
    )
    assert Event.objects.count() == 1

    call_command("purge_events", "--older-than", "30")
    assert capsys.readouterr().out.strip() == (
        "deleted events=1 issues=1 calls=1 event_keys=0 purchase_keys=0 duplicate_tallies=0 rejected_events=0 "
        "kpi_rows=0 hour_counts=0"
    )
    assert Event.objects.count() == 0


def test_command_refuses_a_negative_age(db):
    with pytest.raises(CommandError, match="--older-than"):
        call_command("purge_events", "--older-than", "-1")


def create_day_partitions(database_url: str, moments: list) -> None:
    """PostgreSQL: create the log's partitions of the days of `moments`, as ensure_partitions had made them then."""
    if not database_url.startswith("postgres"):
        return
    with psycopg.connect(database_url, autocommit=True) as conn:
        for day in {moment.astimezone(UTC).date() for moment in moments}:
            name, table = logstore.day_partition_name(day), Event._meta.db_table
            conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF "{table}" '
                f"FOR VALUES FROM ('{day} 00:00:00+00') TO ('{day + DAY} 00:00:00+00')"
            )


@pytest.mark.e2e
def test_requests_keep_succeeding_while_a_purge_runs(deployment):
    """Ingest under gunicorn while purge_events deletes 10,000 old delivered events in batches of 500."""
    key = deployment.create_key("retention-game")
    old = timezone.now() - 40 * DAY
    create_day_partitions(deployment.env["DATABASE_URL"], [old - timedelta(seconds=20), old])
    seed_events(deployment.env["DATABASE_URL"], game_slug="retention-game", count=10_000, age_days=40)
    url = deployment.serve(workers=2, EVENTS_INLINE_DELIVERY="0")
    statuses: list[int] = []
    slowest = [0.0]
    stop = threading.Event()

    def post_events():
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {key}"
            while not stop.is_set():
                event = {"event_type": "install", "player_id": "p1", "occurred_at": "2026-01-01T00:00:00Z"}
                started = time.monotonic()
                statuses.append(session.post(f"{url}/v1/events", json=event, timeout=30).status_code)
                slowest[0] = max(slowest[0], time.monotonic() - started)

    clients = [threading.Thread(target=post_events) for _ in range(2)]
    for client in clients:
        client.start()
    try:
        time.sleep(0.5)
        result = deployment.manage("purge_events", "--older-than", "30", "--batch-size", "500")
        time.sleep(0.5)
    finally:
        stop.set()
        for client in clients:
            client.join()

    assert result.stdout.split()[:3] == ["deleted", "events=10000", "issues=0"]
    assert statuses and set(statuses) == {202}, f"{len(statuses)} requests, slowest {slowest[0]:.2f} s"
    stored = deployment.query("SELECT COUNT(*) FROM events_app_event")[0][0]
    assert stored == len(statuses)
