"""The Kinesis Data Streams destination: PutRecords keyed by game and player, and stream setup.

A data stream lets independent consumers (Lambda, KCL applications, Firehose itself
with the stream as its source) each read every event without depending on the API.
"""

import logging

from botocore.exceptions import BotoCoreError, ClientError

from events_app import conf
from events_app.delivery.destinations import aws
from events_app.delivery.destinations.base import Limits, PackedRecord, RecordError
from events_app.delivery.destinations.errors import KinesisError
from events_app.delivery.policies import SendPolicy

logger = logging.getLogger(__name__)

MAX_RECORD_BYTES = 1024 * 1024  # data plus partition key, per record
MAX_CALL_RECORDS = 500  # records in one PutRecords
MAX_CALL_BYTES = 5 * 1024 * 1024  # data plus partition keys, per PutRecords
BILLING_UNIT_BYTES = 25 * 1024  # a PUT payload unit
MAX_PARTITION_KEY_CHARS = 256

# Per-record codes are only ever throttling (ProvisionedThroughputExceededException)
# or InternalFailure: both worth another try. Call-level codes that blame the request:
PERMANENT_CALL_ERRORS = frozenset({"InvalidArgumentException", "ValidationException", "SerializationException"})


def put_records(client, *, stream: str, records: list[PackedRecord]) -> list[RecordError | None]:
    """Send `records` in one PutRecords call; return, per record, None if taken, else its error.

    Like Firehose, a partly throttled call answers 200 with FailedRecordCount > 0 and
    an ErrorCode on each refused entry, which boto3 never retries: the caller must.
    Raises KinesisError if the call as a whole failed.
    """
    entries = [{"Data": record.data, "PartitionKey": record.partition_key} for record in records]
    try:
        response = client.put_records(StreamName=stream, Records=entries)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise KinesisError(f"PutRecords failed: {exc}", permanent=code in PERMANENT_CALL_ERRORS) from exc
    except BotoCoreError as exc:
        raise KinesisError(f"PutRecords failed: {exc}") from exc
    if not response.get("FailedRecordCount"):
        return [None] * len(records)
    return [
        RecordError(f"{entry['ErrorCode']}: {entry.get('ErrorMessage', '')}") if entry.get("ErrorCode") else None
        for entry in response["Records"]
    ]


class KinesisDestination:
    """Events as NDJSON records of a Kinesis data stream (KINESIS_STREAM_NAME), keyed `game:player_id`.

    One key per player keeps each player's events in order on one shard, and spreads
    players over all shards; lines are packed only with lines of the same key.
    """

    name = "kinesis"
    limits = Limits(
        max_record_bytes=MAX_RECORD_BYTES - MAX_PARTITION_KEY_CHARS * 4,  # room for the key, in UTF-8
        max_call_records=MAX_CALL_RECORDS,
        max_call_bytes=MAX_CALL_BYTES,
        billing_unit_bytes=BILLING_UNIT_BYTES,
    )
    keyed = True

    def partition_key(self, payload: dict) -> str:
        return f"{payload['game']}:{payload['player_id']}"[:MAX_PARTITION_KEY_CHARS]

    def open(self, *, policy: SendPolicy) -> None:
        aws.client_for("kinesis", policy)

    def send(self, records: list[PackedRecord], *, policy: SendPolicy) -> list[RecordError | None]:
        return put_records(aws.client_for("kinesis", policy), stream=conf.kinesis_stream_name(), records=records)

    def ensure(self) -> list[str]:
        return ensure_stream(stream=conf.kinesis_stream_name())


def ensure_stream(*, stream: str) -> list[str]:
    """Create the data stream (on-demand capacity) if missing and wait until it is active; return what was created."""
    client = aws.setup_client("kinesis")
    try:
        client.describe_stream_summary(StreamName=stream)
        return []
    except client.exceptions.ResourceNotFoundException:
        pass
    client.create_stream(StreamName=stream, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    client.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    return [f"data stream {stream}"]
