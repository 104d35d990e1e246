"""The delivery loop behind `manage.py deliver_events`: relay passes and retries until stopped, or until drained."""

import logging
import signal
import threading
import time

from django.db import DatabaseError, close_old_connections, connection

from events_app import conf, logstore
from events_app.delivery import heartbeat
from events_app.delivery.engine import DeliveryPass, deliver_due, release_shards
from events_app.delivery.sending import DeliveryCounts, retry_delay

logger = logging.getLogger(__name__)

# Besides migrate and the scheduled job, the relay keeps the log's days ahead: at start, then hourly.
PARTITIONS_EVERY_SECONDS = 3600


def run_worker(
    *, once: bool, idle_seconds: float = 0.2, stop: threading.Event | None = None, shards: list[int] | None = None
) -> DeliveryCounts:
    """Deliver pass after pass; return the totals.

    With `once`, return when everything committed before the start has gone past
    every shard's cursor (and no issue is due), or when the destination takes
    nothing (the events wait, unharmed, for the next run). Otherwise wait
    `idle_seconds` after a pass with nothing to do, back off a shard whose
    destination takes nothing (the same batch is tried again, nothing is written per
    event meanwhile), and run until SIGTERM or SIGINT, which let the current pass finish.
    """
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    shards = list(range(conf.relay_shards())) if shards is None else shards
    mark = logstore.drained_mark() if once else None
    totals = DeliveryCounts()
    outage_runs: dict[int, int] = {}
    waiting_until: dict[int, float] = {}
    partitions_checked = float("-inf")
    try:
        while not stop.is_set():
            # Drop a connection the database closed or that outlived CONN_MAX_AGE, as Django
            # does between requests; never inside a transaction (a test's, for one).
            if not connection.in_atomic_block:
                close_old_connections()
            if time.monotonic() - partitions_checked > PARTITIONS_EVERY_SECONDS:
                _ensure_partitions()
                partitions_checked = time.monotonic()
            heartbeat.beat(sender=heartbeat.WORKER)  # "worker last seen" in the admin, idle or not
            now = time.monotonic()
            skip = {shard for shard, until in waiting_until.items() if until > now}
            result = deliver_due(shards=shards, skip=skip)
            totals.add(result)
            _back_off(result, outage_runs=outage_runs, waiting_until=waiting_until)
            if once:
                if result.outages or _drained(result, shards=shards, mark=mark):
                    break
                if result.claimed == 0:
                    stop.wait(idle_seconds)  # a transaction older than the start is still open: wait for it
                continue
            if result.claimed == 0:
                stop.wait(idle_seconds)
    finally:
        release_shards(shards)
    logger.info(
        "worker stopped delivered=%d failed=%d dead=%d calls=%d",
        totals.delivered,
        totals.failed,
        totals.dead,
        totals.calls,
    )
    return totals


def _ensure_partitions() -> None:
    """Keep the log's days ahead (PostgreSQL), never stopping delivery if it cannot."""
    try:
        created = logstore.ensure_partitions()
    except DatabaseError as exc:
        logger.error("could not create the log's partitions ahead: %s", exc.__class__.__name__)
        return
    if created:
        logger.info("created partitions=%d", len(created))


def _back_off(result: DeliveryPass, *, outage_runs: dict[int, int], waiting_until: dict[int, float]) -> None:
    """Wait longer before each retry of a shard whose destination took nothing; forget it once it takes something."""
    for shard in result.outages:
        outage_runs[shard] = outage_runs.get(shard, 0) + 1
        delay = retry_delay(outage_runs[shard])
        waiting_until[shard] = time.monotonic() + delay
        logger.warning("relay shard=%d destination takes nothing; trying the same batch again in %.1fs", shard, delay)
    if result.claimed and not result.outages:
        outage_runs.clear()
        waiting_until.clear()


def _drained(result: DeliveryPass, *, shards: list[int], mark: int | None) -> bool:
    """Return True once nothing committed before the run started is left to relay, and no issue was due."""
    if result.claimed:
        return False
    if mark is not None and logstore.horizon() < mark:
        return False
    for shard in shards:
        cursor = logstore.cursor_of(shard)
        after = logstore.Position(cursor.last_txid, cursor.last_event)
        if logstore.read_past(shard=shard, after=after, limit=1):
            return False
    return True
