"""The Tracker's background work: the spooler and sender threads, batches posted, retried and settled.

    spooler (persistence on): every `spool_window` (100 ms), move the queue to SQLite
    sender: when 100 events or 500 KB wait, send full batches; after a quiet
            `flush_interval`, on flush() or close(), send everything (from the queue,
            or from the spool); retry each batch, settle it, repeat

In sync mode there are no threads: the caller's thread drains the outbox itself.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .client import BATCH_PATH, EventRejectedError, TrackerBadResponseError, TrackerClient, TrackerError
from .events import utc_now_text
from .outbox import Item, Outbox
from .retry import RetryPolicy

log = logging.getLogger("sdk.tracker")  # one logger for the whole Tracker, as in SDK 0.2

ErrorCallback = Callable[[TrackerError, list[dict[str, Any]]], object]


class Sender:
    """Send an Outbox's events to the tracker, one batch at a time, until it has answered for each.

    `deadline` (set by Tracker.close) is when retries stop: what is left then is given
    up (memory) or left in the spool (persistence on).
    """

    def __init__(
        self,
        outbox: Outbox,
        client: TrackerClient,
        *,
        retry: RetryPolicy,
        timeout: float | tuple[float, float],
        flush_interval: float,
        spool_window: float,
        on_error: ErrorCallback | None,
        clock: Callable[[], float],
        sleep: Callable[[float], object] | None,
    ) -> None:
        self._outbox = outbox
        self._client = client
        self._retry = retry
        self._timeout = timeout
        self._flush_interval = flush_interval
        self._spool_window = spool_window
        self._on_error = on_error
        self._clock = clock
        self._sleep = sleep
        self.deadline: float | None = None
        self._stop = threading.Event()
        self._flush_now = False  # flush() asks the sender for partial batches too
        self._sync_lock = threading.RLock()  # sync mode: one drain at a time (RLock: on_error may track)
        self._last_error: TrackerError | None = None
        self._threads: list[threading.Thread] = []

    # Control, from the Tracker.

    def start(self) -> None:
        """Start the sender thread (and the spooler, with persistence on); send what a previous run left."""
        self._threads.append(threading.Thread(target=self._run_sender, name="tracker-sender", daemon=True))
        if self._outbox.spool is not None:
            self._threads.append(threading.Thread(target=self._run_spooler, name="tracker-spooler", daemon=True))
        for thread in self._threads:
            thread.start()
        if self._outbox.pending:  # a previous run left events in the spool: send them now
            self.wake(flush=True)

    def wake(self, *, flush: bool = False) -> None:
        """Wake the sender; with `flush`, it sends partial batches too."""
        if flush:
            self._flush_now = True
        self._outbox.wake_sender.set()

    def drain_now(self) -> None:
        """Send everything that waits, on the caller's thread (sync mode)."""
        with self._sync_lock:
            self.drain()

    def stop(self, timeout: float) -> bool:
        """Ask the threads to send what waits and end; return True if they ended within `timeout` (+ 1 s)."""
        self._stop.set()
        self._outbox.wake_spooler.set()
        self._outbox.wake_sender.set()
        join_until = time.monotonic() + timeout + 1.0  # a request in flight may end just after the deadline
        for thread in self._threads:
            thread.join(max(0.0, join_until - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def give_up_queue(self) -> None:
        """Report what is still in memory at close as failed (persistence off)."""
        items = self._outbox.take_all()
        if items:
            self._give_up(items, self._closed_error())

    # The threads.

    def _run_spooler(self) -> None:
        outbox, stop = self._outbox, self._stop
        while not stop.is_set():
            outbox.wake_spooler.wait()
            stop.wait(self._spool_window)  # gather the events of one window into one transaction
            outbox.wake_spooler.clear()  # before moving: an event queued after the move wakes us again
            try:
                if outbox.move_to_spool():
                    outbox.wake_sender.set()
            except Exception:
                log.exception("tracker: writing the spool failed")
        outbox.move_to_spool()

    def _run_sender(self) -> None:
        pause = self._flush_interval
        wake = self._outbox.wake_sender
        while True:
            woken = wake.wait(pause)
            wake.clear()
            closing = self._stop.is_set()
            # Woken because a full batch waits: send full batches only, and let the rest
            # fill up. After a quiet interval, a flush() or close(): send everything.
            partial = not woken or closing or self._flush_now
            self._flush_now = False
            try:
                drained = self.drain(partial=partial)
            except Exception:
                log.exception("tracker: sending failed")
                drained = False
            if closing:
                return
            # After a batch was left in the spool, wait before the next try (flush and close still wake us).
            pause = self._flush_interval if drained else self._retry.cap

    # Sending.

    def drain(self, *, partial: bool = True) -> bool:
        """Send what waits (only full batches unless `partial`); return False if a batch stays in the spool."""
        outbox = self._outbox
        while True:
            if outbox.spool is not None:
                outbox.move_to_spool()
            if not partial and not outbox.batch_due():
                return True
            if outbox.spool is not None:
                batch = outbox.oldest_spooled()
            elif self.deadline is not None and self._clock() >= self.deadline:
                self.give_up_queue()  # closing, out of time: one report for all, not one per batch
                return True
            else:
                batch = outbox.take_from_queue()
            if not batch:
                return True
            if not self._deliver(batch):
                return False

    def _deliver(self, batch: list[Item]) -> bool:
        """Send one batch until the tracker answers for it; return False if it was left in the spool."""
        started = self._clock()
        retries = 0
        error: TrackerError | None = None
        while True:
            deadline = self.deadline
            if deadline is not None and self._clock() >= deadline:
                return self._give_up(batch, error or self._closed_error())
            try:
                results = self._post(batch)
            except TrackerError as err:
                if not err.retryable:
                    self._outbox.settle(batch, failed=batch)
                    self._report(err, batch)
                    return True
                error = self._last_error = err
                retries += 1
                delay = self._retry.delay(retries, getattr(err, "retry_after", None))
                resume = self._clock() + delay
                deadline = self.deadline
                if resume - started > self._retry.budget or (deadline is not None and resume > deadline):
                    return self._give_up(batch, err)
                self._outbox.count_retried(len(batch))
                log.info("tracker: %s; retry %d of %d events in %.2f s", err, retries, len(batch), delay)
                if not self._wait(delay, resume):
                    return self._give_up(batch, err)
                continue
            self._settle_results(batch, results)
            return True

    def _settle_results(self, batch: list[Item], results: list[dict[str, Any]]) -> None:
        """Count the tracker's per-event answers; hand each rejected event to on_error with its reasons."""
        accepted = duplicates = 0
        rejected: list[tuple[Item, Any]] = []
        for item, result in zip(batch, results, strict=True):
            status = result.get("status")
            if status == "accepted":
                accepted += 1
            elif status == "duplicate":
                duplicates += 1
            else:
                rejected.append((item, result.get("errors")))
        self._outbox.settle(batch, accepted=accepted, duplicates=duplicates, failed=[item for item, _ in rejected])
        for item, errors in rejected:
            reasons = json.dumps(errors, separators=(",", ":"), ensure_ascii=False)
            message = f"the tracker rejected event {item[1]}: {reasons}"
            self._report(EventRejectedError(message, errors=errors, event_id=item[1]), [item])

    def _post(self, batch: list[Item]) -> list[dict[str, Any]]:
        """POST one batch; return the tracker's result for each event, in batch order."""
        sent_at = utc_now_text()
        data = b'{"sent_at":"%s","events":[%s]}' % (sent_at.encode(), b",".join(item[2] for item in batch))
        self._outbox.count_request()
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
        if self.deadline is None:
            return None
        left = max(0.05, self.deadline - self._clock())
        connect, read = self._timeout if isinstance(self._timeout, tuple) else (self._timeout, self._timeout)
        return (min(connect, left), min(read, left))

    def _wait(self, delay: float, resume: float) -> bool:
        """Wait before a retry; return False if close() came and the retry would end past its deadline."""
        if self._sleep is not None:
            self._sleep(delay)
            return True
        if not self._stop.wait(delay):
            return True
        if self.deadline is not None and resume > self.deadline:
            return False
        time.sleep(max(0.0, resume - self._clock()))
        return True

    # Giving up and reporting.

    def _give_up(self, batch: list[Item], error: TrackerError) -> bool:
        """Stop retrying a batch; return True if the sender may go on with the next one."""
        outbox = self._outbox
        if outbox.spool is not None:
            outbox.give_up()
            log.warning("tracker: %s; %d events stay in the spool for later", error, len(outbox.spool))
            return False
        if self.deadline is not None:  # closing, out of time: the rest would fare no better, so one report
            batch = batch + outbox.take_all()
        outbox.give_up(batch)
        self._report(error, batch)
        return True

    def _closed_error(self) -> TrackerError:
        last = f" (last error: {self._last_error})" if self._last_error else ""
        return TrackerError(f"the tracker closed before these events were sent{last}")

    def _report(self, error: TrackerError, items: list[Item]) -> None:
        """Hand undeliverable events to on_error (or to the log without one)."""
        if self._on_error is None:
            log.warning("tracker: %d events will not be delivered: %s", len(items), error)
            return
        try:
            self._on_error(error, [json.loads(item[2]) for item in items])
        except Exception:  # the callback's bug must not stop the sender
            log.exception("tracker: on_error raised")
