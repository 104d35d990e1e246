"""Retention on PostgreSQL: a whole day goes at once, once every relay has passed it; never an undelivered event."""

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from events_app import idempotency, logstore
from events_app.delivery import engine
from events_app.ingest.service import ingest_events
from events_app.models import DeliveryIssue, Event, EventKey, IssueState
from events_app.privacy.retention import purge_events
from tests.delivery.test_relay import FakeDestination

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _postgresql_only():
    if not logstore.partitioned():
        pytest.skip("the log is partitioned on PostgreSQL only; SQLite deletes by id range (test_retention.py)")


def old_day(days_ago: int) -> datetime:
    day = (timezone.now() - timedelta(days=days_ago)).astimezone(UTC)
    return day.replace(hour=12, minute=0, second=0, microsecond=0)


def store_on(game_key, moment: datetime, players: list[str]) -> None:
    logstore.ensure_partitions(now=moment, ahead=0, back=0)  # that day's own partition, as it had then
    events = [
        {"event_type": "install", "player_id": player, "occurred_at": moment.isoformat(), "properties": {}}
        for player in players
    ]
    assert ingest_events(api_key=game_key[0], raw_events=events, received_at=moment).accepted == len(players)


def day_names() -> set[str]:
    return {day.name for day in logstore.day_partitions()}


def test_a_delivered_day_older_than_the_cutoff_is_dropped_whole(game_key):
    moment = old_day(40)
    store_on(game_key, moment, [f"p{i}" for i in range(30)])
    store_on(game_key, old_day(10), ["recent"])
    engine.deliver_due(destination=FakeDestination())
    assert logstore.day_partition_name(moment.date()) in day_names()

    counts = purge_events(older_than_days=30)

    assert counts.events == 30
    assert logstore.day_partition_name(moment.date()) not in day_names()
    assert list(Event.objects.values_list("player_id", flat=True)) == ["recent"]


def test_a_day_the_relay_has_not_passed_is_kept_whole(game_key):
    moment = old_day(40)
    store_on(game_key, moment, ["a", "b"])  # never delivered: the relay is behind (or the destination down)

    counts = purge_events(older_than_days=30)

    assert counts.events == 0
    assert Event.objects.count() == 2
    assert logstore.day_partition_name(moment.date()) in day_names()


def test_a_day_holding_a_failed_event_keeps_it_and_loses_the_rest_row_by_row(game_key, settings):
    moment = old_day(40)
    store_on(game_key, moment, ["ok-1", "ok-2", "stubborn"])
    settings.EVENTS_RECORD_TARGET_BYTES = 1
    destination = FakeDestination()
    destination.refuse = "stubborn"
    engine.deliver_due(destination=destination)
    assert DeliveryIssue.objects.get().state == IssueState.FAILED

    counts = purge_events(older_than_days=30, include_dead=True)

    assert counts.events == 2
    assert list(Event.objects.values_list("player_id", flat=True)) == ["stubborn"]
    assert logstore.day_partition_name(moment.date()) in day_names()


def test_a_dry_run_counts_the_day_and_drops_nothing(game_key):
    moment = old_day(40)
    store_on(game_key, moment, ["a", "b", "c"])
    engine.deliver_due(destination=FakeDestination())

    assert purge_events(older_than_days=30, dry_run=True).events == 3
    assert Event.objects.count() == 3


def test_migrate_leaves_two_weeks_of_days_ahead_and_ensure_partitions_refills_a_missing_one():
    assert logstore.days_ahead() >= logstore.PARTITION_DAYS_AHEAD
    tomorrow = (timezone.now() + timedelta(days=1)).astimezone(UTC).date()
    logstore.drop_partition(Event._meta.db_table, logstore.day_partition_name(tomorrow))
    assert logstore.days_ahead() == 0

    call_command("ensure_partitions", stdout=open("/dev/null", "w"))  # noqa: SIM115

    assert logstore.days_ahead() >= logstore.PARTITION_DAYS_AHEAD
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
            "WHERE c.relname = %s AND p.partdefid <> 0",
            [Event._meta.db_table],
        )
        assert cursor.fetchone()[0] == 1  # the test database's own DEFAULT partition (tests/support/partitions.py)


@pytest.mark.django_db(transaction=True)
def test_partitions_are_made_beside_a_request_holding_key_rows_without_waiting_for_it(game_key):
    # CREATE TABLE ... PARTITION OF would lock the key table whole, wait for this request,
    # and deadlock with it once the request moves on to the log it had locked meanwhile.
    game_id = game_key[0].game_id
    claimed, finish = threading.Event(), threading.Event()

    def request_between_its_keys_and_its_rows():
        with transaction.atomic():
            moment = idempotency.begin(game_id=game_id)
            row = {"event_id": uuid.uuid4(), "event_type": "install", "player_id": "p1"}
            idempotency.claim([row], game_id=game_id, moment=moment)
            claimed.set()
            finish.wait(30)
        connection.close()

    request = threading.Thread(target=request_between_its_keys_and_its_rows)
    request.start()
    assert claimed.wait(30)
    far = timezone.now() + timedelta(days=60)  # days and key buckets no partition exists for yet
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '3s'")  # waiting for the request would fail here
        created = logstore.ensure_partitions(now=far, ahead=0, back=0)
    finally:
        finish.set()
        request.join(30)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")

    assert logstore.day_partition_name(far.astimezone(UTC).date()) in created
    assert any(name.startswith(logstore.bucket_partition_name(0)[:-1]) for name in created)
    days = {day.name for day in logstore.day_partitions()}
    with transaction.atomic():  # not concurrently: the test database has a DEFAULT partition
        for name in created:
            logstore.drop_partition(Event._meta.db_table if name in days else EventKey._meta.db_table, name)


def test_the_day_the_cutoff_falls_in_is_kept_whole_until_all_of_it_is_old_enough(game_key):
    # By whole days: an hourly purge must not delete the hour that crossed the cutoff row by row.
    moment = old_day(3)
    store_on(game_key, moment, ["p1", "p2"])
    engine.deliver_due(destination=FakeDestination())
    now = timezone.now()
    inside_the_day = (now - (moment + timedelta(hours=1))).total_seconds() / 86400

    kept = purge_events(older_than_days=inside_the_day, now=now)
    assert (kept.events, Event.objects.count()) == (0, 2)

    gone = purge_events(older_than_days=2, now=now)  # the whole day is older than this cutoff
    assert (gone.events, Event.objects.count()) == (2, 0)
    assert logstore.day_partition_name(moment.date()) not in day_names()
