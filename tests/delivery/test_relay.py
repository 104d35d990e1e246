"""The relay: the log read past a cursor in commit order, one record per call, rows per event only on failure."""

import io
import uuid
from datetime import timedelta

import orjson
import pytest
import time_machine
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from events_app import logstore
from events_app.delivery import engine, relay
from events_app.delivery.destinations.base import Limits, RecordError
from events_app.delivery.destinations.errors import DestinationError
from events_app.delivery.issues import queue_again
from events_app.delivery.status import backlog, delivery_state
from events_app.ingest.service import relay_shard
from events_app.models import (
    CallOutcome,
    DeliveryCall,
    DeliveryCursor,
    DeliveryIssue,
    DeliveryState,
    Event,
    EventHour,
    IssueState,
)
from tests.support.delivery import read_s3_lines, store


class FakeDestination:
    """A destination that keeps what it was sent; `down` fails every call, `refuse` fails lines containing it."""

    name = "fake"
    keyed = False
    limits = Limits(
        max_record_bytes=1000 * 1024, max_call_records=500, max_call_bytes=4 * 1024 * 1024, billing_unit_bytes=5 * 1024
    )

    def __init__(self):
        self.lines: list[dict] = []
        self.calls = 0
        self.down = False
        self.refuse: str | None = None
        self.permanent = False

    def partition_key(self, payload):
        return None

    def open(self, *, policy):
        pass

    def send(self, records, *, policy):
        self.calls += 1
        if self.down:
            raise DestinationError("could not connect")
        outcomes = []
        for record in records:
            if self.refuse and self.refuse.encode() in record.data:
                outcomes.append(RecordError("throttled", permanent=self.permanent))
                continue
            self.lines.extend(orjson.loads(line) for line in record.data.splitlines())
            outcomes.append(None)
        return outcomes

    def ensure(self):
        return []

    def event_ids(self) -> list[str]:
        return [line["event_id"] for line in self.lines]


@pytest.fixture
def destination():
    return FakeDestination()


def installs(make_install, count, **overrides):
    return [make_install(player_id=f"p{i}", **overrides) for i in range(count)]


def test_a_delivered_batch_writes_one_call_row_moves_the_cursor_and_writes_nothing_per_event(
    game_key, make_install, destination
):
    events = installs(make_install, 30)
    store(game_key, events)

    counts = engine.deliver_due(destination=destination)

    assert counts.delivered == 30
    assert sorted(destination.event_ids()) == sorted(e["event_id"] for e in events)
    call = DeliveryCall.objects.get()
    assert (call.sender, call.outcome, call.events, call.failed_events) == ("relay", CallOutcome.DELIVERED, 30, 0)
    assert DeliveryIssue.objects.count() == 0
    assert DeliveryCursor.objects.get(shard=0).last_event == Event.objects.order_by("-pk").first().pk
    assert {delivery_state(event) for event in Event.objects.all()} == {DeliveryState.DELIVERED}
    assert engine.deliver_due(destination=destination).claimed == 0


def test_every_line_of_a_call_carries_the_emitted_at_its_call_row_records(game_key, make_install, destination):
    store(game_key, installs(make_install, 3))
    engine.deliver_due(destination=destination)
    call = DeliveryCall.objects.get()
    assert {line["emitted_at"] for line in destination.lines} == {
        call.emitted_at.isoformat(timespec="microseconds").replace("+00:00", "Z")
    }


def test_an_outage_writes_no_row_per_event_and_everything_arrives_once_after_it(game_key, make_install, destination):
    events = installs(make_install, 50)
    store(game_key, events)
    destination.down = True

    for _ in range(3):
        result = engine.deliver_due(destination=destination)
        assert (result.delivered, result.deferred, result.outages) == (0, 50, {0})

    assert DeliveryIssue.objects.count() == 0
    assert DeliveryCursor.objects.get(shard=0).last_event == 0
    assert list(DeliveryCall.objects.values_list("outcome", "events")) == [(CallOutcome.FAILED, 50)] * 3
    assert backlog().pending == 50
    destination.down = False
    assert engine.deliver_due(destination=destination).delivered == 50
    assert sorted(destination.event_ids()) == sorted(e["event_id"] for e in events)
    assert backlog().pending == 0


def test_a_relay_that_dies_between_sending_and_recording_sends_the_batch_again_and_loses_nothing(
    game_key, make_install, destination, monkeypatch
):
    events = installs(make_install, 10)
    store(game_key, events)

    def die(**kwargs):
        raise KeyboardInterrupt("killed after the call, before the record")

    with monkeypatch.context() as patch:
        patch.setattr(logstore, "advance", die)
        with pytest.raises(KeyboardInterrupt):
            engine.deliver_due(destination=destination)
    assert len(destination.lines) == 10  # sent, but nothing recorded
    assert DeliveryCall.objects.count() == 0
    assert DeliveryCursor.objects.get(shard=0).last_event == 0

    assert engine.deliver_due(destination=destination).delivered == 10
    # At least once: each event twice at the destination (the warehouse view keeps one row per event_id).
    assert sorted(destination.event_ids()) == sorted([e["event_id"] for e in events] * 2)
    assert engine.deliver_due(destination=destination).claimed == 0


def test_records_that_keep_failing_become_failed_issues_retried_with_backoff_then_delivered(
    game_key, make_install, destination, settings
):
    settings.EVENTS_RETRY_BASE_SECONDS = 60
    events = [*installs(make_install, 5), make_install(player_id="stubborn")]
    store(game_key, events[:5])
    store(game_key, events[5:])
    settings.EVENTS_RECORD_TARGET_BYTES = 1  # one event per record, so one record can fail alone
    destination.refuse = "stubborn"

    counts = engine.deliver_due(destination=destination)

    assert (counts.delivered, counts.failed) == (5, 1)
    issue = DeliveryIssue.objects.get()
    assert (issue.state, issue.attempts, issue.event.player_id) == (IssueState.FAILED, 1, "stubborn")
    assert issue.next_attempt_at > timezone.now()
    # The failed record was sent again at once, twice, before it became an issue.
    outcomes = DeliveryCall.objects.filter(sender="relay").order_by("called_at", "pk").values_list("outcome", flat=True)
    assert list(outcomes) == [CallOutcome.PARTIAL, CallOutcome.FAILED, CallOutcome.FAILED]
    assert DeliveryCursor.objects.get(shard=0).last_event == Event.objects.order_by("-pk").first().pk
    assert delivery_state(issue.event) == DeliveryState.FAILED
    assert engine.deliver_due(destination=destination).claimed == 0  # not due yet

    destination.refuse = None
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        assert engine.deliver_due(destination=destination).delivered == 1
    issue.refresh_from_db()
    assert (issue.state, issue.attempts) == (IssueState.DELIVERED, 2)
    assert issue.delivered_by.sender == "retry"
    assert destination.event_ids().count(events[5]["event_id"]) == 1


def test_a_permanent_refusal_makes_the_event_dead_at_once_and_the_rest_go_on(
    game_key, make_install, destination, settings
):
    settings.EVENTS_RECORD_TARGET_BYTES = 1
    store(game_key, [*installs(make_install, 3), make_install(player_id="refused")])
    destination.refuse, destination.permanent = "refused", True

    counts = engine.deliver_due(destination=destination)

    assert (counts.delivered, counts.dead) == (3, 1)
    assert DeliveryIssue.objects.get().state == IssueState.DEAD
    assert backlog().dead == 1


def test_deliver_events_once_delivers_everything_committed_before_it_started(game_key, make_install, moto_firehose):
    events = installs(make_install, 25)
    store(game_key, events)

    out = io.StringIO()
    call_command("deliver_events", "--once", stdout=out)

    assert out.getvalue().startswith("delivered=25 ")
    lines = [orjson.loads(line)["event_id"] for line in read_s3_lines(moto_firehose)]
    assert sorted(lines) == sorted(e["event_id"] for e in events)


def test_a_players_events_always_go_to_the_same_shard_and_shards_spread_players():
    shards = {relay_shard(game_id=1, player_id=f"p{i}", shards=4) for i in range(200)}
    assert shards == {0, 1, 2, 3}
    assert relay_shard(game_id=1, player_id="p7", shards=4) == relay_shard(game_id=1, player_id="p7", shards=4)
    assert relay_shard(game_id=1, player_id="p7", shards=1) == 0


def test_each_shard_has_its_own_cursor_and_all_events_arrive(game_key, make_install, destination, settings):
    settings.EVENTS_RELAY_SHARDS = 3
    events = installs(make_install, 60)
    store(game_key, events)
    assert set(Event.objects.values_list("shard", flat=True)) == {0, 1, 2}

    assert engine.deliver_due(destination=destination).delivered == 60

    assert sorted(destination.event_ids()) == sorted(e["event_id"] for e in events)
    assert DeliveryCursor.objects.count() == 3
    assert DeliveryCall.objects.filter(sender="relay").values("shard").distinct().count() == 3


def test_a_shard_leased_by_another_process_is_left_to_it_until_released(game_key, make_install, destination):
    """SQLite's form of the shard lock (a lease on the cursor row); PostgreSQL's is in test_relay_sessions.py."""
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL holds shards by advisory lock: tests/delivery/test_relay_sessions.py")
    store(game_key, installs(make_install, 4))
    other = uuid.uuid4()
    assert logstore.hold_shard(shard=0, holder=other)

    result = engine.deliver_due(destination=destination)
    assert (result.delivered, result.standby) == (0, {0})

    with time_machine.travel(timezone.now() + logstore.SQLITE_LEASE + timedelta(seconds=1)):
        assert engine.deliver_due(destination=destination).delivered == 4  # the holder died: its lease ran out
    logstore.release_shard(shard=0, holder=engine.PROCESS_HOLDER)
    assert logstore.hold_shard(shard=0, holder=other)


def test_each_event_names_the_call_that_carried_it_when_a_batch_takes_several_calls(game_key, make_install, settings):
    settings.EVENTS_RECORD_TARGET_BYTES = 1  # one event per record
    destination = FakeDestination()
    destination.limits = Limits(
        max_record_bytes=1000 * 1024, max_call_records=1, max_call_bytes=4 * 1024 * 1024, billing_unit_bytes=5 * 1024
    )
    store(game_key, installs(make_install, 3))

    assert engine.deliver_due(destination=destination).delivered == 3

    calls = {}
    for event in Event.objects.order_by("pk"):
        call = relay.call_that_delivered(shard=event.shard, position=logstore.position_of(event.pk))
        calls[event.pk] = call.pk
    assert len(set(calls.values())) == 3  # three calls, one event each: each named its own


def test_an_event_with_a_pending_issue_that_the_relay_fails_keeps_its_issue_and_the_relay_moves_on(
    game_key, make_install, settings
):
    settings.EVENTS_RECORD_TARGET_BYTES = 1
    store(game_key, [make_install(player_id="corrected"), make_install(player_id="other")])
    event = Event.objects.get(player_id="corrected")
    with transaction.atomic():  # reconvert's way: a corrected line queued before the relay passed the event
        queue_again(events=[event], now=timezone.now(), again=True, force=True)
    destination = FakeDestination()
    destination.refuse, destination.permanent = "corrected", True

    counts = engine.deliver_due(destination=destination)

    assert counts.delivered == 1
    assert DeliveryCursor.objects.get(shard=0).last_event == Event.objects.order_by("-pk").first().pk
    issue = DeliveryIssue.objects.get()
    assert issue.state in (IssueState.PENDING, IssueState.DEAD)  # its own line, tried by the retry worker


def test_before_any_relay_ran_every_event_is_pending(game_key, make_install):
    DeliveryCursor.objects.all().delete()  # no shard has a cursor yet (a database emptied since it was migrated)
    store(game_key, installs(make_install, 2))

    assert {delivery_state(event) for event in Event.objects.all()} == {DeliveryState.PENDING}
    assert backlog().pending == 2


def test_the_relay_counts_each_batch_into_hours_once(game_key, make_install, make_purchase, destination):
    store(game_key, [*installs(make_install, 3), make_install(player_id="android", platform="android")])

    engine.deliver_due(destination=destination)
    engine.deliver_due(destination=destination)  # nothing new: nothing counted again

    counted = {(row.event_type, row.platform): row.events for row in EventHour.objects.all()}
    assert counted == {("install", "ios"): 3, ("install", "android"): 1}
