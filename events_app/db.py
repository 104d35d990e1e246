"""Database transactions: SQLite's writers queued on a file lock, and the per-game erasure lock.

SQLite lets one writer in at a time; the others wait in its busy handler, which
sleeps 1, 2, 5, 10... ms between tries, so a writer that finishes after 0.3 ms can
leave the next one asleep for 10 ms. An flock() on a file next to the database
queues the server processes and workers in the kernel, which wakes the next writer
at once. It is only a speed-up: SQLite's own locking still guarantees correctness.
"""

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator

from django.db import DEFAULT_DB_ALIAS, connections, transaction

_local = threading.local()


def _lock_file(database_path: str) -> int:
    # One descriptor per thread: flock() excludes open files, not threads.
    descriptors = _local.__dict__.setdefault("descriptors", {})
    if database_path not in descriptors:
        descriptors[database_path] = os.open(f"{database_path}-writelock", os.O_RDWR | os.O_CREAT, 0o600)
    return descriptors[database_path]


@contextlib.contextmanager
def write_transaction(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Run the block in a transaction; on a SQLite file, queue behind other writers first."""
    db = connections[using]
    if db.vendor != "sqlite" or db.in_atomic_block or db.is_in_memory_db():
        with transaction.atomic(using=using):
            yield
        return
    descriptor = _lock_file(str(db.settings_dict["NAME"]))
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    try:
        with transaction.atomic(using=using):
            yield
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)


# pg_advisory_xact_lock's first key: this app's erasure lock (the second is the game's id).
_ERASURE_LOCK_SPACE = 0x45524153  # "ERAS"


def hold_erasure_lock(game_id: int, *, exclusive: bool, using: str = DEFAULT_DB_ALIAS) -> None:
    """Hold the game's erasure lock until the current transaction ends: shared to store events, exclusive to erase.

    On PostgreSQL an advisory lock: an erasure waits for the requests storing the
    game's events right now, and the requests that come after it wait for the
    erasure to commit, so none can store a row the erasure has not seen and whose
    player it has not yet suppressed. SQLite needs none: write_transaction queues
    every writer already.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    call, params = erasure_lock_call(game_id, exclusive=exclusive)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {call}", params)


def erasure_lock_call(game_id: int, *, exclusive: bool, wait: bool = True) -> tuple[str, list]:
    """Return the PostgreSQL expression (and its parameters) that takes the game's erasure lock; see hold_erasure_lock.

    For a statement that does more at once. Without `wait`, the expression gives
    false instead of waiting when an erasure holds the lock.
    """
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    if not wait:
        function = function.replace("pg_", "pg_try_", 1)
    return f"{function}(%s, %s)", [_ERASURE_LOCK_SPACE, game_id & 0x7FFFFFFF]
