"""The on-disk spool: events waiting to be sent, in a SQLite file that outlives a crash or an offline session."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spooled_event (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids never reused, so order is send order
    event_id TEXT NOT NULL,
    body BLOB NOT NULL                     -- the event as compact UTF-8 JSON, exactly as it is sent
)
"""


class SpooledEvent(NamedTuple):
    """One event in the spool."""

    id: int
    event_id: str
    body: bytes


class Spool:
    """Events in a SQLite file, oldest first; removed only once the tracker has answered for them.

    WAL journal with synchronous=NORMAL: a committed write survives the game
    being killed or crashing; an operating-system crash or power cut may lose the
    last few commits. One connection, shared by the SDK's threads under a lock, so
    one process should own a spool file at a time (a second one would only cause
    duplicates, which the tracker recognises by event_id).
    """

    def __init__(self, path: str | os.PathLike[str], *, max_events: int) -> None:
        self.path = Path(path).expanduser()
        self.max_events = max_events
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._count, self._bytes = self._db.execute(
            "SELECT count(*), coalesce(sum(length(body)), 0) FROM spooled_event"
        ).fetchone()

    def __len__(self) -> int:
        return self._count

    @property
    def bytes(self) -> int:
        """Return the total size of the stored events' bodies."""
        return self._bytes

    def add(self, events: Iterable[tuple[str, bytes]], *, drop_oldest: bool) -> int:
        """Store (event_id, body) pairs in one transaction; return how many events were dropped to stay in bounds.

        Over `max_events`, either the oldest stored events make room
        (`drop_oldest`) or the new ones that do not fit are not stored.
        """
        events = list(events)
        with self._lock, self._transaction():
            dropped = 0
            room = self.max_events - self._count
            if len(events) > room:
                if drop_oldest:
                    excess = len(events) - room
                    evicted = min(excess, self._count)
                    oldest = "SELECT id FROM spooled_event ORDER BY id LIMIT ?"
                    (size,) = self._db.execute(
                        f"SELECT coalesce(sum(length(body)), 0) FROM spooled_event WHERE id IN ({oldest})", (evicted,)
                    ).fetchone()
                    self._db.execute(f"DELETE FROM spooled_event WHERE id IN ({oldest})", (evicted,))
                    self._count -= evicted
                    self._bytes -= size
                    dropped = excess
                    events = events[excess - evicted :]
                else:
                    dropped = len(events) - max(room, 0)
                    events = events[: max(room, 0)]
            self._db.executemany("INSERT INTO spooled_event (event_id, body) VALUES (?, ?)", events)
            self._count += len(events)
            self._bytes += sum(len(body) for _, body in events)
        return dropped

    def oldest(self, max_count: int, max_bytes: int) -> list[SpooledEvent]:
        """Return the oldest events, at most `max_count` and, past the first, `max_bytes` of bodies."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, event_id, body FROM spooled_event ORDER BY id LIMIT ?", (max_count,)
            ).fetchall()
        batch: list[SpooledEvent] = []
        size = 0
        for row in rows:
            size += len(row[2]) + 1
            if batch and size > max_bytes:
                break
            batch.append(SpooledEvent(*row))
        return batch

    def remove(self, events: Iterable[SpooledEvent]) -> None:
        """Delete these events (the tracker has answered for them)."""
        events = list(events)
        if not events:
            return
        with self._lock, self._transaction():
            for start in range(0, len(events), 500):  # stay under SQLite's bound-parameter limit
                chunk = [event[0] for event in events[start : start + 500]]
                placeholders = ",".join("?" * len(chunk))
                self._db.execute(f"DELETE FROM spooled_event WHERE id IN ({placeholders})", chunk)
            # Only this spool's owner deletes, so every event given was there.
            self._count -= len(events)
            self._bytes -= sum(len(event[2]) for event in events)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self):
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
