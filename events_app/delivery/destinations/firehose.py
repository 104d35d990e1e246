"""The Kinesis Data Firehose destination: PutRecordBatch, its errors, and stream setup."""

import logging

from botocore.exceptions import BotoCoreError, ClientError

from events_app import conf
from events_app.delivery.destinations import aws
from events_app.delivery.destinations.base import Limits, PackedRecord, RecordError
from events_app.delivery.destinations.errors import FirehoseError
from events_app.delivery.policies import SendPolicy

logger = logging.getLogger(__name__)

# Cleared by the tests around moto; the cache is shared by every destination.
_client = aws.client

# Per-record error codes that mean Firehose will never take this record. Anything else
# (throttling, internal failures, KMS key trouble an operator can fix) is retried
# until EVENTS_MAX_ATTEMPTS: an acknowledged event is never given up on a guess.
PERMANENT_RECORD_ERRORS = frozenset({"InvalidArgumentException", "ValidationException"})
# Call-level codes that blame the request itself; retrying the same records is futile.
PERMANENT_CALL_ERRORS = frozenset({"InvalidArgumentException", "ValidationException", "SerializationException"})
# The stream does not exist. Retried all the same: creating it is an operator's fix.
MISSING = "ResourceNotFoundException"


def get_client(*, policy: SendPolicy):
    """Return the Firehose client that sends under `policy`."""
    return aws.client_for("firehose", policy)


def put_record_batch(client, *, stream: str, records: list[bytes]) -> list[RecordError | None]:
    """Send `records` in one call; return, per record, None if Firehose took it, else its error.

    Throttling arrives inside a 200 answer as per-record `ServiceUnavailableException`
    entries (FailedPutCount > 0), which boto3 never retries: the caller must.
    Raises FirehoseError if the call as a whole failed.
    """
    try:
        response = client.put_record_batch(DeliveryStreamName=stream, Records=[{"Data": data} for data in records])
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        # First in the message, which logs cut short: an emulator restarted empty answers this.
        hint = (
            f"no delivery stream {stream} (make run's emulator recreates it within seconds; "
            "elsewhere: manage.py ensure_firehose): "
            if code == MISSING
            else ""
        )
        raise FirehoseError(f"PutRecordBatch failed: {hint}{exc}", permanent=code in PERMANENT_CALL_ERRORS) from exc
    except BotoCoreError as exc:  # connection refused, timeouts, DNS: always worth another try
        raise FirehoseError(f"PutRecordBatch failed: {exc}") from exc
    if not response.get("FailedPutCount"):
        return [None] * len(records)
    return [
        RecordError(
            f"{entry['ErrorCode']}: {entry.get('ErrorMessage', '')}",
            permanent=entry["ErrorCode"] in PERMANENT_RECORD_ERRORS,
        )
        if entry.get("ErrorCode")
        else None
        for entry in response["RequestResponses"]
    ]


class FirehoseDestination:
    """Events as NDJSON records of a Firehose delivery stream (FIREHOSE_STREAM_NAME), which lands them in S3."""

    name = "firehose"
    limits = Limits(
        max_record_bytes=conf.FIREHOSE_MAX_RECORD_BYTES,
        max_call_records=conf.FIREHOSE_MAX_BATCH_RECORDS,
        max_call_bytes=conf.FIREHOSE_MAX_BATCH_BYTES,
        billing_unit_bytes=conf.FIREHOSE_BILLING_UNIT_BYTES,
    )
    keyed = False

    def partition_key(self, payload: dict) -> None:
        return None  # Firehose has no partitions: any lines may share a record

    def open(self, *, policy: SendPolicy) -> None:
        get_client(policy=policy)

    def send(self, records: list[PackedRecord], *, policy: SendPolicy) -> list[RecordError | None]:
        return put_record_batch(
            get_client(policy=policy), stream=conf.stream_name(), records=[record.data for record in records]
        )

    def ensure(self) -> list[str]:
        return ensure_stream(stream=conf.stream_name(), bucket=conf.s3_bucket(), prefix=conf.s3_prefix())


def ensure_stream(*, stream: str, bucket: str, prefix: str) -> list[str]:
    """Create the S3 bucket and the delivery stream into it if missing; return what was created."""
    region = conf.aws_region()
    s3 = aws.setup_client("s3")
    firehose = aws.setup_client("firehose")
    created = []
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        create_args = {"Bucket": bucket}
        if region != "us-east-1":
            create_args["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**create_args)
        created.append(f"bucket {bucket}")
    existing = firehose.list_delivery_streams(Limit=10000)["DeliveryStreamNames"]
    if stream not in existing:
        firehose.create_delivery_stream(
            DeliveryStreamName=stream,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                # Emulators ignore the role; real AWS needs one the stream can assume.
                "RoleARN": "arn:aws:iam::123456789012:role/firehose-delivery",
                "BucketARN": f"arn:aws:s3:::{bucket}",
                "Prefix": prefix,
                "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60},
                "CompressionFormat": "UNCOMPRESSED",
            },
        )
        created.append(f"delivery stream {stream}")
    return created
