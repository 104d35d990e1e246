"""Senders' heartbeats: when a worker was last seen and when a sender last delivered, one row per kind of sender.

`deliver_events` beats once per loop, and again after a batch with deliveries. A
process writes its row at most every WRITE_EVERY_SECONDS and keeps what it noted
meanwhile for its next write, so the row costs one small UPDATE every few seconds
per process, however busy it is. The row is in the database, so the admin sees
every process on every host, on SQLite and PostgreSQL alike.
"""

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import DateTimeField, F, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from events_app.db import write_transaction
from events_app.models import Heartbeat

logger = logging.getLogger(__name__)

WORKER = "worker"  # the sender name of `manage.py deliver_events` (its SendPolicy's name)
WRITE_EVERY_SECONDS = 5.0


@dataclass
class _Noted:
    """What this process noted for one sender since it last wrote the row."""

    written_at: datetime | None = None
    seen_at: datetime | None = None
    delivered_at: datetime | None = None


_noted: dict[str, _Noted] = {}
_lock = threading.Lock()  # a process may beat from more than one thread


def beat(*, sender: str, delivered: bool = False, now: datetime | None = None) -> None:
    """Note that `sender` is alive (and delivered events, with `delivered`); write its row if due.

    Never raises: a heartbeat that cannot be written must not stop deliveries, and is
    written with the next beat instead.
    """
    now = now or timezone.now()
    with _lock:
        noted = _noted.setdefault(sender, _Noted())
        noted.seen_at = now
        if delivered:
            noted.delivered_at = now
        # A clock set back writes at once rather than waiting for the old time to come round.
        due = noted.written_at is None or not (
            noted.written_at <= now < noted.written_at + timedelta(seconds=WRITE_EVERY_SECONDS)
        )
        if not due:
            return
        seen_at, delivered_at = noted.seen_at, noted.delivered_at
    try:
        _write(sender=sender, seen_at=seen_at, delivered_at=delivered_at)
    except DatabaseError as exc:
        logger.warning("heartbeat not written sender=%s error=%s", sender, type(exc).__name__)
        return
    with _lock:
        noted.written_at = now
        if noted.delivered_at == delivered_at:
            noted.delivered_at = None


def forget() -> None:
    """Forget what this process noted and when it wrote (tests start from a process that never beat)."""
    with _lock:
        _noted.clear()


def _write(*, sender: str, seen_at: datetime, delivered_at: datetime | None) -> None:
    # Never back in time: another process of the same kind may have written a later time.
    def latest(field_name: str, value: datetime):
        value = Value(value, output_field=DateTimeField())
        return Greatest(Coalesce(F(field_name), value), value)

    values = {"last_seen_at": latest("last_seen_at", seen_at)}
    if delivered_at is not None:
        values["last_delivery_at"] = latest("last_delivery_at", delivered_at)
    with write_transaction():
        if Heartbeat.objects.filter(sender=sender).update(**values):
            return
        try:
            with transaction.atomic():
                Heartbeat.objects.create(sender=sender, last_seen_at=seen_at, last_delivery_at=delivered_at)
        except IntegrityError:  # another process created it meanwhile
            Heartbeat.objects.filter(sender=sender).update(**values)
