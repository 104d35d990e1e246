"""Delivery to Firehose, against moto: NDJSON in S3, call counts, packing, partial failures, outages, retries."""

import math
from datetime import timedelta

import orjson
import pytest
import time_machine
from django.db import transaction
from django.utils import timezone

from events_app import conf
from events_app.delivery import engine, records, resend, retry, sending
from events_app.delivery.destinations import firehose
from events_app.delivery.policies import worker_policy
from events_app.ingest.service import ingest_events
from events_app.models import CallOutcome, DeliveryCall, DeliveryIssue, DeliveryState, Event, IssueState
from tests.support.delivery import (
    PutRecordBatchSpy,
    delivery_state,
    delivery_states,
    issue_of,
    read_s3_lines,
    store,
    stub_put_record_batch,
)

RECORD_FIELDS = {
    "schema_version",
    "event_id",
    "event_type",
    "game",
    "player_id",
    "occurred_at",
    "sent_at",
    "received_at",
    "derived_at",
    "emitted_at",
    "platform",
    "app_version",
    "session_id",
    "properties",
    "context",
}
# The base-currency fields are null when no rate is known (no rates in these tests).
PURCHASE_FIELDS = {"price", "quantity", "currency", "revenue", "revenue_base", "base_currency", "fx_rate", "fx_date"}
THROTTLED = "ServiceUnavailableException"


def calls() -> list[tuple[str, int, int, str]]:
    """Return (sender, events, failed events, outcome) of every recorded destination call, oldest first."""
    return list(DeliveryCall.objects.order_by("id").values_list("sender", "events", "failed_events", "outcome"))


def test_accepted_events_reach_s3_as_newline_terminated_json_with_the_record_fields(
    api, moto_firehose, make_install, make_purchase
):
    install = make_install()
    purchase = make_purchase(
        properties={"transaction_id": "t-1", "product_id": "gems", "price": "2.50", "currency": "EUR", "quantity": 3}
    )

    response = api.post("/v1/events/batch", {"events": [install, purchase]}, format="json")
    assert engine.deliver_due().delivered == 2

    assert response.status_code == 200
    lines = [orjson.loads(line) for line in read_s3_lines(moto_firehose)]
    by_id = {line["event_id"]: line for line in lines}
    assert set(by_id) == {install["event_id"], purchase["event_id"]}
    assert set(by_id[install["event_id"]]) == RECORD_FIELDS
    assert set(by_id[purchase["event_id"]]) == RECORD_FIELDS | PURCHASE_FIELDS
    assert by_id[purchase["event_id"]]["revenue"] == "7.5"
    assert by_id[purchase["event_id"]]["game"] == "space-raiders"
    assert all(line["emitted_at"].endswith("Z") and line["received_at"].endswith("Z") for line in lines)
    assert delivery_states() == {DeliveryState.DELIVERED: 2}
    assert calls() == [("relay", 2, 0, CallOutcome.DELIVERED)]
    assert DeliveryIssue.objects.count() == 0  # a healthy pipeline writes no row per event
    call = DeliveryCall.objects.get()
    assert {line["emitted_at"] for line in lines} == {call.emitted_at.isoformat().replace("+00:00", "Z")}


def test_requests_only_store_and_the_relay_delivers_what_they_left_pending(api, moto_firehose, make_install):
    events = [make_install(player_id=f"p{i}") for i in range(20)]
    api.post("/v1/events/batch", {"events": events}, format="json")
    assert delivery_states() == {DeliveryState.PENDING: 20}
    assert read_s3_lines(moto_firehose) == []

    counts = engine.deliver_due()

    assert (counts.delivered, counts.relayed) == (20, 20)
    assert sorted(orjson.loads(line)["event_id"] for line in read_s3_lines(moto_firehose)) == sorted(
        e["event_id"] for e in events
    )
    assert delivery_states() == {DeliveryState.DELIVERED: 20}
    assert engine.deliver_due().claimed == 0


def test_inline_delivery_setting_is_accepted_and_changes_nothing(api, settings, moto_firehose, make_install):
    settings.EVENTS_INLINE_DELIVERY = True

    assert api.post("/v1/events", make_install(), format="json").status_code == 202

    assert read_s3_lines(moto_firehose) == []  # no request sends: the relay does
    assert DeliveryCall.objects.count() == 0
    assert engine.deliver_due().delivered == 1
    assert len(read_s3_lines(moto_firehose)) == 1


def test_one_call_carries_the_events_of_many_single_event_requests(api, moto_firehose, make_install):
    spy = PutRecordBatchSpy(firehose.get_client(policy=worker_policy()))
    events = [make_install(player_id=f"p{i}") for i in range(50)]

    for event in events:
        assert api.post("/v1/events", event, format="json").status_code == 202
    counts = engine.deliver_due()

    assert (counts.delivered, counts.calls, counts.records) == (50, 1, 1)
    assert len(spy.calls) == 1
    assert sorted(orjson.loads(line)["event_id"] for line in read_s3_lines(moto_firehose)) == sorted(
        e["event_id"] for e in events
    )
    assert delivery_states() == {DeliveryState.DELIVERED: 50}
    assert calls() == [("relay", 50, 0, CallOutcome.DELIVERED)]


def test_duplicates_are_not_delivered_twice(api, moto_firehose, make_install):
    event = make_install()

    api.post("/v1/events", event, format="json")
    api.post("/v1/events", event, format="json")

    assert engine.deliver_due().delivered == 1
    assert [orjson.loads(line)["event_id"] for line in read_s3_lines(moto_firehose)] == [event["event_id"]]


def test_a_rolled_back_request_leaves_nothing_to_deliver(game_key, moto_firehose, make_install):
    with pytest.raises(RuntimeError), transaction.atomic():
        ingest_events(api_key=game_key[0], raw_events=[make_install()], received_at=timezone.now())
        raise RuntimeError("the outer transaction fails after the insert")

    assert Event.objects.count() == 0
    assert engine.deliver_due().claimed == 0
    assert read_s3_lines(moto_firehose) == []


def test_1200_events_cost_one_call_at_the_default_packing_and_billed_bytes_stay_within_10_percent(
    game_key, moto_firehose, make_install, make_purchase
):
    store(game_key, [make_install() if i % 3 else make_purchase() for i in range(1200)])
    spy = PutRecordBatchSpy(firehose.get_client(policy=worker_policy()))

    assert engine.deliver_due(limit=1200).delivered == 1200

    sizes = spy.record_sizes
    real = sum(sizes)
    # Under 4 MiB and 500 records in all, so a single call carries every record.
    assert real < conf.FIREHOSE_MAX_BATCH_BYTES
    assert len(spy.calls) == 1
    assert max(sizes) <= conf.record_target_bytes()
    assert len(sizes) == math.ceil(real / conf.record_target_bytes())
    billed = sum(
        math.ceil(size / conf.FIREHOSE_BILLING_UNIT_BYTES) * conf.FIREHOSE_BILLING_UNIT_BYTES for size in sizes
    )
    assert billed <= real * 1.10
    assert len(read_s3_lines(moto_firehose)) == 1200
    call = DeliveryCall.objects.get()
    assert (call.events, call.records, call.bytes) == (1200, len(sizes), real)


def test_one_event_per_record_splits_1200_events_into_calls_of_500_records(
    game_key, settings, moto_firehose, make_install
):
    settings.EVENTS_RECORD_TARGET_BYTES = 1  # every line alone in its record
    store(game_key, [make_install() for _ in range(1200)])
    spy = PutRecordBatchSpy(firehose.get_client(policy=worker_policy()))

    assert engine.deliver_due(limit=1200).delivered == 1200

    assert [len(call) for call in spy.calls] == [500, 500, 200]
    assert [(events, outcome) for _, events, _, outcome in calls()] == [
        (500, CallOutcome.DELIVERED),
        (500, CallOutcome.DELIVERED),
        (200, CallOutcome.DELIVERED),
    ]


def test_large_records_split_calls_at_4_mib(game_key, settings, moto_firehose, make_install):
    settings.EVENTS_RECORD_TARGET_BYTES = 1
    padding = "x" * 30_000  # each event close to the 32 KiB limit
    store(game_key, [make_install(properties={"note": padding}) for _ in range(300)])
    spy = PutRecordBatchSpy(firehose.get_client(policy=worker_policy()))

    assert engine.deliver_due(limit=300).delivered == 300

    line_size = spy.record_sizes[0]
    per_call = conf.FIREHOSE_MAX_BATCH_BYTES // line_size
    assert max(spy.record_sizes) - min(spy.record_sizes) < 10  # same size give or take id digits
    assert len(spy.calls) == math.ceil(300 / per_call)
    assert all(sum(call) <= conf.FIREHOSE_MAX_BATCH_BYTES for call in spy.calls)


def test_the_relay_reads_at_most_its_batch_and_the_next_pass_goes_on_from_the_cursor(
    game_key, settings, moto_firehose, make_install
):
    settings.EVENTS_DELIVERY_BATCH_SIZE = 7
    events = [make_install(player_id=f"p{i}") for i in range(10)]
    store(game_key, events)

    assert engine.deliver_due().delivered == 7
    assert delivery_states() == {DeliveryState.DELIVERED: 7, DeliveryState.PENDING: 3}
    assert engine.deliver_due().delivered == 3

    sent = [orjson.loads(line)["player_id"] for line in read_s3_lines(moto_firehose)]
    assert sorted(sent) == sorted(event["player_id"] for event in events)  # each once
    assert engine.deliver_due().claimed == 0


def test_packing_never_splits_a_line_and_keeps_order():
    lines = [f'{{"n":{i}}}\n'.encode() for i in range(100)]

    packed = sending.pack_records(lines, target_bytes=50)

    assert b"".join(r.data for r in packed) == b"".join(lines)
    assert all(len(r.data) <= 50 for r in packed)
    assert [i for r in packed for i in r.members] == list(range(100))


def test_throttled_records_are_sent_again_at_once_and_then_open_no_issue(
    game_key, settings, moto_firehose, make_install
):
    settings.EVENTS_RECORD_TARGET_BYTES = 1
    store(game_key, [make_install(player_id=f"p{i}") for i in range(3)])
    client = firehose.get_client(policy=worker_policy())

    with stub_put_record_batch(client, [None, THROTTLED, None], [None]) as stubber:
        counts = engine.deliver_due()
        stubber.assert_no_pending_responses()

    assert (counts.delivered, counts.failed, counts.calls) == (3, 0, 2)
    assert DeliveryIssue.objects.count() == 0
    assert calls() == [("relay", 3, 1, CallOutcome.PARTIAL), ("relay", 1, 0, CallOutcome.DELIVERED)]
    assert delivery_states() == {DeliveryState.DELIVERED: 3}


def test_partial_failure_leaves_exactly_the_failed_records_events_as_issues_for_retry(
    game_key, settings, moto_firehose, make_install
):
    settings.EVENTS_RECORD_TARGET_BYTES = 1
    events = [make_install(player_id=f"p{i}") for i in range(5)]
    store(game_key, events)
    client = firehose.get_client(policy=worker_policy())
    still_throttled = [THROTTLED, THROTTLED]

    # The first call, then the two records it failed sent again twice, failing each time.
    with stub_put_record_batch(client, [None, THROTTLED, None, THROTTLED, None], still_throttled, still_throttled):
        counts = engine.deliver_due()

    assert (counts.delivered, counts.failed) == (3, 2)
    failed = DeliveryIssue.objects.filter(state=IssueState.FAILED)
    assert sorted(issue.event.player_id for issue in failed) == ["p1", "p3"]
    for issue in failed:
        assert issue.attempts == 1
        assert issue.next_attempt_at > timezone.now()
        assert THROTTLED in issue.last_error
    assert delivery_states() == {DeliveryState.DELIVERED: 3, DeliveryState.FAILED: 2}
    # Not due yet: a pass now sends nothing.
    assert engine.deliver_due().claimed == 0

    with time_machine.travel(timezone.now() + timedelta(seconds=conf.retry_base_seconds() + 1)):
        assert engine.deliver_due().delivered == 2

    assert delivery_states() == {DeliveryState.DELIVERED: 5}
    p1 = issue_of(player_id="p1")
    assert (p1.state, p1.attempts, p1.last_error) == (IssueState.DELIVERED, 2, "")
    assert p1.delivered_by.sender == "retry"
    assert calls() == [
        ("relay", 5, 2, CallOutcome.PARTIAL),
        ("relay", 2, 2, CallOutcome.FAILED),
        ("relay", 2, 2, CallOutcome.FAILED),
        ("retry", 2, 0, CallOutcome.DELIVERED),
    ]
    # Moto never saw the stubbed calls: only the retried events are in S3, once each.
    assert sorted(orjson.loads(line)["player_id"] for line in read_s3_lines(moto_firehose)) == ["p1", "p3"]


def test_a_failed_packed_record_retries_all_of_its_events(game_key, settings, moto_firehose, make_install):
    store(game_key, [make_install() for _ in range(10)])
    line = len(records.encode_line(Event.objects.first().payload, emitted_at=timezone.now()))
    settings.EVENTS_RECORD_TARGET_BYTES = 5 * line + line // 2  # two records of five lines
    client = firehose.get_client(policy=worker_policy())

    with stub_put_record_batch(client, [THROTTLED, None], [THROTTLED], [THROTTLED]):
        counts = engine.deliver_due()

    assert (counts.delivered, counts.failed, counts.records) == (5, 5, 4)
    assert DeliveryIssue.objects.filter(state=IssueState.FAILED).count() == 5
    first_five = Event.objects.order_by("pk")[:5]
    assert {issue.event_id for issue in DeliveryIssue.objects.all()} == {event.pk for event in first_five}


def test_a_destination_taking_nothing_leaves_the_batch_pending_without_a_row_per_event(
    game_key, moto_firehose, make_install
):
    store(game_key, [make_install() for _ in range(10)])  # default packing: one record
    client = firehose.get_client(policy=worker_policy())

    with stub_put_record_batch(client, [THROTTLED]) as stubber:
        counts = engine.deliver_due()
        stubber.assert_no_pending_responses()  # an outage is not retried in place

    assert (counts.delivered, counts.failed, counts.deferred) == (0, 0, 10)
    assert counts.outages == {0}
    assert DeliveryIssue.objects.count() == 0
    assert calls() == [("relay", 10, 10, CallOutcome.FAILED)]
    assert delivery_states() == {DeliveryState.PENDING: 10}

    # The next pass sends the same batch again.
    assert engine.deliver_due().delivered == 10
    assert len(read_s3_lines(moto_firehose)) == 10
    assert delivery_states() == {DeliveryState.DELIVERED: 10}


def test_events_give_up_as_dead_after_the_last_attempt(game_key, settings, moto_firehose, make_install):
    settings.EVENTS_MAX_ATTEMPTS = 2
    settings.EVENTS_RECORD_TARGET_BYTES = 1
    store(game_key, [make_install(player_id="doomed"), make_install(player_id="fine")])
    client = firehose.get_client(policy=worker_policy())

    with stub_put_record_batch(client, [THROTTLED, None], [THROTTLED], [THROTTLED]):
        assert engine.deliver_due().failed == 1
    with time_machine.travel(timezone.now() + timedelta(hours=2)), stub_put_record_batch(client, [THROTTLED]):
        counts = engine.deliver_due()

    issue = issue_of(player_id="doomed")
    assert counts.dead == 1
    assert (issue.state, issue.attempts, issue.next_attempt_at) == (IssueState.DEAD, 2, None)
    assert THROTTLED in issue.last_error
    assert delivery_state(issue.event) == DeliveryState.DEAD
    assert calls()[-1] == ("retry", 1, 1, CallOutcome.FAILED)
    with time_machine.travel(timezone.now() + timedelta(days=1)):
        assert engine.deliver_due().claimed == 0


def test_firehose_unreachable_still_acknowledges_and_leaves_events_pending_for_the_next_pass(
    api, settings, make_install
):
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens on the discard port

    response = api.post("/v1/events", make_install(), format="json")
    counts = engine.deliver_due()

    assert response.status_code == 202
    assert (counts.deferred, counts.outages) == (1, {0})
    event = Event.objects.get()
    assert delivery_state(event) == DeliveryState.PENDING
    assert DeliveryIssue.objects.count() == 0
    call = DeliveryCall.objects.get()
    assert call.outcome == CallOutcome.FAILED
    assert "PutRecordBatch failed" in call.error


@pytest.mark.parametrize("attempts", [1, 2, 5, 30])
def test_retry_delay_grows_exponentially_with_jitter_up_to_the_cap(attempts):
    ceiling = min(conf.retry_max_seconds(), conf.retry_base_seconds() * 2 ** (attempts - 1))

    delays = [sending.retry_delay(attempts) for _ in range(200)]

    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 1


def test_a_claimed_issue_is_not_claimed_again_until_its_lease_expires(game_key, moto_firehose, make_install):
    store(game_key, [make_install()])
    engine.deliver_due()
    resend.resend_event(event=Event.objects.get(), user=None)  # due again: an issue, pending

    _, first = retry.claim_due(limit=10)
    _, second = retry.claim_due(limit=10)
    with time_machine.travel(timezone.now() + timedelta(seconds=conf.claim_lease_seconds() + 1)):
        _, after_lease = retry.claim_due(limit=10)

    assert len(first) == 1
    assert second == []
    assert [issue.pk for issue in after_lease] == [issue.pk for issue in first]


def test_a_missing_delivery_stream_is_a_warning_saying_how_to_create_it(
    api, settings, moto_firehose, make_install, caplog
):
    settings.FIREHOSE_STREAM_NAME = "never-created"  # what an emulator restarted empty answers
    api.post("/v1/events", make_install(), format="json")

    with caplog.at_level("WARNING", logger="events_app.delivery"):
        counts = engine.deliver_due()

    assert (counts.deferred, counts.outages) == (1, {0})  # retried, as an outage: creating it is an operator's fix
    assert delivery_state(Event.objects.get()) == DeliveryState.PENDING
    error = DeliveryCall.objects.get().error
    assert error.startswith("PutRecordBatch failed: no delivery stream never-created")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and r.name.startswith("events_app")]
    # The sender's warning, its first_error cut at 200 characters, still says what to do.
    assert any("manage.py ensure_firehose" in message for message in warnings), warnings
