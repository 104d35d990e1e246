"""The background tracker: track_* checks and queues an event in microseconds; a thread batches, retries and spools.

Pipeline, and which thread does what:

    caller: track_*()  check the event, encode it once, append to a bounded deque
    spooler (persistence on): every `spool_window` (100 ms), move the deque to SQLite
    sender: when 100 events or 500 KB wait, send full batches; after a quiet
            `flush_interval`, on flush() or close(), send everything (from the deque,
            or from the spool); retry each batch, settle it, repeat

An event leaves the SDK's care exactly once, counted as sent (accepted or
duplicate), failed (rejected by the tracker, or given up) or dropped (overflow).
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Self

from .client import (
    BATCH_PATH,
    DEFAULT_TIMEOUT,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    EventRejectedError,
    TrackerBadResponseError,
    TrackerClient,
    TrackerError,
)
from .retry import RetryPolicy
from .spool import Spool
from .validation import MAX_CLOCK_SKEW, InvalidEventError, encode_event, event_errors, format_timestamp

log = logging.getLogger(__name__)

DROP_NEWEST = "drop_newest"
DROP_OLDEST = "drop_oldest"
OVERFLOW_POLICIES = (DROP_NEWEST, DROP_OLDEST)

# (spool row id or None, event_id, the event as JSON): the shape of every queued event.
_Item = tuple[int | None, str, bytes]
ErrorCallback = Callable[[TrackerError, list[dict[str, Any]]], object]


_second_text: tuple[int, str] = (0, "")  # (a Unix second, its "YYYY-MM-DDTHH:MM:SS" in UTC)


def _utc_now_text() -> str:
    """Return now as RFC 3339 UTC with milliseconds and Z; formats each second once, not each call."""
    global _second_text
    now = time.time()
    second = int(now)
    cached_second, text = _second_text
    if cached_second != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second_text = (second, text)  # one rebinding: safe to race, both threads write the same
    return f"{text}.{int((now - second) * 1000):03d}Z"


def _new_uuid4() -> str:
    """Return a random (version 4) UUID string; three times faster than str(uuid.uuid4())."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


@dataclass(frozen=True)
class TrackerStats:
    """Counters of a Tracker, read at one instant with `Tracker.stats()`.

    queued + restored = sent + failed + dropped + pending, at every instant.
    """

    queued: int  # valid events given to track_*, kept or dropped
    restored: int  # events found in the spool at start, left by an earlier run
    sent: int  # acknowledged by the tracker: accepted + duplicates
    accepted: int
    duplicates: int  # the tracker already had them (a retry, a replayed receipt): not counted twice
    failed: int  # will never be delivered: rejected, or given up (reported to on_error)
    rejected: int  # of failed: refused by the tracker, with its reasons
    dropped: int  # discarded by the overflow policy, or tracked after close (never sent)
    retried: int  # event sends repeated after a network error, 429 or 5xx
    requests: int  # HTTP requests made
    pending: int  # waiting in memory or in the spool, or in flight


class Tracker:
    """Track player events without blocking the game: queued in memory, sent in the background.

    `track_install`, `track_purchase` and `track` check the event against the
    tracker's rules (raising InvalidEventError naming every bad field), then queue
    it and return its event_id, or None if the overflow policy dropped it. They
    never wait on the network.

    Options (all keyword-only):

    - `api_key`, `base_url`: default to TRACKER_API_KEY and TRACKER_URL.
    - `persist`: path of a SQLite spool file. Queued events are written there within
      `spool_window` seconds (default 0.1) and deleted only once the tracker has
      answered for them, so a crash loses at most that window and the next start
      sends the rest. Without it, events live in memory only.
    - `sync`: send on the caller's thread before returning (scripts, tests); no threads.
    - `on_error(error, events)`: called with the events that will never be delivered
      and why: EventRejectedError (the tracker's reasons in `error.errors`) for each
      rejected event, the last TrackerError for a batch given up. It runs on the
      sender thread (the caller's in sync mode): keep it short.
    - `batch_size` (100), `batch_bytes` (500 KB), `flush_interval` (1 s): a batch goes
      when that many events or bytes wait, or after that long without a full batch.
    - `max_queue_size` (10,000 in memory), `max_spool_events` (100,000 on disk) and
      `overflow`: DROP_NEWEST (default: the new event is not kept) or DROP_OLDEST
      (the oldest waiting event makes room). Either way it is counted in `dropped`.
    - `retry`: a RetryPolicy (backoff base 0.5 s, cap 30 s, budget 60 s per batch).
    - `timeout`: (connect, read) seconds per request; `gzip`: compress bodies (on).
    - `close_timeout` (5 s): how long close(), and interpreter exit, may take.
    - `validate`: check events locally (on); off sends what the SDK does not know
      yet, e.g. a new event type, and leaves the checking to the tracker.
    - `clock`, `sleep`: monotonic clock and retry wait, replaceable in tests.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        persist: str | os.PathLike[str] | None = None,
        sync: bool = False,
        on_error: ErrorCallback | None = None,
        batch_size: int = 100,
        batch_bytes: int = 500 * 1024,
        flush_interval: float = 1.0,
        max_queue_size: int = 10_000,
        max_spool_events: int = 100_000,
        overflow: str = DROP_NEWEST,
        spool_window: float = 0.1,
        retry: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        gzip: bool = True,
        close_timeout: float = 5.0,
        validate: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_EVENTS:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_EVENTS}")
        if not 1 <= batch_bytes <= MAX_BATCH_BYTES:
            raise ValueError(f"batch_bytes must be between 1 and {MAX_BATCH_BYTES}")
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}")
        if max_queue_size < 1 or max_spool_events < 1:
            raise ValueError("max_queue_size and max_spool_events must be at least 1")
        self._client = TrackerClient(base_url=base_url, api_key=api_key, timeout=timeout, gzip=gzip)
        self.base_url = self._client.base_url
        self._sync = sync
        self._on_error = on_error
        self._batch_size = batch_size
        self._batch_bytes = batch_bytes
        self._flush_interval = flush_interval
        self._max_queue_size = max_queue_size
        self._drop_oldest = overflow == DROP_OLDEST
        self._spool_window = spool_window
        self._retry = retry or RetryPolicy()
        self._timeout = timeout
        self._close_timeout = close_timeout
        self._validate = validate
        self._clock = clock
        self._sleep = sleep

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # pending went down, or a batch was given up
        self._send_lock = threading.RLock()  # sync mode: one drain at a time (RLock: on_error may track)
        self._queue: collections.deque[_Item] = collections.deque()
        self._queue_bytes = 0
        self._closed = False
        self._deadline: float | None = None  # set by close(): retries stop there
        self._stop = threading.Event()
        self._wake_sender = threading.Event()
        self._wake_spooler = threading.Event()
        self._spool_move_lock = threading.Lock()  # keeps spool order = queue order

        self._queued = self._restored = self._accepted = self._duplicates = 0
        self._failed = self._rejected = self._dropped = self._retried = self._requests = 0
        self._giveups = 0
        self._pending = 0
        self._flush_now = False  # flush() asks the sender for partial batches too
        self._last_error: TrackerError | None = None

        self._spool: Spool | None = None
        if persist is not None:
            self._spool = Spool(persist, max_events=max_spool_events)
            self._restored = self._pending = len(self._spool)

        self._threads: list[threading.Thread] = []
        if not sync:
            self._threads.append(threading.Thread(target=self._run_sender, name="tracker-sender", daemon=True))
            if self._spool is not None:
                self._threads.append(threading.Thread(target=self._run_spooler, name="tracker-spooler", daemon=True))
            for thread in self._threads:
                thread.start()
            if self._pending:  # a previous run left events in the spool: send them now
                self._flush_now = True
                self._wake_sender.set()
            # Daemon threads die silently at exit; this sends what waits, within close_timeout.
            atexit.register(self._close_at_exit)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Tracking: the caller's thread.

    def track(
        self,
        event_type: str,
        player_id: str,
        *,
        occurred_at: datetime | str | None = None,
        properties: Mapping[str, Any] | None = None,
        platform: str | None = None,
        app_version: str | None = None,
        session_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        event_id: str | uuid.UUID | None = None,
    ) -> str | None:
        """Check and queue an event; return its event_id, or None if the overflow policy dropped it.

        `occurred_at` defaults to now (an aware datetime or an RFC 3339 string);
        `event_id` defaults to a new UUID, fixed here so that every retry carries it.
        Raise InvalidEventError, naming every bad field, if the tracker would refuse it.
        """
        event, errors, checked = self._build(
            event_type, player_id, occurred_at, properties, platform, app_version, session_id, context, event_id
        )
        return self._submit(event, errors, checked)

    def track_install(
        self,
        player_id: str,
        *,
        store: str | None = None,
        campaign: str | None = None,
        country: str | None = None,
        device_model: str | None = None,
        os_version: str | None = None,
        properties: Mapping[str, Any] | None = None,
        **common: Any,
    ) -> str | None:
        """Queue an `install`; `common` takes the keyword arguments of `track`."""
        merged = dict(properties) if properties else {}
        if store is not None:
            merged["store"] = store
        if campaign is not None:
            merged["campaign"] = campaign
        if country is not None:
            merged["country"] = country
        if device_model is not None:
            merged["device_model"] = device_model
        if os_version is not None:
            merged["os_version"] = os_version
        return self.track("install", player_id, properties=merged, **common)

    def track_purchase(
        self,
        player_id: str,
        *,
        transaction_id: str,
        product_id: str,
        price: Decimal | str | int,
        currency: str,
        quantity: int = 1,
        store: str | None = None,
        properties: Mapping[str, Any] | None = None,
        occurred_at: datetime | str | None = None,
        platform: str | None = None,
        app_version: str | None = None,
        session_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        event_id: str | uuid.UUID | None = None,
    ) -> str | None:
        """Queue a `purchase`; the other keyword arguments are those of `track`.

        The price goes out as a decimal string; a float is refused because it cannot
        hold 4.99 exactly, and revenue must add up to the cent.
        """
        merged = dict(properties) if properties else {}
        merged["transaction_id"] = transaction_id
        merged["product_id"] = product_id
        merged["price"] = format(price, "f") if isinstance(price, Decimal) and price.is_finite() else price
        merged["currency"] = currency
        merged["quantity"] = quantity
        if store is not None:
            merged["store"] = store
        event, errors, checked = self._build(
            "purchase", player_id, occurred_at, merged, platform, app_version, session_id, context, event_id
        )
        if isinstance(price, float):
            errors["properties.price"] = ["must be a Decimal or a string such as '4.99', not a float (inexact)"]
        return self._submit(event, errors, checked)

    def _build(
        self,
        event_type: str,
        player_id: str,
        occurred_at: datetime | str | None,
        properties: Mapping[str, Any] | None,
        platform: str | None,
        app_version: str | None,
        session_id: str | None,
        context: Mapping[str, Any] | None,
        event_id: str | uuid.UUID | None,
    ) -> tuple[dict[str, Any], dict[str, list[str]], tuple[str, ...]]:
        """Return the event as sent, the errors found while building it, and the fields already checked."""
        errors: dict[str, list[str]] = {}
        if event_id is None:
            event_id = _new_uuid4()
            checked: tuple[str, ...] = ("event_id", "occurred_at")
        else:
            try:
                event_id = str(event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(event_id))
            except (TypeError, ValueError, AttributeError):
                errors["event_id"] = [f"must be a UUID, not {event_id!r}"]
                event_id = str(event_id)
            checked = ("event_id", "occurred_at")
        if occurred_at is None:
            occurred = _utc_now_text()
        elif isinstance(occurred_at, datetime):
            if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
                errors["occurred_at"] = ["has no time zone; use an aware datetime"]
                occurred = occurred_at.isoformat()
            else:
                if occurred_at - datetime.now(UTC) > MAX_CLOCK_SKEW:
                    errors["occurred_at"] = ["lies more than 24 h ahead of this device's clock"]
                occurred = format_timestamp(occurred_at)
        else:
            occurred = occurred_at
            checked = ("event_id",)
        event: dict[str, Any] = {
            "event_id": event_id,
            "event_type": event_type,
            "player_id": player_id,
            "occurred_at": occurred,
        }
        if platform is not None:
            event["platform"] = platform
        if app_version is not None:
            event["app_version"] = app_version
        if session_id is not None:
            event["session_id"] = session_id
        if properties is not None:
            event["properties"] = properties
        if context is not None:
            event["context"] = context
        return event, errors, checked

    def _submit(self, event: dict[str, Any], errors: dict[str, list[str]], checked: tuple[str, ...]) -> str | None:
        if self._validate:
            errors.update(event_errors(event, checked=checked))
            if errors:
                raise InvalidEventError(errors)
        body = encode_event(event)  # once, here: the sender and the spool only move bytes
        event_id = event["event_id"]
        if not self._enqueue(event_id, body):
            return None
        if self._sync:
            with self._send_lock:
                self._drain()
        return event_id

    def _enqueue(self, event_id: str, body: bytes) -> bool:
        """Append to the queue; return False if the overflow policy dropped this event."""
        with self._lock:
            self._queued += 1
            if self._closed:
                self._dropped += 1
                return False
            queue = self._queue
            if len(queue) >= self._max_queue_size:
                self._dropped += 1
                if self._dropped == 1:
                    log.warning("tracker queue is full (%d events): dropping events", self._max_queue_size)
                if not self._drop_oldest:
                    return False
                self._queue_bytes -= len(queue.popleft()[2])
                self._pending -= 1
            queue.append((None, event_id, body))
            self._queue_bytes += len(body)
            self._pending += 1
            waiting = len(queue)
            full = waiting >= self._batch_size or self._queue_bytes >= self._batch_bytes
        # Wake a thread only on the transitions that matter, not on every event.
        if self._spool is not None:
            if waiting == 1:
                self._wake_spooler.set()
        elif full and not self._wake_sender.is_set():
            self._wake_sender.set()
        return True

    # Flushing and closing: the caller's thread, blocking on purpose.

    def flush(self, timeout: float | None = None) -> bool:
        """Block until the tracker has answered for every waiting event; return True if it has.

        Returns False after `timeout` seconds, or as soon as a batch had to be given
        up (reported to on_error; with persistence on, kept in the spool for later).
        Events the tracker rejected count as answered.
        """
        with self._lock:
            giveups = self._giveups
        if self._closed:
            return self.pending == 0
        if self._sync:
            with self._send_lock:
                self._drain()
        else:
            if self._spool is not None:
                self._move_to_spool()  # no need to wait for the spool window
            self._flush_now = True
            self._wake_sender.set()
            with self._changed:
                self._changed.wait_for(lambda: self._pending == 0 or self._giveups != giveups, timeout)
        with self._lock:
            return self._pending == 0 and self._giveups == giveups

    def close(self, timeout: float | None = None) -> bool:
        """Send what waits within `timeout` seconds (default close_timeout), then stop.

        Return True if the tracker answered for every event, as flush() does. What
        could not be sent in time stays in the spool with persistence on; without
        it, it is reported to on_error and counted as failed. Events tracked after
        close are dropped.
        """
        with self._lock:
            if self._closed:
                return self._pending == 0
            self._closed = True
            giveups = self._giveups
        timeout = self._close_timeout if timeout is None else timeout
        self._deadline = self._clock() + timeout
        if self._sync:
            with self._send_lock:
                self._drain()
        else:
            atexit.unregister(self._close_at_exit)
            self._stop.set()
            self._wake_spooler.set()
            self._wake_sender.set()
            join_until = time.monotonic() + timeout + 1.0  # a request in flight may end just after the deadline
            for thread in self._threads:
                thread.join(max(0.0, join_until - time.monotonic()))
        if any(thread.is_alive() for thread in self._threads):
            log.warning("tracker sender still busy after %.1f s; leaving it behind", timeout)
            if self._spool is not None:
                self._move_to_spool()
            else:
                self._give_up_queue()
            return False
        if self._spool is not None:
            self._move_to_spool()
            self._spool.close()
        else:
            self._give_up_queue()
        self._client.close()
        with self._lock:
            return self._pending == 0 and self._giveups == giveups

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except Exception:  # an exit hook must not raise
            log.exception("tracker: closing at exit failed")

    # Counters.

    def stats(self) -> TrackerStats:
        """Return the counters at this instant."""
        with self._lock:
            return TrackerStats(
                queued=self._queued,
                restored=self._restored,
                sent=self._accepted + self._duplicates,
                accepted=self._accepted,
                duplicates=self._duplicates,
                failed=self._failed,
                rejected=self._rejected,
                dropped=self._dropped,
                retried=self._retried,
                requests=self._requests,
                pending=self._pending,
            )

    @property
    def pending(self) -> int:
        """Return how many events wait in memory or in the spool, or are in flight."""
        return self._pending

    # The background threads.

    def _run_spooler(self) -> None:
        stop = self._stop
        while not stop.is_set():
            self._wake_spooler.wait()
            stop.wait(self._spool_window)  # gather the events of one window into one transaction
            self._wake_spooler.clear()  # before moving: an event queued after the move wakes us again
            try:
                if self._move_to_spool():
                    self._wake_sender.set()
            except Exception:
                log.exception("tracker: writing the spool failed")
        self._move_to_spool()

    def _run_sender(self) -> None:
        pause = self._flush_interval
        while True:
            woken = self._wake_sender.wait(pause)
            self._wake_sender.clear()
            closing = self._stop.is_set()
            # Woken because a full batch waits: send full batches only, and let the rest
            # fill up. After a quiet interval, a flush() or close(): send everything.
            partial = not woken or closing or self._flush_now
            self._flush_now = False
            try:
                drained = self._drain(partial=partial)
            except Exception:
                log.exception("tracker: sending failed")
                drained = False
            if closing:
                return
            # After a batch was left in the spool, wait before the next try (flush and close still wake us).
            pause = self._flush_interval if drained else self._retry.cap

    def _move_to_spool(self) -> bool:
        """Move the in-memory queue into the spool; return True if a batch is now due."""
        spool = self._spool
        assert spool is not None
        with self._spool_move_lock:
            with self._lock:
                items = list(self._queue)
                self._queue.clear()
                self._queue_bytes = 0
            if items:
                dropped = spool.add(((event_id, body) for _, event_id, body in items), drop_oldest=self._drop_oldest)
                if dropped:
                    with self._changed:
                        self._dropped += dropped
                        self._pending -= dropped
                        self._changed.notify_all()
                    log.warning("tracker spool is full (%d events): dropped %d", spool.max_events, dropped)
        return len(spool) >= self._batch_size or spool.bytes >= self._batch_bytes

    def _drain(self, *, partial: bool = True) -> bool:
        """Send what waits (only full batches unless `partial`); return False if a batch stays in the spool."""
        while True:
            if self._spool is not None:
                self._move_to_spool()
            if not partial and not self._batch_due():
                return True
            if self._spool is not None:
                batch: list[_Item] = list(self._spool.oldest(self._batch_size, self._batch_bytes))
            elif self._deadline is not None and self._clock() >= self._deadline:
                self._give_up_queue()  # closing, out of time: one report for all, not one per batch
                return True
            else:
                batch = self._take_from_queue()
            if not batch:
                return True
            if not self._deliver(batch):
                return False

    def _batch_due(self) -> bool:
        """Return True if a full batch waits (by count or by size)."""
        if self._spool is not None:
            return len(self._spool) >= self._batch_size or self._spool.bytes >= self._batch_bytes
        with self._lock:
            return len(self._queue) >= self._batch_size or self._queue_bytes >= self._batch_bytes

    def _take_from_queue(self) -> list[_Item]:
        batch: list[_Item] = []
        size = 0
        with self._lock:
            queue = self._queue
            while queue and len(batch) < self._batch_size:
                item_size = len(queue[0][2]) + 1
                if batch and size + item_size > self._batch_bytes:
                    break
                batch.append(queue.popleft())
                size += item_size
            self._queue_bytes -= size - len(batch)
        return batch

    def _deliver(self, batch: list[_Item]) -> bool:
        """Send one batch until the tracker answers for it; return False if it was left in the spool."""
        started = self._clock()
        retries = 0
        error: TrackerError | None = None
        while True:
            deadline = self._deadline
            if deadline is not None and self._clock() >= deadline:
                return self._give_up(batch, error or self._closed_error())
            try:
                results = self._post(batch)
            except TrackerError as err:
                if not err.retryable:
                    self._settle(batch, failed=batch, error=err)
                    return True
                error = self._last_error = err
                retries += 1
                delay = self._retry.delay(retries, getattr(err, "retry_after", None))
                resume = self._clock() + delay
                deadline = self._deadline
                if resume - started > self._retry.budget or (deadline is not None and resume > deadline):
                    return self._give_up(batch, err)
                with self._lock:
                    self._retried += len(batch)
                log.info("tracker: %s; retry %d of %d events in %.2f s", err, retries, len(batch), delay)
                if not self._wait(delay, resume):
                    return self._give_up(batch, err)
                continue
            accepted = duplicates = 0
            rejected: list[tuple[_Item, Any]] = []
            for item, result in zip(batch, results, strict=True):
                status = result.get("status")
                if status == "accepted":
                    accepted += 1
                elif status == "duplicate":
                    duplicates += 1
                else:
                    rejected.append((item, result.get("errors")))
            self._settle(batch, accepted=accepted, duplicates=duplicates, failed=[item for item, _ in rejected])
            for item, errors in rejected:
                reasons = json.dumps(errors, separators=(",", ":"), ensure_ascii=False)
                self._report(
                    EventRejectedError(
                        f"the tracker rejected event {item[1]}: {reasons}", errors=errors, event_id=item[1]
                    ),
                    [item],
                )
            return True

    def _post(self, batch: list[_Item]) -> list[dict[str, Any]]:
        """POST one batch; return the tracker's result for each event, in batch order."""
        sent_at = _utc_now_text()
        data = b'{"sent_at":"%s","events":[%s]}' % (sent_at.encode(), b",".join(item[2] for item in batch))
        with self._lock:
            self._requests += 1
        response = self._client._post_bytes(BATCH_PATH, data, timeout=self._attempt_timeout())
        try:
            body = response.json()
        except ValueError:
            body = None
        results = body.get("results") if isinstance(body, dict) else None
        ordered: list[Any] = [None] * len(batch)
        if isinstance(results, list):
            for result in results:
                index = result.get("index") if isinstance(result, dict) else None
                if isinstance(index, int) and 0 <= index < len(batch):
                    ordered[index] = result
        if any(result is None for result in ordered):
            raise TrackerBadResponseError(
                f"the tracker answered {response.status_code} without a result for every event "
                f"(a captive portal or a proxy?): {response.text[:200]!r}",
                status_code=response.status_code,
                body=body,
            )
        return ordered

    def _attempt_timeout(self) -> float | tuple[float, float] | None:
        """Return the request timeout, cut to what is left before close()'s deadline."""
        if self._deadline is None:
            return None
        left = max(0.05, self._deadline - self._clock())
        connect, read = self._timeout if isinstance(self._timeout, tuple) else (self._timeout, self._timeout)
        return (min(connect, left), min(read, left))

    def _wait(self, delay: float, resume: float) -> bool:
        """Wait before a retry; return False if close() came and the retry would end past its deadline."""
        if self._sleep is not None:
            self._sleep(delay)
            return True
        if not self._stop.wait(delay):
            return True
        if self._deadline is not None and resume > self._deadline:
            return False
        time.sleep(max(0.0, resume - self._clock()))
        return True

    def _settle(
        self,
        batch: list[_Item],
        *,
        accepted: int = 0,
        duplicates: int = 0,
        failed: Sequence[_Item] = (),
        error: TrackerError | None = None,
    ) -> None:
        """Record the tracker's answer for a batch: the spool forgets it, then the counters move."""
        if self._spool is not None:
            self._spool.remove(batch)
        with self._changed:
            self._accepted += accepted
            self._duplicates += duplicates
            self._failed += len(failed)
            self._rejected += len(failed)
            self._pending -= len(batch)
            self._changed.notify_all()
        if error is not None:
            self._report(error, list(failed))

    def _give_up(self, batch: list[_Item], error: TrackerError) -> bool:
        """Stop retrying a batch; return True if the sender may go on with the next one."""
        if self._spool is not None:
            with self._changed:
                self._giveups += 1
                self._changed.notify_all()
            log.warning("tracker: %s; %d events stay in the spool for later", error, len(self._spool))
            return False
        if self._deadline is not None:  # closing, out of time: the rest would fare no better, so one report
            with self._lock:
                batch = batch + list(self._queue)
                self._queue.clear()
                self._queue_bytes = 0
        with self._changed:
            self._giveups += 1
            self._failed += len(batch)
            self._pending -= len(batch)
            self._changed.notify_all()
        self._report(error, batch)
        return True

    def _give_up_queue(self) -> None:
        """Report what is still in memory at close as failed (persistence off)."""
        with self._lock:
            items = list(self._queue)
            self._queue.clear()
            self._queue_bytes = 0
        if items:
            self._give_up(items, self._closed_error())

    def _closed_error(self) -> TrackerError:
        last = f" (last error: {self._last_error})" if self._last_error else ""
        return TrackerError(f"the tracker closed before these events were sent{last}")

    def _report(self, error: TrackerError, items: list[_Item]) -> None:
        """Hand undeliverable events to on_error (or to the log without one)."""
        if self._on_error is None:
            log.warning("tracker: %d events will not be delivered: %s", len(items), error)
            return
        try:
            self._on_error(error, [json.loads(item[2]) for item in items])
        except Exception:  # the callback's bug must not stop the sender
            log.exception("tracker: on_error raised")
