"""The per-process forwarder: batches committed events across requests and sends them from a background thread.

Requests store their rows already leased to this process's forwarder (`lease`),
and hand them over after the commit (`submit`, from `transaction.on_commit`). One
thread per process sends a call as soon as it is full (the destination's record or
byte limit) or once the oldest event has waited EVENTS_FORWARD_MAX_DELAY_MS, so
calls and records scale with events, not with requests, and no request ever waits
on the destination. A process that dies holding events loses nothing: their rows
keep the lease, and the worker sends them when it runs out.
"""

import atexit
import logging
import math
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from django.db import close_old_connections

from events_app import conf
from events_app.delivery import breaker, engine
from events_app.delivery.destinations.base import Destination, get_destination
from events_app.delivery.policies import forwarder_policy

logger = logging.getLogger(__name__)

# How long a stopping process (SIGTERM, end of a command) spends sending what it holds;
# the rest keeps its lease for the worker. Within gunicorn's default graceful timeout.
STOP_SECONDS = 5.0


@dataclass(frozen=True)
class Lease:
    """The claim a request stores its rows under when this process's forwarder will send them."""

    token: uuid.UUID
    until: datetime


@dataclass
class Outbound:
    """A committed row waiting in the forwarder: what delivery needs, without reading it back."""

    pk: int
    payload: dict
    claimed_until: datetime
    size: int  # the line's bytes, near enough (emitted_at is stamped when it is sent)
    attempts: int = 0


def outbound(*, pk: int, payload: dict, claimed_until: datetime) -> Outbound:
    """Return the forwarder's copy of a row just stored."""
    # +40: the `"emitted_at":"...Z",` stamp added when the line is encoded.
    return Outbound(pk=pk, payload=payload, claimed_until=claimed_until, size=len(orjson.dumps(payload)) + 40)


class Forwarder:
    """A queue of committed events and the thread that sends them in batches.

    `threaded=False` (tests) starts no thread: `flush()` sends what is queued, in
    the caller's thread and database connection.
    """

    def __init__(self, *, threaded: bool = True, destination: Destination | None = None):
        self.token = uuid.uuid4()  # every row this process's forwarder holds carries it
        self._threaded = threaded
        self._destination = destination
        self._queue: deque[tuple[float, Outbound]] = deque()  # (monotonic time queued, row)
        self._bytes = 0
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.totals = engine.DeliveryCounts()

    @property
    def queued(self) -> int:
        """Return how many events wait to be sent."""
        return len(self._queue)

    def lease(self, *, received_at: datetime) -> Lease | None:
        """Return the lease to store a request's rows under, or None if the queue is full (the worker sends them)."""
        if self._stopping or len(self._queue) >= conf.forward_max_queued():
            return None
        return Lease(token=self.token, until=received_at + timedelta(seconds=conf.claim_lease_seconds()))

    def submit(self, items: list[Outbound]) -> None:
        """Queue committed rows stored under this forwarder's lease; the thread sends them."""
        if not items:
            return
        now = time.monotonic()
        with self._condition:
            was_empty = not self._queue
            self._queue.extend((now, item) for item in items)
            self._bytes += sum(item.size for item in items)
            # Wake the thread only to start the delay, or to send a full call early,
            # not on every request.
            if was_empty or self._full():
                self._condition.notify()
        if self._threaded and self._thread is None:
            self._start()

    def flush(self) -> engine.DeliveryCounts:
        """Send everything queued now, in this thread; return the counts."""
        counts = engine.DeliveryCounts()
        while batch := self._take():
            counts.add(self._send(batch))
        return counts

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Send what is queued (within `timeout`) and stop the thread."""
        with self._condition:
            self._stopping = True
            self._condition.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _start(self) -> None:
        with self._condition:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="events-forwarder", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                with self._condition:
                    while not self._queue and not self._stopping:
                        self._condition.wait()
                    if not self._queue:
                        return
                    # Wait for more to batch with, until a call is full or the oldest has waited long enough.
                    deadline = self._queue[0][0] + self._max_delay()
                    while not self._stopping and not self._full() and (left := deadline - time.monotonic()) > 0:
                        self._condition.wait(left)
                batch = self._take()
                if batch:
                    self.totals.add(self._send(batch))
            except Exception:  # the thread must outlive any one batch; held rows keep their lease
                logger.exception("forwarder loop failed; carrying on")
                time.sleep(1.0)  # a fault that persists must not spin a core

    def _max_delay(self) -> float:
        # Well inside half a lease, the point after which no call may start for a row.
        return min(conf.forward_max_delay_seconds(), conf.claim_lease_seconds() / 4)

    def _limits(self):
        return self.destination().limits

    def destination(self) -> Destination:
        return self._destination or get_destination()

    def _full(self) -> bool:
        limits = self._limits()
        return self._bytes >= limits.max_call_bytes or self._records(len(self._queue), self._bytes) >= (
            limits.max_call_records
        )

    def _records(self, events: int, size: int) -> int:
        # Packed records, as delivery will make them; a keyed destination (Kinesis) may
        # need one per event.
        if self.destination().keyed:
            return events
        return min(events, math.ceil(size / max(1, conf.record_target_bytes())))

    def _take(self) -> list[Outbound]:
        """Return the queued rows that fit one call, oldest first, and remove them from the queue."""
        limits = self._limits()
        batch: list[Outbound] = []
        size = 0
        with self._condition:
            while self._queue:
                item = self._queue[0][1]
                if batch and (
                    size + item.size > limits.max_call_bytes
                    or self._records(len(batch) + 1, size + item.size) > limits.max_call_records
                ):
                    break
                self._queue.popleft()
                batch.append(item)
                size += item.size
            self._bytes -= size
        return batch

    def _send(self, batch: list[Outbound]) -> engine.DeliveryCounts:
        """Send one batch; whatever fails, the rows stay leased or are released to the worker, never lost."""
        try:
            if self._threaded:
                close_old_connections()  # as Django does between requests
            if not breaker.forwarding_allowed():
                # The destination is failing: let the worker, with its backoff, take these now.
                return engine.release_claimed(events=batch, claim_token=self.token)
            return engine.deliver_claimed(
                events=batch,
                claim_token=self.token,
                policy=forwarder_policy(),
                claimed_until=min(item.claimed_until for item in batch),
                destination=self._destination,
            )
        except Exception:
            logger.exception("forwarding failed; the worker will send these %d events after their lease", len(batch))
            return engine.DeliveryCounts()


_lock = threading.Lock()
_process_forwarder: Forwarder | None = None


def process_forwarder() -> Forwarder:
    """Return this process's forwarder, made on first use (after a fork, the child makes its own)."""
    global _process_forwarder
    if _process_forwarder is None:
        with _lock:
            if _process_forwarder is None:
                _process_forwarder = Forwarder()
    return _process_forwarder


def _forget_after_fork() -> None:
    global _process_forwarder, _lock
    # The parent's thread does not exist in the child; neither may its queue be sent twice.
    _process_forwarder = None
    _lock = threading.Lock()


def warm_up() -> None:
    """Load the destination and its client now (a server process's start), when forwarding is on.

    Importing boto3 and building a client take about a second of CPU; paid in the
    first request instead, they stall every request the process holds meanwhile.
    """
    if conf.inline_delivery():
        get_destination().open(policy=forwarder_policy())


def stop_process_forwarder() -> None:
    """Send what this process's forwarder holds (within STOP_SECONDS) and stop its thread; for a process's exit."""
    if _process_forwarder is not None and _process_forwarder._threaded:
        _process_forwarder.stop()


os.register_at_fork(after_in_child=_forget_after_fork)
# Any process that ingested (a server other than gunicorn, a command) flushes at exit too.
atexit.register(stop_process_forwarder)
