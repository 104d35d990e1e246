"""The delivery worker loop behind `manage.py deliver_events`."""

import logging
import signal
import threading

from django.db import close_old_connections, connection

from events_app.delivery import heartbeat
from events_app.delivery.engine import DeliveryCounts, deliver_due

logger = logging.getLogger(__name__)


def run_worker(*, once: bool, idle_seconds: float = 1.0, stop: threading.Event | None = None) -> DeliveryCounts:
    """Deliver due events batch after batch; return the totals.

    With `once`, return when nothing is due; otherwise wait `idle_seconds` between empty
    polls until SIGTERM or SIGINT, which let the current batch finish first.
    """
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    totals = DeliveryCounts()
    while not stop.is_set():
        # Drop a connection the database closed or that outlived CONN_MAX_AGE, as Django
        # does between requests; never inside a transaction (a test's, for one).
        if not connection.in_atomic_block:
            close_old_connections()
        heartbeat.beat(sender=heartbeat.WORKER)  # "worker last seen" in the admin, idle or not
        counts = deliver_due()
        totals.add(counts)
        if counts.claimed == 0:
            if once:
                break
            stop.wait(idle_seconds)
    logger.info(
        "worker stopped delivered=%d failed=%d dead=%d calls=%d",
        totals.delivered,
        totals.failed,
        totals.dead,
        totals.calls,
    )
    return totals
