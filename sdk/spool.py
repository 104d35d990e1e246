"""The on-disk spool: events waiting to be sent, in a SQLite file that outlives a crash or an offline session."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import stat
import sys
import threading
import warnings
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

log = logging.getLogger("playertrack.tracker")

APP_FOLDER = "player-event-tracker"

# The spool holds player ids and purchases: only its owner may read it.
FILE_MODE = 0o600
FOLDER_MODE = 0o700

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spooled_event (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids never reused, so order is send order
    event_id TEXT NOT NULL,
    body BLOB NOT NULL                     -- the event as compact UTF-8 JSON, exactly as it is sent
)
"""

# Events the tracker kept failing on (5xx) while it took every other: never sent
# again by the SDK, kept for a person to look at (Tracker.set_aside_events()).
_SET_ASIDE_SCHEMA = """
CREATE TABLE IF NOT EXISTS set_aside_event (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    body BLOB NOT NULL,                    -- as it was sent
    set_aside_at TEXT NOT NULL,            -- RFC 3339, UTC
    reason TEXT NOT NULL                   -- the tracker's last answer to it
)
"""


class SpoolPermissionWarning(UserWarning):
    """The spool's folder can be read by other users of the machine."""


def default_spool_path(name: str = "events") -> Path:
    """Return where a spool named `name` lives by default: the user's data folder, never the working directory.

    $XDG_DATA_HOME (else ~/.local/share) on Linux, ~/Library/Application Support on
    macOS, %LOCALAPPDATA% on Windows; inside it, player-event-tracker/NAME.sqlite3.
    Two games of one user pass two names: one process should own a spool at a time.
    """
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / APP_FOLDER / f"{name}.sqlite3"


def _prepare_private_file(path: Path) -> None:
    """Create `path` (and a missing folder) readable by its owner only; tighten an existing file.

    SQLite gives the -wal and -shm files the main file's mode, so making the main file
    0600 before SQLite opens it covers all three. A folder the SDK did not create is
    the user's: a loose one is reported, not changed.
    """
    folder = path.parent
    if not folder.exists():
        folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    elif os.name == "posix" and stat.S_IMODE(folder.stat().st_mode) & 0o077:
        message = (
            f"the spool's folder {folder} can be read by other users (mode "
            f"{stat.S_IMODE(folder.stat().st_mode):o}); the spool itself is made 0600, "
            "but a folder of mode 700 keeps even its name private"
        )
        log.warning("tracker: %s", message)
        warnings.warn(message, SpoolPermissionWarning, stacklevel=4)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE))
    if os.name == "posix":
        for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            with contextlib.suppress(FileNotFoundError):
                if stat.S_IMODE(file.stat().st_mode) != FILE_MODE:
                    os.chmod(file, FILE_MODE)


class SpooledEvent(NamedTuple):
    """One event in the spool."""

    id: int
    event_id: str
    body: bytes


class SetAsideEvent(NamedTuple):
    """One event the SDK set aside: the tracker answered 5xx to it alone, again and again, while taking the others."""

    event_id: str
    event: dict[str, Any]
    set_aside_at: str
    reason: str


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
        _prepare_private_file(self.path)
        self._lock = threading.Lock()
        self._closed = False
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._db.execute(_SET_ASIDE_SCHEMA)
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

    def oldest(self, max_count: int, max_bytes: int, *, skip: Collection[int] = ()) -> list[SpooledEvent]:
        """Return the oldest events, at most `max_count` and, past the first, `max_bytes` of bodies.

        Events whose id is in `skip` are passed over (the sender's suspects, sent on their own).
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT id, event_id, body FROM spooled_event ORDER BY id LIMIT ?", (max_count + len(skip),)
            ).fetchall()
        batch: list[SpooledEvent] = []
        size = 0
        for row in rows:
            if row[0] in skip:
                continue
            if len(batch) == max_count:
                break
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

    def set_aside(self, event: tuple[int | None, str, bytes], *, reason: str) -> None:
        """Move one event to the set-aside table, in one transaction: it is never sent again."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT INTO set_aside_event (event_id, body, set_aside_at, reason) VALUES (?, ?, ?, ?)",
                (event[1], event[2], now, reason),
            )
            deleted = self._db.execute("DELETE FROM spooled_event WHERE id = ?", (event[0],)).rowcount
            self._count -= deleted
            self._bytes -= len(event[2]) * deleted

    def set_aside_events(self) -> list[SetAsideEvent]:
        """Return the events set aside so far, oldest first (after close too: they are there for a person to read)."""
        query = "SELECT event_id, body, set_aside_at, reason FROM set_aside_event ORDER BY id"
        with self._lock:
            if self._closed:
                with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db:
                    rows = db.execute(query).fetchall()
            else:
                rows = self._db.execute(query).fetchall()
        return [SetAsideEvent(event_id, json.loads(body), at, reason) for event_id, body, at, reason in rows]

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()
            self._closed = True

    @contextlib.contextmanager
    def _transaction(self):
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
