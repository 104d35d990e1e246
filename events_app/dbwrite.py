"""Write transactions, with SQLite's writers queued on a file lock instead of sleeping and retrying.

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
