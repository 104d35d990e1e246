"""Forwarding to Firehose, against moto: NDJSON in S3, call counts, packing, partial failures, retries."""

import math
from datetime import timedelta

import orjson
import pytest
import time_machine
from botocore.stub import Stubber
from django.utils import timezone

from events_app import conf
from events_app.delivery import engine
from events_app.delivery.destinations import firehose
from events_app.delivery.policies import worker_policy
from events_app.models import AttemptOutcome, DeliveryAttempt, DeliveryState, Event
from tests.support.delivery import PutRecordBatchSpy, read_s3_lines, store
from tests.support.forwarding import forwarder_fixture  # noqa: F401 (the forwarder fixture)

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


def test_accepted_events_reach_s3_as_newline_terminated_json_with_the_record_fields(
    api, forwarder, moto_firehose, make_install, make_purchase
):
    install = make_install()
    purchase = make_purchase(
        properties={"transaction_id": "t-1", "product_id": "gems", "price": "2.50", "currency": "EUR", "quantity": 3}
    )

    response = forwarder.post(api, "/v1/events/batch", {"events": [install, purchase]})

    assert response.status_code == 200
    lines = [orjson.loads(line) for line in read_s3_lines(moto_firehose)]
    by_id = {line["event_id"]: line for line in lines}
    assert set(by_id) == {install["event_id"], purchase["event_id"]}
    assert set(by_id[install["event_id"]]) == RECORD_FIELDS
    assert set(by_id[purchase["event_id"]]) == RECORD_FIELDS | PURCHASE_FIELDS
    assert by_id[purchase["event_id"]]["revenue"] == "7.5"
    assert by_id[purchase["event_id"]]["game"] == "space-raiders"
    assert all(line["emitted_at"].endswith("Z") and line["received_at"].endswith("Z") for line in lines)
    assert set(Event.objects.values_list("delivery_state", flat=True)) == {DeliveryState.DELIVERED}
    assert DeliveryAttempt.objects.filter(outcome=AttemptOutcome.DELIVERED).count() == 2


def test_worker_delivers_what_requests_left_pending(api, moto_firehose, make_install):
    events = [make_install(player_id=f"p{i}") for i in range(20)]
    api.post("/v1/events/batch", {"events": events}, format="json")
    assert Event.objects.filter(delivery_state=DeliveryState.PENDING).count() == 20

    counts = engine.deliver_due()

    assert counts.delivered == 20
    assert sorted(orjson.loads(line)["event_id"] for line in read_s3_lines(moto_firehose)) == sorted(
        e["event_id"] for e in events
    )
    assert engine.deliver_due().claimed == 0


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


def test_one_event_per_record_splits_1200_events_into_calls_of_500_records(
    game_key, settings, moto_firehose, make_install
):
    settings.EVENTS_RECORD_TARGET_BYTES = 1  # every line alone in its record
    store(game_key, [make_install() for _ in range(1200)])
    spy = PutRecordBatchSpy(firehose.get_client(policy=worker_policy()))

    assert engine.deliver_due(limit=1200).delivered == 1200

    assert [len(call) for call in spy.calls] == [500, 500, 200]


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


def test_packing_never_splits_a_line_and_keeps_order():
    lines = [f'{{"n":{i}}}\n'.encode() for i in range(100)]

    records = engine.pack_records(lines, target_bytes=50)

    assert b"".join(r.data for r in records) == b"".join(lines)
    assert all(len(r.data) <= 50 for r in records)
    assert [i for r in records for i in r.members] == list(range(100))


def _stub_failures(client, failed_positions: set[int], count: int) -> Stubber:
    """Stub one PutRecordBatch answer in which the records at `failed_positions` were throttled."""
    stubber = Stubber(client)
    responses = [
        {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."}
        if position in failed_positions
        else {"RecordId": f"record-{position}"}
        for position in range(count)
    ]
    stubber.add_response("put_record_batch", {"FailedPutCount": len(failed_positions), "RequestResponses": responses})
    return stubber


def test_partial_failure_leaves_exactly_the_failed_records_events_pending_for_retry(
    game_key, settings, moto_firehose, make_install
):
    settings.EVENTS_RECORD_TARGET_BYTES = 1
    events = [make_install(player_id=f"p{i}") for i in range(5)]
    store(game_key, events)
    client = firehose.get_client(policy=worker_policy())

    with _stub_failures(client, {1, 3}, 5):
        counts = engine.deliver_due()

    assert (counts.delivered, counts.failed) == (3, 2)
    failed = Event.objects.filter(delivery_state=DeliveryState.FAILED)
    assert sorted(e.player_id for e in failed) == ["p1", "p3"]
    for event in failed:
        assert event.attempts == 1
        assert event.next_attempt_at > timezone.now()
        assert "ServiceUnavailableException" in event.last_error
    # Not due yet: a worker run now sends nothing.
    assert engine.deliver_due().claimed == 0

    with time_machine.travel(timezone.now() + timedelta(seconds=conf.retry_base_seconds() + 1)):
        assert engine.deliver_due().delivered == 2

    assert Event.objects.filter(delivery_state=DeliveryState.DELIVERED).count() == 5
    assert Event.objects.get(player_id="p1").attempts == 2
    # Moto never saw the stubbed call: only the retried events are in S3, once each.
    assert sorted(orjson.loads(line)["player_id"] for line in read_s3_lines(moto_firehose)) == ["p1", "p3"]


def test_a_failed_packed_record_retries_all_of_its_events(game_key, moto_firehose, make_install):
    store(game_key, [make_install() for _ in range(10)])  # default packing: one record
    client = firehose.get_client(policy=worker_policy())

    with _stub_failures(client, {0}, 1):
        counts = engine.deliver_due()

    assert (counts.delivered, counts.failed) == (0, 10)


def test_events_give_up_as_dead_after_the_last_attempt(game_key, settings, moto_firehose, make_install):
    settings.EVENTS_MAX_ATTEMPTS = 2
    store(game_key, [make_install()])
    client = firehose.get_client(policy=worker_policy())

    with _stub_failures(client, {0}, 1):
        engine.deliver_due()
    with time_machine.travel(timezone.now() + timedelta(hours=2)), _stub_failures(client, {0}, 1):
        counts = engine.deliver_due()

    event = Event.objects.get()
    assert counts.dead == 1
    assert event.delivery_state == DeliveryState.DEAD
    assert event.next_attempt_at is None
    assert list(event.attempts_log.values_list("outcome", flat=True)) == [AttemptOutcome.DEAD, AttemptOutcome.FAILED]
    with time_machine.travel(timezone.now() + timedelta(days=1)):
        assert engine.deliver_due().claimed == 0


def test_firehose_unreachable_still_acknowledges_and_leaves_events_for_the_worker(
    api, forwarder, settings, make_install
):
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens on the discard port

    response = forwarder.post(api, "/v1/events", make_install())

    assert response.status_code == 202
    event = Event.objects.get()
    assert event.delivery_state == DeliveryState.FAILED
    assert event.claim_token is None
    assert event.next_attempt_at > timezone.now()
    assert "PutRecordBatch failed" in event.last_error


@pytest.mark.parametrize("attempts", [1, 2, 5, 30])
def test_retry_delay_grows_exponentially_with_jitter_up_to_the_cap(attempts):
    ceiling = min(conf.retry_max_seconds(), conf.retry_base_seconds() * 2 ** (attempts - 1))

    delays = [engine.retry_delay(attempts) for _ in range(200)]

    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 1


def test_a_claimed_event_is_not_claimed_again_until_its_lease_expires(game_key, make_install):
    store(game_key, [make_install()])

    _, first = engine.claim_due(limit=10)
    _, second = engine.claim_due(limit=10)
    with time_machine.travel(timezone.now() + timedelta(seconds=conf.claim_lease_seconds() + 1)):
        _, after_lease = engine.claim_due(limit=10)

    assert len(first) == 1
    assert second == []
    assert [e.pk for e in after_lease] == [e.pk for e in first]


def test_a_missing_delivery_stream_says_how_to_create_it(api, settings, moto_firehose, make_install, caplog):
    settings.FIREHOSE_STREAM_NAME = "never-created"  # what an emulator restarted empty answers
    api.post("/v1/events", make_install(), format="json")

    with caplog.at_level("WARNING", logger="events_app.delivery.engine"):
        engine.deliver_due()

    event = Event.objects.get()
    assert event.delivery_state == DeliveryState.FAILED
    assert event.last_error.startswith("PutRecordBatch failed: no delivery stream never-created")
    # The worker's log line, cut at 200 characters, still says what to do.
    assert "manage.py ensure_firehose" in caplog.records[-1].getMessage()
