"""The Kinesis Data Streams destination, on moto: records keyed by game and player, limits, per-record failures."""

import io

import boto3
import orjson
import pytest
from botocore.stub import Stubber
from django.core.management import call_command
from moto import mock_aws

from events_app import conf
from events_app.delivery import engine
from events_app.delivery.destinations import aws, kinesis
from events_app.delivery.destinations.base import get_destination
from events_app.delivery.policies import worker_policy
from events_app.models import CallOutcome, DeliveryCall, DeliveryIssue, DeliveryState, Event, IssueState
from tests.support.delivery import delivery_state, delivery_states, issue_of, store


@pytest.fixture
def moto_kinesis(settings):
    """Send to a Kinesis data stream on in-process moto; yield a function returning what the stream holds."""
    settings.EVENTS_DESTINATION = "kinesis"
    settings.KINESIS_STREAM_NAME = "test-events"
    with mock_aws():
        aws.client.cache_clear()
        call_command("ensure_firehose", "--real-aws", stdout=io.StringIO())  # moto in-process
        client = boto3.client("kinesis", region_name=conf.aws_region())

        def read() -> list[tuple[str, bytes]]:
            """Return (partition key, data) of every record in the stream, shard by shard."""
            records = []
            for shard in client.list_shards(StreamName="test-events")["Shards"]:
                iterator = client.get_shard_iterator(
                    StreamName="test-events", ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
                response = client.get_records(ShardIterator=iterator, Limit=10000)
                records += [(r["PartitionKey"], r["Data"]) for r in response["Records"]]
            return records

        yield read
    aws.client.cache_clear()


class PutRecordsSpy:
    def __init__(self, client):
        self.calls: list[list[dict]] = []
        client.meta.events.register("before-parameter-build.kinesis.PutRecords", self._on_call)

    def _on_call(self, params, **kwargs):
        self.calls.append(params["Records"])


def test_events_reach_the_stream_keyed_by_game_and_player_with_each_players_lines_together(
    game_key, moto_kinesis, make_install
):
    events = [make_install(player_id=f"p{i % 3}") for i in range(9)]
    store(game_key, events)

    assert engine.deliver_due().delivered == 9

    records = moto_kinesis()
    assert sorted(key for key, _ in records) == ["space-raiders:p0", "space-raiders:p1", "space-raiders:p2"]
    for key, data in records:
        assert data.endswith(b"\n")
        lines = [orjson.loads(line) for line in data.splitlines()]
        assert len(lines) == 3
        assert {f"{line['game']}:{line['player_id']}" for line in lines} == {key}
    sent = [orjson.loads(line)["event_id"] for _, data in records for line in data.splitlines()]
    assert sorted(sent) == sorted(e["event_id"] for e in events)


def test_a_player_with_more_than_a_records_worth_gets_several_records_in_order(
    game_key, settings, moto_kinesis, make_install
):
    settings.EVENTS_RECORD_TARGET_BYTES = 1000
    events = [make_install(player_id="same") for _ in range(10)]
    store(game_key, events)

    engine.deliver_due()

    records = moto_kinesis()
    assert len(records) > 1
    assert all(len(data) <= 1000 or data.count(b"\n") == 1 for _, data in records)
    order = [orjson.loads(line)["event_id"] for _, data in records for line in data.splitlines()]
    assert order == [e["event_id"] for e in events]


def test_calls_hold_at_most_500_records(game_key, moto_kinesis, make_install):
    store(game_key, [make_install(player_id=f"p{i}") for i in range(1200)])  # a record per player
    spy = PutRecordsSpy(aws.client_for("kinesis", worker_policy()))

    assert engine.deliver_due(limit=1200).delivered == 1200

    assert [len(call) for call in spy.calls] == [500, 500, 200]


def test_calls_stay_within_5_mib_including_partition_keys(game_key, settings, moto_kinesis, make_install):
    settings.EVENTS_RECORD_TARGET_BYTES = 1
    store(game_key, [make_install(player_id=f"p{i}", properties={"note": "x" * 30_000}) for i in range(200)])
    spy = PutRecordsSpy(aws.client_for("kinesis", worker_policy()))

    assert engine.deliver_due(limit=200).delivered == 200

    assert len(spy.calls) > 1
    for call in spy.calls:
        assert sum(len(r["Data"]) + len(r["PartitionKey"]) for r in call) <= kinesis.MAX_CALL_BYTES


def test_throttled_records_are_retried_and_the_others_delivered(game_key, moto_kinesis, make_install):
    store(game_key, [make_install(player_id=f"p{i}") for i in range(3)])
    client = aws.client_for("kinesis", worker_policy())
    stubber = Stubber(client)
    throttled = {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded for shard"}
    entries = [
        {"SequenceNumber": "1", "ShardId": "shardId-000000000000"},
        throttled,
        {"SequenceNumber": "2", "ShardId": "shardId-000000000000"},
    ]
    stubber.add_response("put_records", {"FailedRecordCount": 1, "Records": entries})
    for _ in range(2):  # sent again at once, twice, throttled each time
        stubber.add_response("put_records", {"FailedRecordCount": 1, "Records": [throttled]})

    with stubber:
        counts = engine.deliver_due()
        stubber.assert_no_pending_responses()

    assert (counts.delivered, counts.failed, counts.dead) == (2, 1, 0)
    failed = DeliveryIssue.objects.get(state=IssueState.FAILED)
    assert failed.event.player_id == "p1"
    assert "ProvisionedThroughputExceededException" in failed.last_error
    assert delivery_states() == {DeliveryState.DELIVERED: 2, DeliveryState.FAILED: 1}
    assert issue_of(player_id="p1").payload == failed.event.payload  # its own copy of the line


def test_a_missing_stream_keeps_the_batch_pending_and_records_the_failed_call(
    game_key, settings, moto_kinesis, make_install
):
    settings.KINESIS_STREAM_NAME = "no-such-stream"
    store(game_key, [make_install()])

    counts = engine.deliver_due()

    assert (counts.deferred, counts.failed) == (1, 0)
    assert DeliveryIssue.objects.count() == 0
    call = DeliveryCall.objects.get()
    assert (call.destination, call.outcome) == ("kinesis", CallOutcome.FAILED)
    assert "PutRecords failed" in call.error
    assert delivery_state(Event.objects.get()) == DeliveryState.PENDING
    settings.KINESIS_STREAM_NAME = "test-events"
    assert engine.deliver_due().delivered == 1  # the same batch, once the stream is there
    assert len(moto_kinesis()) == 1


def test_one_call_carries_the_events_of_many_requests_to_kinesis_too(api, moto_kinesis, make_install):
    spy = PutRecordsSpy(aws.client_for("kinesis", worker_policy()))
    for i in range(20):
        api.post("/v1/events", make_install(player_id=f"p{i % 2}"), format="json")

    assert engine.deliver_due().delivered == 20

    assert len(spy.calls) == 1
    assert sorted(key for key, _ in moto_kinesis()) == ["space-raiders:p0", "space-raiders:p1"]


def test_ensure_firehose_creates_the_data_stream_once(moto_kinesis):
    out = io.StringIO()

    call_command("ensure_firehose", "--real-aws", stdout=out)  # moto in-process stands in for AWS

    assert "already exist" in out.getvalue()
    assert get_destination().name == "kinesis"
