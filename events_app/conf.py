"""Product settings in one place, read when used so that override_settings works.

Each is a Django setting filled from the environment variable of the same name in
tracking_project/settings.py; docs/configuration.md lists them all.
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

# The body limit of POST /v1/events (one event): twice the event's own limit leaves
# room for the spaces and \u escapes a client's encoder may add to a 32 KiB event,
# and bounds what parsing a body can cost to a sixteenth of a 1 MiB batch's.
MAX_EVENT_BODY_BYTES = 2 * MAX_EVENT_BYTES

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


def fx_carry_forward() -> bool:
    """Return True if purchases after the newest rate take that rate (EVENTS_FX_CARRY_FORWARD, default DEBUG).

    The ECB history shipped for local runs ends at its release date, while the
    simulator sends purchases of today. A deployment (DEBUG off) never carries a rate
    forward unless told to: such purchases wait for real rates and `reconvert`
    (docs/currency.md).
    """
    return settings.EVENTS_FX_CARRY_FORWARD


def fx_cache_seconds() -> float:
    """Return how long a looked-up rate (or its absence) is reused in-process (EVENTS_FX_CACHE_SECONDS)."""
    return settings.EVENTS_FX_CACHE_SECONDS


def dedup_window_hours() -> float:
    """Return how long an event_id stays a duplicate after its first arrival (EVENTS_DEDUP_WINDOW_HOURS, 168).

    Keys live in window-long buckets (events_app.idempotency): a key is kept between
    one and two windows, and the key table holds about two windows of event ids.
    """
    return settings.EVENTS_DEDUP_WINDOW_HOURS


def purchase_key_days() -> float:
    """Return how long a purchase's transaction_id stays a duplicate (EVENTS_PURCHASE_KEY_DAYS, 400)."""
    return settings.EVENTS_PURCHASE_KEY_DAYS


def relay_shards() -> int:
    """Return how many relay shards the log is split into (EVENTS_RELAY_SHARDS, at least 1).

    Each event's shard is fixed when it is stored (a hash of game and player), so
    change it only with the relays drained (docs/delivery.md). EVENTS_INLINE_DELIVERY
    is accepted and has no effect: the relay in `deliver_events` does all forwarding.
    """
    return max(1, settings.EVENTS_RELAY_SHARDS)


def destination() -> str:
    """Return where events are sent (EVENTS_DESTINATION): `firehose`, `kinesis`, or a dotted class path."""
    return settings.EVENTS_DESTINATION


def kinesis_stream_name() -> str:
    """Return the Kinesis data stream events go to with EVENTS_DESTINATION=kinesis (KINESIS_STREAM_NAME)."""
    return settings.KINESIS_STREAM_NAME


def record_target_bytes() -> int:
    """Return the size event lines are packed up to in one record.

    Firehose bills each record rounded up to 5 KB; packing ~300-byte lines into
    records of this size keeps billed bytes close to real bytes. Capped at the
    1,000 KiB record limit (each destination caps it at its own limit too).
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


def rate_limit() -> str:
    """Return how many requests one API key may make per window (EVENTS_RATE_LIMIT).

    "2000/s" (the default), "N/s", "N/m" or "N/h"; "0" turns the limit off. Counted per
    key in the shared cache: one budget for all processes with REDIS_URL.
    """
    return settings.EVENTS_RATE_LIMIT


def auth_failure_rate() -> str:
    """Return how many failed key lookups a client address may make per window (EVENTS_AUTH_FAILURE_RATE).

    "100/m" (the default), "N/s", "N/m" or "N/h"; "0" turns the limit off. Counted per
    REMOTE_ADDR in the shared cache; beyond it the address's unknown keys answer 429.
    """
    return settings.EVENTS_AUTH_FAILURE_RATE


def schema_cache_seconds() -> float:
    """Return how long a compiled custom-event schema is reused before its latest version is checked again.

    A new version registered in any process applies in every process within this
    time (EVENTS_SCHEMA_CACHE_SECONDS).
    """
    return settings.EVENTS_SCHEMA_CACHE_SECONDS


# --- Operations: metrics, logs, retention (docs/operations.md) -----------------------


def rejections_kept() -> int:
    """Return how many recent rejections are kept for the admin (EVENTS_REJECTIONS_KEPT)."""
    return settings.EVENTS_REJECTIONS_KEPT


def metrics_token() -> str:
    """Return the bearer token `/metrics` asks for, or "" to serve it to anyone (EVENTS_METRICS_TOKEN)."""
    return settings.EVENTS_METRICS_TOKEN


def metrics_public() -> bool:
    """Return True if `/metrics` and the worker's port may be served without a token (EVENTS_METRICS_PUBLIC).

    Off by default in production (DJANGO_DEBUG off): there, without a token, `/metrics`
    answers 403 and the delivery worker refuses to start its exporter. On in debug mode.
    """
    return settings.EVENTS_METRICS_PUBLIC


def metrics_cache_seconds() -> float:
    """Return how long the database figures of `/metrics` are reused (EVENTS_METRICS_CACHE_SECONDS).

    The backlog and oldest-event gauges cost a few index lookups; however often
    Prometheus scrapes, and however many processes answer, they are computed at most
    once per this many seconds (per process, or per deployment with REDIS_URL).
    """
    return settings.EVENTS_METRICS_CACHE_SECONDS


def log_format() -> str:
    """Return how log lines are written (EVENTS_LOG_FORMAT): `text`, or `json` (one object per line).

    Applied once at startup (the LOGGING setting, and gunicorn's own logs through
    tracking_project/gunicorn_hooks.py, which reads the environment variable itself).
    """
    return settings.EVENTS_LOG_FORMAT


def retention_days() -> float:
    """Return the age after which `purge_events` deletes delivered events (EVENTS_RETENTION_DAYS).

    `--older-than` overrides it per run. The idempotency window is its own setting
    (EVENTS_DEDUP_WINDOW_HOURS): purging events never forgets their ids sooner.
    """
    return settings.EVENTS_RETENTION_DAYS


def kpi_retention_days() -> float:
    """Return the age in days after which the daily KPI aggregates are deleted (EVENTS_KPI_RETENTION_DAYS, default 800).

    Independent of the events' retention: the KPIs of a day outlive its events. A
    player not seen for that long is forgotten too, and counts as new if they return.
    """
    return settings.EVENTS_KPI_RETENTION_DAYS


def call_retention_days() -> float:
    """Return the age after which the records of destination calls are deleted (EVENTS_CALL_RETENTION_DAYS).

    Never less than the events' age of the run: a stored delivered event keeps the
    record of the call that delivered it.
    """
    return settings.EVENTS_CALL_RETENTION_DAYS


def duplicate_tally_retention_days() -> float:
    """Return the age after which the dashboard's duplicate tallies are deleted (EVENTS_DUPLICATE_TALLY_RETENTION_DAYS).

    Counts only: the duplicate-detection keys are the stored events' own ids.
    """
    return settings.EVENTS_DUPLICATE_TALLY_RETENTION_DAYS


def hour_count_retention_days() -> float:
    """Return the age after which the relays' per-hour counts are deleted (EVENTS_HOUR_COUNT_RETENTION_DAYS).

    The dashboard shows 30 days of them; the daily KPIs are kept apart (EVENTS_KPI_RETENTION_DAYS).
    """
    return settings.EVENTS_HOUR_COUNT_RETENTION_DAYS


def rejection_retention_days() -> float:
    """Return the age after which rejected events are deleted (EVENTS_REJECTIONS_MAX_AGE_DAYS, default 7).

    Their bodies hold what clients sent, player ids included, so they live days, not
    the events' retention: deleted by `purge_events` and by each write of new ones.
    EVENTS_REJECTION_RETENTION_DAYS, the earlier setting, shortens it when set lower.
    The count bound EVENTS_REJECTIONS_KEPT applies too, whichever removes more.
    """
    max_age = settings.EVENTS_REJECTIONS_MAX_AGE_DAYS
    return min(max_age, settings.EVENTS_REJECTION_RETENTION_DAYS)


def rejections_per_request() -> int:
    """Return how many rejected events one request may record (EVENTS_REJECTIONS_PER_REQUEST, default 20).

    The rest are answered and counted as usual, only not kept: 500 invalid events in
    one batch would otherwise write 500 rows of bodies and push out every other game's.
    """
    return settings.EVENTS_REJECTIONS_PER_REQUEST


def purge_batch_size() -> int:
    """Return how many rows `purge_events` deletes per transaction (EVENTS_PURGE_BATCH_SIZE).

    Each batch holds the write lock (SQLite) or its rows' locks (PostgreSQL) only for
    its own delete, so ingest waits at most one batch's time.
    """
    return settings.EVENTS_PURGE_BATCH_SIZE


def purge_pause_factor() -> float:
    """Return how long the purge rests after each batch, as a multiple of the batch's time (EVENTS_PURGE_PAUSE_FACTOR).

    1 (the default) holds the database at most half the time, so ingest keeps its
    latency (docs/operations.md has the figures); 0 purges as fast as it can.
    """
    return settings.EVENTS_PURGE_PAUSE_FACTOR


def worker_metrics_port() -> int:
    """Return the port the delivery worker serves its own `/metrics` on, or 0 for none (EVENTS_WORKER_METRICS_PORT)."""
    return settings.EVENTS_WORKER_METRICS_PORT


def worker_metrics_addr() -> str:
    """Return the address the worker's metrics port binds (EVENTS_WORKER_METRICS_ADDR): loopback unless set.

    A container scraped from outside sets 0.0.0.0, with EVENTS_METRICS_TOKEN.
    """
    return settings.EVENTS_WORKER_METRICS_ADDR


def rates_url() -> str:
    """Return where the scheduler's `rates` job downloads exchange rates from, or "" for no download (EVENTS_RATES_URL).

    By default the ECB's full history (a zip of eurofxref-hist.csv): importing it again
    changes nothing, and a day the job missed is filled the next time.
    """
    return settings.EVENTS_RATES_URL


def alert_thresholds() -> dict:
    """Return when the admin's pipeline panel turns amber or red (EVENTS_ALERT_*), and its chart's hours.

    Ages in seconds of the oldest undelivered event, counts of failed events.
    """
    return {
        "amber_age_seconds": settings.EVENTS_ALERT_AMBER_AGE_SECONDS,
        "red_age_seconds": settings.EVENTS_ALERT_RED_AGE_SECONDS,
        "amber_failed": settings.EVENTS_ALERT_AMBER_FAILED,
        "red_failed": settings.EVENTS_ALERT_RED_FAILED,
        "chart_hours": settings.EVENTS_ALERT_CHART_HOURS,
    }
