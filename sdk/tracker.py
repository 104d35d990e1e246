"""The background tracker: track_* checks and queues an event in microseconds; threads batch, retry and spool.

This module is the facade: the options, the track_* calls (events.py), flush,
close, shutdown and the counters. The queue and its counters are outbox.py; the
threads that send, retry and spool are sender.py.

An event leaves the SDK's care exactly once, counted as sent (accepted or
duplicate), failed (rejected by the tracker, set aside as poison, or given up) or
dropped (overflow).
"""

from __future__ import annotations

import atexit
import logging
import os
import time
from collections.abc import Callable
from typing import Self

from .client import DEFAULT_TIMEOUT, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, TrackerClient
from .events import BuiltEvent, EventHelpers
from .outbox import Outbox, TrackerStats
from .retry import RetryPolicy
from .sender import ErrorCallback, Sender
from .spool import SetAsideEvent, Spool, default_spool_path
from .validation import InvalidEventError, encode_event, event_errors

__all__ = ["DROP_NEWEST", "DROP_OLDEST", "OVERFLOW_POLICIES", "ErrorCallback", "Tracker", "TrackerStats"]

log = logging.getLogger("playertrack.tracker")

DROP_NEWEST = "drop_newest"
DROP_OLDEST = "drop_oldest"
OVERFLOW_POLICIES = (DROP_NEWEST, DROP_OLDEST)


class Tracker(EventHelpers[str | None]):
    """Track player events without blocking the game: queued in memory, sent in the background.

    `track` (any type, built-in or custom) and the typed helpers (`track_install`,
    `track_purchase`, `track_session_start`, `track_session_end`, `track_progression`,
    `track_resource`, `track_ad_impression`) check the event against the tracker's
    rules (raising InvalidEventError naming every bad field), then queue it and
    return its event_id, or None if the overflow policy dropped it. They never wait
    on the network.

    Options (all keyword-only):

    - `api_key`, `base_url`: default to TRACKER_API_KEY and TRACKER_URL.
    - `persist`: path of a SQLite spool file, or True for `default_spool_path()` (in
      the user's data folder). Queued events are written there within
      `spool_window` seconds (default 0.1) and deleted only once the tracker has
      answered for them, so a crash loses at most that window and the next start
      sends the rest. The file is made 0600 (a folder the SDK creates, 0700).
      Without it, events live in memory only.
    - `sync`: send on the caller's thread before returning (scripts, tests); no threads.
    - `on_error(error, events)`: called with the events that will never be delivered
      and why: EventRejectedError (the tracker's reasons in `error.errors`) for each
      rejected event, EventSetAsideError for a poison event set aside (the tracker
      answered 5xx to it alone again and again while it took the others; see
      sender.py), the last TrackerError for a batch given up. One exception:
      TrackerAuthError (401, 403: the key was refused) comes with events that are
      kept and sent again later. It runs on the sender thread (the caller's in sync
      mode): keep it short.
    - `batch_size` (100), `batch_bytes` (500 KB), `flush_interval` (1 s): a batch goes
      when that many events or bytes wait, or after that long without a full batch.
    - `max_queue_size` (10,000 in memory), `max_spool_events` (100,000 on disk) and
      `overflow`: DROP_NEWEST (default: the new event is not kept) or DROP_OLDEST
      (the oldest waiting event makes room). Either way it is counted in `dropped`.
    - `retry`: a RetryPolicy (backoff base 0.5 s, cap 30 s, budget 60 s per batch).
    - `timeout`: (connect, read) seconds per request; `gzip`: compress bodies (on).
    - `close_timeout` (5 s): how long close(), and interpreter exit, may take.
    - `validate`: check events locally (on); off sends what the SDK does not know
      yet, e.g. a rule newer than this SDK, and leaves the checking to the tracker.
    - `disabled`: send nothing, ever (tests, a player who opted out): track_* still
      check the event and return its event_id; no thread, no spool, no request, no
      key needed; each event is counted in `queued` and `dropped`.
    - `debug`: log what the SDK does (each request, its answer, each event queued) at
      DEBUG on the `playertrack` logger, to stderr unless logging is configured.
    - `clock`, `sleep`: monotonic clock and retry wait, replaceable in tests.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        persist: str | os.PathLike[str] | bool | None = None,
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
        disabled: bool = False,
        debug: bool = False,
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
        if debug:
            enable_debug_logging()
        self._disabled = disabled
        if disabled:
            # Nothing is sent: no key is needed, no spool is opened, no thread is started.
            api_key = api_key or os.environ.get("TRACKER_API_KEY") or "disabled"
            persist, sync = None, True
        self._client = TrackerClient(base_url=base_url, api_key=api_key, timeout=timeout, gzip=gzip)
        self.base_url = self._client.base_url
        self._sync = sync
        self._close_timeout = close_timeout
        self._validate = validate
        self._clock = clock
        if persist is True:
            persist = default_spool_path()
        spool = Spool(persist, max_events=max_spool_events) if persist not in (None, False) else None
        self._outbox = Outbox(
            max_queue_size=max_queue_size,
            drop_oldest=overflow == DROP_OLDEST,
            batch_size=batch_size,
            batch_bytes=batch_bytes,
            spool=spool,
        )
        self._sender = Sender(
            self._outbox,
            self._client,
            retry=retry or RetryPolicy(),
            timeout=timeout,
            flush_interval=flush_interval,
            spool_window=spool_window,
            on_error=on_error,
            clock=clock,
            sleep=sleep,
        )
        if not sync:
            self._sender.start()
            # Daemon threads die silently at exit; this sends what waits, within close_timeout.
            atexit.register(self._close_at_exit)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Tracking: the caller's thread.

    def _take(self, built: BuiltEvent) -> str | None:
        """Check and queue a built event; return its event_id, or None if the overflow policy dropped it."""
        event, errors, checked = built
        if self._validate:
            found = event_errors(event, checked=checked)
            if found or errors:
                raise InvalidEventError({**found, **errors})
        event_id = event["event_id"]
        if self._disabled:
            self._outbox.discard()
            return event_id
        body = encode_event(event)  # once, here: the sender and the spool only move bytes
        if not self._outbox.add(event_id, body):
            return None
        log.debug("tracker: queued event %s of type %r", event_id, event["event_type"])
        if self._sync:
            self._sender.drain_now()
        return event_id

    # Flushing and closing: the caller's thread, blocking on purpose.

    def flush(self, timeout: float | None = None) -> bool:
        """Block until the tracker has answered for every waiting event; return True if it has.

        Returns False after `timeout` seconds, or as soon as a batch had to be given
        up (reported to on_error; with persistence on, kept in the spool for later).
        Events the tracker rejected count as answered.
        """
        outbox = self._outbox
        giveups = outbox.giveups
        if outbox.closed:
            return outbox.pending == 0
        if self._sync:
            self._sender.drain_now(force=True)
        else:
            if outbox.spool is not None:
                outbox.move_to_spool()  # no need to wait for the spool window
            self._sender.wake(flush=True)
            outbox.wait_settled(giveups, timeout)
        return outbox.settled_since(giveups)

    def close(self, timeout: float | None = None) -> bool:
        """Send what waits within `timeout` seconds (default close_timeout), then stop.

        Return True if the tracker answered for every event, as flush() does. What
        could not be sent in time stays in the spool with persistence on; without
        it, it is reported to on_error and counted as failed. Events tracked after
        close are dropped.
        """
        outbox, sender = self._outbox, self._sender
        giveups = outbox.close()
        if giveups is None:  # closed already
            return outbox.pending == 0
        timeout = self._close_timeout if timeout is None else timeout
        sender.deadline = self._clock() + timeout
        if self._sync:
            sender.drain_now(force=True)
            ended = True
        else:
            atexit.unregister(self._close_at_exit)
            ended = sender.stop(timeout)
        if not ended:
            log.warning("tracker sender still busy after %.1f s; leaving it behind", timeout)
            if outbox.spool is not None:
                outbox.move_to_spool()
            else:
                sender.give_up_queue()
            return False
        if outbox.spool is not None:
            outbox.move_to_spool()
            outbox.spool.close()
        else:
            sender.give_up_queue()
        self._client.close()
        return outbox.settled_since(giveups)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush, then close: wait until the tracker has answered for every event, then stop the threads.

        As Segment's and PostHog's `shutdown()`. `timeout` bounds the whole (None: the
        flush waits as long as retries go on, the close then takes at most
        close_timeout). Return True if the tracker answered for every event.
        """
        started = time.monotonic()
        flushed = self.flush(timeout)
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
        return self.close(left) and flushed

    def _close_at_exit(self) -> None:
        try:
            self.close()
        except Exception:  # an exit hook must not raise
            log.exception("tracker: closing at exit failed")

    # Counters.

    def stats(self) -> TrackerStats:
        """Return the counters at this instant."""
        return self._outbox.stats()

    def set_aside_events(self) -> list[SetAsideEvent]:
        """Return the poison events set aside in the spool (event_id, event, when, why), oldest first.

        The SDK never sends them again; resend one by hand (TrackerClient.send) once
        the tracker is fixed, or delete the spool's set_aside_event rows. Empty
        without persistence, where a set-aside event is only reported to on_error.
        """
        spool = self._outbox.spool
        return spool.set_aside_events() if spool is not None else []

    @property
    def pending(self) -> int:
        """Return how many events wait in memory or in the spool, or are in flight."""
        return self._outbox.pending


def enable_debug_logging() -> None:
    """Log the SDK's DEBUG lines (the `playertrack` logger), to stderr unless the application has configured logging."""
    logger = logging.getLogger("playertrack")
    logger.setLevel(logging.DEBUG)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
