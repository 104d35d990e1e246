"""Waiting, in a test, until another session queues behind a PostgreSQL advisory lock."""

import time

from django.db import connection


def wait_until_an_advisory_lock_is_awaited(what: str, *, timeout: float = 30) -> None:
    """Return once some session waits for an advisory lock; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            if cursor.fetchone()[0]:
                return
            assert time.monotonic() < deadline, f"{what} did not wait"
