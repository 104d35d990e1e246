"""The events a Tracker holds: a bounded in-memory queue, its overflow policy, the spool behind it, and the counters.

Every event given to the Outbox is counted once as it leaves: sent (accepted or
duplicate), failed, or dropped; until then it is pending. One lock guards the queue
and the counters; `changed` is notified whenever pending goes down or a batch is
given up, which is what flush() waits for.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from .spool import Spool

log = logging.getLogger("playertrack.tracker")

# (spool row id or None, event_id, the event as JSON): the shape of every queued event.
Item = tuple[int | None, str, bytes]


@dataclass(frozen=True)
class TrackerStats:
    """Counters of a Tracker, read at one instant with `Tracker.stats()`.

    queued + restored = sent + failed + dropped + pending, at every instant; `rejected`
    and `set_aside` are parts of `failed`.
    """

    queued: int  # valid events given to track_*, kept or dropped
    restored: int  # events found in the spool at start, left by an earlier run
    sent: int  # acknowledged by the tracker: accepted + duplicates + suppressed
    accepted: int
    duplicates: int  # the tracker already had them (a retry, a replayed receipt): not counted twice
    failed: int  # will never be delivered: rejected, or given up (reported to on_error)
    rejected: int  # of failed: refused by the tracker, with its reasons
    dropped: int  # discarded by the overflow policy, or tracked after close (never sent)
    retried: int  # event sends repeated after a network error, 429 or 5xx
    requests: int  # HTTP requests made
    pending: int  # waiting in memory or in the spool, or in flight
    set_aside: int = 0  # of failed: answered 5xx alone again and again while the tracker took the others (poison)
    suppressed: int = 0  # of sent: the player asked to be forgotten; the tracker acknowledged and dropped them


class Outbox:
    """Events waiting to be sent, in memory and (with a spool) on disk, oldest first.

    `wake_sender` is set when a full batch waits in memory (no spool), `wake_spooler`
    when the first event since the last move to the spool arrives: the threads are
    woken on the transitions that matter, not on every event.
    """

    def __init__(
        self, *, max_queue_size: int, drop_oldest: bool, batch_size: int, batch_bytes: int, spool: Spool | None
    ) -> None:
        self.max_queue_size = max_queue_size
        self.drop_oldest = drop_oldest
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.spool = spool
        self.wake_sender = threading.Event()
        self.wake_spooler = threading.Event()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._spool_move_lock = threading.Lock()  # keeps spool order = queue order
        self._queue: collections.deque[Item] = collections.deque()
        self._queue_bytes = 0
        self.closed = False
        self._queued = self._restored = self._accepted = self._duplicates = 0
        self._failed = self._rejected = self._dropped = self._retried = self._requests = 0
        self._set_aside = self._suppressed = 0
        self._giveups = 0
        self._pending = 0
        if spool is not None:
            self._restored = self._pending = len(spool)

    # The caller's side.

    def add(self, event_id: str, body: bytes) -> bool:
        """Append to the queue; return False if the overflow policy (or closing) dropped this event."""
        with self._lock:
            self._queued += 1
            if self.closed:
                self._dropped += 1
                return False
            queue = self._queue
            if len(queue) >= self.max_queue_size:
                self._dropped += 1
                if self._dropped == 1:
                    log.warning("tracker queue is full (%d events): dropping events", self.max_queue_size)
                if not self.drop_oldest:
                    return False
                self._queue_bytes -= len(queue.popleft()[2])
                self._pending -= 1
            queue.append((None, event_id, body))
            self._queue_bytes += len(body)
            self._pending += 1
            waiting = len(queue)
            full = waiting >= self.batch_size or self._queue_bytes >= self.batch_bytes
        if self.spool is not None:
            if waiting == 1:
                self.wake_spooler.set()
        elif full and not self.wake_sender.is_set():
            self.wake_sender.set()
        return True

    def discard(self) -> None:
        """Count an event a disabled Tracker checked and threw away: queued, then dropped, never sent."""
        with self._lock:
            self._queued += 1
            self._dropped += 1

    def close(self) -> int | None:
        """Stop taking events; return the give-up count at this instant, or None if already closed."""
        with self._lock:
            if self.closed:
                return None
            self.closed = True
            return self._giveups

    # The sender's side.

    def move_to_spool(self) -> bool:
        """Move the in-memory queue into the spool; return True if a full batch now waits there."""
        spool = self.spool
        assert spool is not None
        with self._spool_move_lock:
            items = self.take_all()
            if items:
                dropped = spool.add(((event_id, body) for _, event_id, body in items), drop_oldest=self.drop_oldest)
                if dropped:
                    with self._changed:
                        self._dropped += dropped
                        self._pending -= dropped
                        self._changed.notify_all()
                    log.warning("tracker spool is full (%d events): dropped %d", spool.max_events, dropped)
        return len(spool) >= self.batch_size or spool.bytes >= self.batch_bytes

    def batch_due(self) -> bool:
        """Return True if a full batch waits (by count or by size)."""
        if self.spool is not None:
            return len(self.spool) >= self.batch_size or self.spool.bytes >= self.batch_bytes
        with self._lock:
            return len(self._queue) >= self.batch_size or self._queue_bytes >= self.batch_bytes

    def oldest_spooled(self, skip: Collection[int] = ()) -> list[Item]:
        """Return the oldest batch in the spool, passing over the ids in `skip`; it stays there until `settle`."""
        assert self.spool is not None
        return list(self.spool.oldest(self.batch_size, self.batch_bytes, skip=skip))

    def in_memory(self) -> int:
        """Return how many events wait in the in-memory queue."""
        with self._lock:
            return len(self._queue)

    def take_from_queue(self) -> list[Item]:
        """Remove and return the oldest batch in memory (within the batch's count and size)."""
        batch: list[Item] = []
        size = 0
        with self._lock:
            queue = self._queue
            while queue and len(batch) < self.batch_size:
                item_size = len(queue[0][2]) + 1
                if batch and size + item_size > self.batch_bytes:
                    break
                batch.append(queue.popleft())
                size += item_size
            self._queue_bytes -= size - len(batch)
        return batch

    def requeue(self, items: Sequence[Item]) -> None:
        """Put events taken from the queue back at its head, in their order (the tracker refused the key).

        They were counted when tracked, so the cap is not checked here: the queue may hold
        one batch more than max_queue_size until the overflow policy catches up.
        """
        with self._lock:
            self._queue.extendleft(reversed(items))
            self._queue_bytes += sum(len(item[2]) for item in items)

    def take_all(self) -> list[Item]:
        """Remove and return everything waiting in memory."""
        with self._lock:
            items = list(self._queue)
            self._queue.clear()
            self._queue_bytes = 0
        return items

    def settle(
        self,
        batch: list[Item],
        *,
        accepted: int = 0,
        duplicates: int = 0,
        suppressed: int = 0,
        failed: Sequence[Item] = (),
    ) -> None:
        """Record the tracker's answer for a batch: the spool forgets it, then the counters move."""
        if self.spool is not None:
            self.spool.remove(batch)
        with self._changed:
            self._accepted += accepted
            self._duplicates += duplicates
            self._suppressed += suppressed
            self._failed += len(failed)
            self._rejected += len(failed)
            self._pending -= len(batch)
            self._changed.notify_all()

    def set_aside(self, item: Item, *, reason: str) -> None:
        """Record a poison event: kept in the spool's set-aside table (with a spool), counted, never sent again."""
        if self.spool is not None:
            self.spool.set_aside(item, reason=reason)
        with self._changed:
            self._failed += 1
            self._set_aside += 1
            self._pending -= 1
            self._changed.notify_all()

    def give_up(self, items: Sequence[Item] = ()) -> None:
        """Record a batch given up: `items` will never be sent (none when the spool keeps them for later)."""
        with self._changed:
            self._giveups += 1
            self._failed += len(items)
            self._pending -= len(items)
            self._changed.notify_all()

    def count_request(self) -> None:
        with self._lock:
            self._requests += 1

    def count_retried(self, events: int) -> None:
        with self._lock:
            self._retried += events

    # Reading the counters.

    @property
    def pending(self) -> int:
        """Return how many events wait in memory or in the spool, or are in flight."""
        return self._pending

    @property
    def giveups(self) -> int:
        """Return how many batches were given up so far."""
        return self._giveups

    def settled_since(self, giveups: int) -> bool:
        """Return True if nothing is pending and no batch was given up since `giveups` was read."""
        with self._lock:
            return self._pending == 0 and self._giveups == giveups

    def wait_settled(self, giveups: int, timeout: float | None) -> None:
        """Wait until nothing is pending or a batch is given up (after `giveups` was read), or `timeout` passes."""
        with self._changed:
            self._changed.wait_for(lambda: self._pending == 0 or self._giveups != giveups, timeout)

    def stats(self) -> TrackerStats:
        """Return the counters at this instant."""
        with self._lock:
            return TrackerStats(
                queued=self._queued,
                restored=self._restored,
                sent=self._accepted + self._duplicates + self._suppressed,
                accepted=self._accepted,
                duplicates=self._duplicates,
                failed=self._failed,
                rejected=self._rejected,
                dropped=self._dropped,
                retried=self._retried,
                requests=self._requests,
                pending=self._pending,
                set_aside=self._set_aside,
                suppressed=self._suppressed,
            )
