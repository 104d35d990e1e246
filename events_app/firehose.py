"""The seam in front of AWS Kinesis Data Firehose: clients, PutRecordBatch, and stream setup."""

import functools
import logging
from dataclasses import dataclass

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from . import conf
from .exceptions import FirehoseError

logger = logging.getLogger(__name__)


def get_client(*, inline: bool):
    """Return a Firehose client for the request path (`inline`) or for the worker.

    In a request a Firehose outage must cost about a second at most, so those calls
    get short timeouts and no retries (the worker retries later); the worker, which
    nobody waits on, gets patient ones. Both set the retry mode explicitly because
    the botocore default depends on its version.
    """
    if inline:
        timeout = conf.inline_timeout_seconds()
        # Connecting takes milliseconds when Firehose is healthy; half the budget is plenty.
        settings_key = (timeout / 2, timeout, 1)
    else:
        settings_key = (5.0, 30.0, 3)
    return _client(conf.aws_region(), conf.aws_endpoint_url(), *settings_key)


@functools.lru_cache(maxsize=8)
def _client(region: str, endpoint_url: str | None, connect_timeout: float, read_timeout: float, attempts: int):
    # A session per client: boto3's default session is not safe to share across threads.
    session = boto3.session.Session()
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": attempts},
        max_pool_connections=4,
    )
    return session.client("firehose", region_name=region, endpoint_url=endpoint_url, config=config)


# Per-record error codes that mean Firehose will never take this record. Anything else
# (throttling, internal failures, KMS key trouble an operator can fix) is retried
# until EVENTS_MAX_ATTEMPTS: an acknowledged event is never given up on a guess.
PERMANENT_RECORD_ERRORS = frozenset({"InvalidArgumentException", "ValidationException"})
# Call-level codes that blame the request itself; retrying the same records is futile.
PERMANENT_CALL_ERRORS = frozenset({"InvalidArgumentException", "ValidationException", "SerializationException"})


@dataclass(frozen=True)
class RecordError:
    """Why Firehose did not take a record, and whether trying again could help."""

    message: str
    permanent: bool = False


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
        raise FirehoseError(f"PutRecordBatch failed: {exc}", permanent=code in PERMANENT_CALL_ERRORS) from exc
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


def ensure_stream(*, stream: str, bucket: str, prefix: str) -> list[str]:
    """Create the S3 bucket and the delivery stream into it if missing; return what was created."""
    session = boto3.session.Session()
    endpoint_url = conf.aws_endpoint_url()
    region = conf.aws_region()
    s3 = session.client("s3", region_name=region, endpoint_url=endpoint_url)
    firehose = session.client("firehose", region_name=region, endpoint_url=endpoint_url)
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
