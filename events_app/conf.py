"""Product settings in one place, read when used so that override_settings works.

Each is a Django setting filled from the environment variable of the same name in
tracking_project/settings.py; the README's configuration table lists them all.
"""

from django.conf import settings

# Hard limits of the contract (one copy, shared with the SDK) and of Firehose, not configurable.
from sdk.contract import (  # noqa: F401 (re-exported)
    MAX_BATCH_EVENTS,
    MAX_BODY_BYTES,
    MAX_CLOCK_SKEW_SECONDS,
    MAX_CONTEXT_BYTES,
    MAX_EVENT_BYTES,
)

FIREHOSE_MAX_RECORD_BYTES = 1000 * 1024  # one Firehose record
FIREHOSE_MAX_BATCH_RECORDS = 500  # records in one PutRecordBatch
FIREHOSE_MAX_BATCH_BYTES = 4 * 1024 * 1024  # bytes in one PutRecordBatch
FIREHOSE_BILLING_UNIT_BYTES = 5 * 1024  # Firehose bills each record rounded up to this
RECORD_SCHEMA_VERSION = 1  # of the NDJSON line sent to Firehose


def stream_name() -> str:
    """Return the Firehose delivery stream events go to (FIREHOSE_STREAM_NAME)."""
    return settings.FIREHOSE_STREAM_NAME


def s3_bucket() -> str:
    """Return the bucket ensure_firehose creates on an emulator (FIREHOSE_S3_BUCKET)."""
    return settings.FIREHOSE_S3_BUCKET


def s3_prefix() -> str:
    """Return the S3 key prefix of the delivery stream (FIREHOSE_S3_PREFIX)."""
    return settings.FIREHOSE_S3_PREFIX


def aws_endpoint_url() -> str | None:
    """Return the AWS endpoint override for a local emulator, or None for real AWS."""
    return settings.AWS_ENDPOINT_URL


def aws_region() -> str:
    """Return the AWS region (AWS_REGION)."""
    return settings.AWS_REGION


def base_currency() -> str:
    """Return the currency revenue is normalised to (EVENTS_BASE_CURRENCY)."""
    return settings.EVENTS_BASE_CURRENCY


def fx_lookback_days() -> int:
    """Return how many days before a purchase's day a rate may date from (EVENTS_FX_LOOKBACK_DAYS)."""
    return settings.EVENTS_FX_LOOKBACK_DAYS


def fx_cache_seconds() -> float:
    """Return how long a looked-up rate (or its absence) is reused in-process (EVENTS_FX_CACHE_SECONDS)."""
    return settings.EVENTS_FX_CACHE_SECONDS


def inline_delivery() -> bool:
    """Return True if requests forward their own events after commit (EVENTS_INLINE_DELIVERY)."""
    return settings.EVENTS_INLINE_DELIVERY


def record_target_bytes() -> int:
    """Return the size event lines are packed up to in one Firehose record.

    Firehose bills each record rounded up to 5 KB; packing ~300-byte lines into
    records of this size keeps billed bytes close to real bytes. Capped at the
    1,000 KiB record limit.
    """
    return max(1, min(settings.EVENTS_RECORD_TARGET_BYTES, FIREHOSE_MAX_RECORD_BYTES))


def max_attempts() -> int:
    """Return the delivery attempts after which an event is marked dead (EVENTS_MAX_ATTEMPTS)."""
    return settings.EVENTS_MAX_ATTEMPTS


def delivery_batch_size() -> int:
    """Return how many events the worker claims at a time (EVENTS_DELIVERY_BATCH_SIZE)."""
    return settings.EVENTS_DELIVERY_BATCH_SIZE


def retry_base_seconds() -> float:
    """Return the first retry delay; each later attempt doubles it (EVENTS_RETRY_BASE_SECONDS)."""
    return settings.EVENTS_RETRY_BASE_SECONDS


def retry_max_seconds() -> float:
    """Return the cap on the retry delay (EVENTS_RETRY_MAX_SECONDS)."""
    return settings.EVENTS_RETRY_MAX_SECONDS


def claim_lease_seconds() -> float:
    """Return how long a claimed event stays reserved for one sender (EVENTS_CLAIM_LEASE_SECONDS).

    A sender that dies holding a claim loses nothing: after the lease another takes it.
    """
    return settings.EVENTS_CLAIM_LEASE_SECONDS


def inline_timeout_seconds() -> float:
    """Return the connect and read timeout of in-request Firehose calls.

    Small so that a Firehose outage costs a request about a second at most; the
    worker, which nobody waits on, uses longer ones.
    """
    return settings.EVENTS_INLINE_TIMEOUT_SECONDS


def schema_cache_seconds() -> float:
    """Return how long a compiled custom-event schema is reused before its latest version is checked again.

    A new version registered in any process applies in every process within this
    time (EVENTS_SCHEMA_CACHE_SECONDS).
    """
    return settings.EVENTS_SCHEMA_CACHE_SECONDS
