"""The Tracker's background work: the spooler and sender threads, batches posted, retried and settled.

    spooler (persistence on): every `spool_window` (100 ms), move the queue to SQLite
    sender: when 100 events or 500 KB wait, send full batches; after a quiet
            `flush_interval`, on flush() or close(), send everything (from the queue,
            or from the spool); retry each batch, settle it, repeat

In sync mode there are no threads: the caller's thread drains the outbox itself.

Poison events. A 5xx answer is the one failure an event's content can cause (a bug
the tracker has with that event), and the oldest events go first, so one such event
retried forever would hold back every later one. So:

- a batch answered 5xx is split in two halves, sent one after the other: the good
  events get through and the bad one ends up alone;
- an event answered 5xx alone becomes a suspect: sent on its own, after the other
  waiting events, never again inside a batch;
- a later 5xx answer to a suspect is a strike if, since its previous failure, the
  tracker acknowledged at least one request and failed none that held other events:
  the tracker works, but not for this event;
- the 5th strike (POISON_STRIKES) sets the event aside: counted in stats().set_aside
  (and failed), reported to on_error as EventSetAsideError, moved to the spool's
  set_aside_event table (persistence on), never sent again;
- an answer (2xx or 4xx) clears the suspicion.

In an outage every request fails, so no strike is ever counted and nothing is set
aside: the batches are retried (kept in the spool) as before, and when a retry budget
runs out the suspects without a strike go back into batches. Backoff counts failed
requests in a row across parts and batches; an acknowledgement resets it. The retry
budget runs from the first failure since the last acknowledgement, or the last split.

A refused key. A 401 or 403 refuses the API key, not the events (a key rotated or
revoked on the server): the events stay where they are (the spool, or back at the head
of the queue), on_error hears of it (TrackerAuthError), and the sender holds off for
RetryPolicy.auth_delay (30 s, doubling up to 10 min) before it asks again; flush() and
close() ask at once. Only close() without a spool gives them up, as it does any event
still in memory.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .client import (
    BATCH_PATH,
    EventRejectedError,
    EventSetAsideError,
    TrackerAuthError,
    TrackerBadResponseError,
    TrackerClient,
    TrackerError,
    TrackerUnavailableError,
)
from .events import utc_now_text
from .outbox import Item, Outbox
from .retry import RetryPolicy

log = logging.getLogger("playertrack.tracker")  # one logger for the whole Tracker

ErrorCallback = Callable[[TrackerError, list[dict[str, Any]]], object]

# A suspect answered 5xx alone this many more times, each while the tracker took the
# other events, is set aside.
POISON_STRIKES = 5


@dataclass
class _Suspect:
    """An event the tracker answered 5xx alone: sent on its own, after the others, until it is answered or set aside."""

    item: Item
    acks: int  # the sender's acknowledged requests at its last failure
    failures_of_others: int  # the sender's failed requests holding other events at its last failure
    attempts: int = 1  # sent alone and answered 5xx
    strikes: int = 0  # of those, answered 5xx while the tracker took everything else


def _is_server_error(error: TrackerError) -> bool:
    """Return True for a 5xx answer: the one failure an event's content can cause (429 and network errors cannot)."""
    return isinstance(error, TrackerUnavailableError) and (error.status_code or 0) >= 500


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
        # Backoff: failed requests in a row, since when (the budget's start).
        self._failures = 0
        self._failing_since = 0.0
        # Poison detection: requests acknowledged, failed requests holding non-suspects, the suspects.
        self._acks = 0
        self._failures_of_others = 0
        self._suspects: dict[str, _Suspect] = {}  # by event_id, oldest first
        # A refused key: refusals in a row, and no request before this clock time but a flush's or close's.
        self._refusals = 0
        self._held_until: float | None = None

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

    def drain_now(self, *, force: bool = False) -> None:
        """Send everything that waits, on the caller's thread (sync mode); `force`: even while a key is held off."""
        with self._sync_lock:
            self.drain(force=force)

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
        """Report what is still in memory at close (suspects included) as failed (persistence off)."""
        items = self._take_suspects() + self._outbox.take_all()
        if items:
            self._give_up([items], self._closed_error())

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
            asked = closing or self._flush_now
            # Woken because a full batch waits: send full batches only, and let the rest
            # fill up. After a quiet interval, a flush() or close(): send everything.
            partial = not woken or asked
            self._flush_now = False
            try:
                drained = self.drain(partial=partial, force=asked)
            except Exception:
                log.exception("tracker: sending failed")
                drained = False
            if closing:
                return
            # After a batch was left in the spool, or the key refused, wait before the next
            # try (flush and close still wake us).
            pause = self._held_for() or (self._flush_interval if drained else self._retry.cap)

    # Sending.

    def drain(self, *, partial: bool = True, force: bool = False) -> bool:
        """Send what waits (only full batches unless `partial`); return False if a batch stays waiting.

        While a refused key is held off, nothing is sent unless `force` (flush, close).
        """
        outbox = self._outbox
        if not force and self._held_for():
            return False
        while True:
            if outbox.spool is not None:
                outbox.move_to_spool()
            if not partial and not outbox.batch_due():
                return True
            if outbox.spool is not None:
                batch = outbox.oldest_spooled(skip={suspect.item[0] for suspect in self._suspects.values()})
            elif self.deadline is not None and self._clock() >= self.deadline:
                self.give_up_queue()  # closing, out of time: one report for all, not one per batch
                return True
            else:
                batch = outbox.take_from_queue()
            if not batch and not self._suspects:
                return True
            if not self._deliver(batch):
                return False

    def _deliver(self, batch: list[Item]) -> bool:
        """Send a batch, then the suspects, until the tracker answers for each; return False if left in the spool.

        The work list starts as the batch followed by each suspect on its own (see
        "Poison events" above). A part answered 5xx is split in two halves, sent next;
        any other retryable failure sends the same part again. Either way the sender
        first waits the backoff of its consecutive failures. A suspect that fails again
        while other events wait is left for the next batch, to be tried after its events.
        """
        parts: collections.deque[list[Item]] = collections.deque()
        if batch:
            parts.append(batch)
        parts.extend([suspect.item] for suspect in self._suspects.values())
        while parts:
            deadline = self.deadline
            if deadline is not None and self._clock() >= deadline:
                return self._give_up(parts, self._last_error if self._failures else self._closed_error())
            part = parts.popleft()
            if self._failures == 0:
                self._failing_since = self._clock()
            try:
                results = self._post(part)
            except TrackerAuthError as err:
                return self._hold(part, parts, err)
            except TrackerError as err:
                if not err.retryable:
                    self._forget_suspects(part)
                    self._outbox.settle(part, failed=part)
                    self._report(err, part)
                    continue
                self._last_error = err
                self._failures += 1
                if not self._is_suspect(part):
                    self._failures_of_others += 1
                if _is_server_error(err) and len(part) > 1:
                    half = (len(part) + 1) // 2
                    parts.extendleft((part[half:], part[:half]))  # the first half goes next, then the second
                    # A split is progress: the budget starts again, or a batch of 100 (7 halvings,
                    # up to 30 s each) would spend it before its poison is alone.
                    self._failing_since = self._clock()
                elif _is_server_error(err):
                    if self._strike(part[0], err):
                        continue
                    if not self._others_wait():
                        parts.append(part)  # after the other suspects; else in the next batch, after its events
                else:
                    parts.appendleft(part)
                if not self._back_off(err, part):
                    return self._give_up(parts, err)
                continue
            self._acks += 1
            self._failures = 0
            self._refusals, self._held_until = 0, None
            self._forget_suspects(part)
            self._settle_results(part, results)
        return True

    def _back_off(self, err: TrackerError, part: list[Item]) -> bool:
        """Wait before the next attempt; return False if the retry budget or close()'s deadline forbids it."""
        delay = self._retry.delay(self._failures, getattr(err, "retry_after", None))
        resume = self._clock() + delay
        deadline = self.deadline
        if resume - self._failing_since > self._retry.budget or (deadline is not None and resume > deadline):
            return False
        self._outbox.count_retried(len(part))
        log.info("tracker: %s; retry %d of %d events in %.2f s", err, self._failures, len(part), delay)
        return self._wait(delay, resume)

    # A refused key.

    def _held_for(self) -> float:
        """Return the seconds left before the next request after a refused key (0: none held off)."""
        if self._held_until is None:
            return 0.0
        return max(0.0, self._held_until - self._clock())

    def _hold(self, part: list[Item], parts: Iterable[list[Item]], error: TrackerAuthError) -> bool:
        """Keep the events the key was refused for, report it, and hold off; return False (nothing more now)."""
        self._refusals += 1
        self._failures = 0  # not a failure of the tracker's: the next outage gets a whole budget
        self._last_error = error
        delay = self._retry.auth_delay(self._refusals)
        self._held_until = self._clock() + delay
        outbox = self._outbox
        if outbox.spool is None:
            # Back at the head of the queue, in order; suspects wait in their own list.
            outbox.requeue([item for each in (part, *parts) if not self._is_suspect(each) for item in each])
        outbox.give_up()  # wakes flush(), which answers False; every event stays pending
        log.warning(
            "tracker: the tracker refused the API key (%s); %d events kept, next try in %.0f s",
            error.status_code,
            outbox.pending,
            delay,
        )
        self._notify(error, part)
        return False

    # Poison events.

    def _is_suspect(self, part: list[Item]) -> bool:
        return len(part) == 1 and part[0][1] in self._suspects

    def _others_wait(self) -> bool:
        """Return True if events other than the suspects wait (with a spool, the suspects are in it)."""
        outbox = self._outbox
        if outbox.spool is not None and len(outbox.spool) > len(self._suspects):
            return True
        return outbox.in_memory() > 0

    def _strike(self, item: Item, error: TrackerError) -> bool:
        """Count a 5xx answer to `item` sent alone; return True if that set it aside."""
        suspect = self._suspects.get(item[1])
        if suspect is None:
            self._suspects[item[1]] = _Suspect(item, acks=self._acks, failures_of_others=self._failures_of_others)
            return False
        suspect.attempts += 1
        # The tracker took a request since this event last failed, and failed none with other
        # events in it: it works, but not for this event.
        if self._acks > suspect.acks and self._failures_of_others == suspect.failures_of_others:
            suspect.strikes += 1
        suspect.acks, suspect.failures_of_others = self._acks, self._failures_of_others
        if suspect.strikes < POISON_STRIKES:
            return False
        del self._suspects[item[1]]
        message = (
            f"set aside event {item[1]}: the tracker answered {error.status_code} to it alone "
            f"{suspect.attempts} times, {suspect.strikes} of them while it took every other event; "
            "it will not be sent again"
        )
        log.warning("tracker: %s", message)
        self._outbox.set_aside(item, reason=str(error)[:1000])
        self._report(EventSetAsideError(message, event_id=item[1], attempts=suspect.attempts, last_error=error), [item])
        return True

    def _forget_suspects(self, part: list[Item]) -> None:
        """The tracker answered for these events: none is a suspect any more."""
        if self._suspects:
            for item in part:
                self._suspects.pop(item[1], None)

    def _settle_results(self, batch: list[Item], results: list[dict[str, Any]]) -> None:
        """Count the tracker's per-event answers; hand each rejected event to on_error with its reasons."""
        accepted = duplicates = suppressed = 0
        rejected: list[tuple[Item, Any]] = []
        for item, result in zip(batch, results, strict=True):
            status = result.get("status")
            if status == "accepted":
                accepted += 1
            elif status == "duplicate":
                duplicates += 1
            elif status == "suppressed":
                # The player was erased: the tracker acknowledges and drops the event on purpose.
                suppressed += 1
            else:
                rejected.append((item, result.get("errors")))
        counts = (accepted, duplicates, suppressed, len(rejected))
        log.debug("tracker: accepted %d, duplicates %d, suppressed %d, rejected %d", *counts)
        self._outbox.settle(
            batch,
            accepted=accepted,
            duplicates=duplicates,
            suppressed=suppressed,
            failed=[item for item, _ in rejected],
        )
        for item, errors in rejected:
            reasons = json.dumps(errors, separators=(",", ":"), ensure_ascii=False)
            message = f"the tracker rejected event {item[1]}: {reasons}"
            self._report(EventRejectedError(message, errors=errors, event_id=item[1]), [item])

    def _post(self, batch: list[Item]) -> list[dict[str, Any]]:
        """POST one batch; return the tracker's result for each event, in batch order."""
        sent_at = utc_now_text()
        data = b'{"sent_at":"%s","events":[%s]}' % (sent_at.encode(), b",".join(item[2] for item in batch))
        self._outbox.count_request()
        started = time.monotonic()
        try:
            response = self._client._post_bytes(BATCH_PATH, data, timeout=self._attempt_timeout())
        except TrackerError as err:
            log.debug("tracker: %d events in %d bytes: %s", len(batch), len(data), err)
            raise
        log.debug(
            "tracker: %d events in %d bytes: answered %d in %.0f ms",
            len(batch),
            len(data),
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
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

    def _give_up(self, parts: Iterable[list[Item]], error: TrackerError) -> bool:
        """Stop retrying the parts left of a batch; return True if the sender may go on with the next one."""
        outbox = self._outbox
        self._failures = 0  # the next batch gets a whole budget
        if outbox.spool is not None:
            # An outage, most likely: a suspect with no strike goes back into batches, so the
            # suspects do not pile up one per budget while the tracker is down.
            self._suspects = {key: suspect for key, suspect in self._suspects.items() if suspect.strikes}
            outbox.give_up()
            log.warning("tracker: %s; %d events stay in the spool for later", error, len(outbox.spool))
            return False
        items = [item for part in parts for item in part]
        self._forget_suspects(items)
        if self.deadline is not None:  # closing, out of time: the rest would fare no better, so one report
            items += self._take_suspects() + outbox.take_all()
        outbox.give_up(items)
        self._report(error, items)
        return True

    def _take_suspects(self) -> list[Item]:
        """Remove and return the suspects held in memory (persistence off)."""
        items = [suspect.item for suspect in self._suspects.values()]
        self._suspects.clear()
        return items

    def _closed_error(self) -> TrackerError:
        last = f" (last error: {self._last_error})" if self._last_error else ""
        return TrackerError(f"the tracker closed before these events were sent{last}")

    def _report(self, error: TrackerError, items: list[Item]) -> None:
        """Hand undeliverable events to on_error (or to the log without one)."""
        if self._on_error is None:
            what = "1 event" if len(items) == 1 else f"{len(items)} events"
            log.warning("tracker: %s will not be delivered: %s", what, error)
            return
        self._notify(error, items)

    def _notify(self, error: TrackerError, items: list[Item]) -> None:
        """Call on_error with the events as sent, if there is one."""
        if self._on_error is None:
            return
        try:
            self._on_error(error, [json.loads(item[2]) for item in items])
        except Exception:  # the callback's bug must not stop the sender
            log.exception("tracker: on_error raised")
