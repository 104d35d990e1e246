"""The event log's backend-specific SQL: reading past a relay's cursor in commit order, and holding a relay shard.

SQLite queues every writer (events_app.db.write_transaction), so ids are handed out
in commit order and "every event with a greater id" is exactly what a relay has not
seen. PostgreSQL commits concurrent transactions in any order: a transaction that
took id 100 may commit after the one that took id 101. There every row carries the
id of the transaction that inserted it (`txid`, a column the migration adds with
`DEFAULT pg_current_xact_id()`), and the relay reads in (txid, id) order, only
rows whose transaction is older than every transaction of this database still
running: those can no longer be joined by a row that sorts before them. Running
transactions of other databases on the same server are left out of that horizon
(they cannot write here), and so is the reader's own.

A relay shard is held by one process at a time: a session advisory lock on
PostgreSQL (freed by the server if the process dies), a lease on the shard's cursor
row on SQLite. Whoever fails to take it waits as a standby.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from django.utils import timezone

from events_app.db import write_transaction
from events_app.models import DeliveryCursor, Event

# pg_try_advisory_lock's first key: the relay shards (the second is the shard).
_RELAY_LOCK_SPACE = 0x52454C59  # "RELY"
# A SQLite relay renews its lease every loop; a dead one's shard is free after this.
SQLITE_LEASE = timedelta(seconds=30)


@dataclass(frozen=True, order=True)
class Position:
    """A point in one shard's relay order: (transaction id, event id); the transaction id is 0 on SQLite."""

    txid: int
    event: int


@dataclass(frozen=True)
class LogRow:
    """An event as the relay reads it."""

    pk: int
    txid: int
    game_id: int
    received_at: datetime
    payload: dict

    @property
    def position(self) -> Position:
        return Position(self.txid, self.pk)


def _table() -> str:
    return connections[DEFAULT_DB_ALIAS].ops.quote_name(Event._meta.db_table)


# The oldest transaction that may still add rows to this database's log, in one
# expression of the statement's own snapshot: its running transactions (xip) less
# those of backends on other databases, else the snapshot's xmax. backend_xid is the
# 32-bit form of the xid8 in xip.
_PG_HORIZON = """
    coalesce(
        (SELECT min(running) FROM pg_snapshot_xip(pg_current_snapshot()) AS running
         WHERE running::text::bigint %% 4294967296 NOT IN (
             SELECT backend_xid::text::bigint FROM pg_stat_activity
             WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database())),
        pg_snapshot_xmax(pg_current_snapshot()))
"""


def read_past(*, shard: int, after: Position, limit: int) -> list[LogRow]:
    """Return up to `limit` events of `shard` after `after` in relay order, only those no earlier one can still join."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            if connection.in_atomic_block:
                # pg_stat_activity is read once per transaction: a long one (a test's) must look again.
                cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                f"SELECT id, txid::text::bigint, game_id, received_at, payload FROM {_table()} "
                f"WHERE shard = %s AND (txid, id) > (%s::text::xid8, %s) "
                f"AND (txid < {_PG_HORIZON} OR txid = pg_current_xact_id_if_assigned()) "
                "ORDER BY txid, id LIMIT %s",
                [shard, str(after.txid), after.event, limit],
            )
            rows = cursor.fetchall()
        # Django has psycopg hand jsonb over as text, to decode it itself.
        return [
            LogRow(pk, txid, game_id, received_at, orjson.loads(payload) if isinstance(payload, str) else payload)
            for pk, txid, game_id, received_at, payload in rows
        ]
    # SQLite: ids are commit order; the ORM converts the stored text as for any query.
    rows = (
        Event.objects.filter(shard=shard, pk__gt=after.event)
        .order_by("pk")
        .values_list("pk", "game_id", "received_at", "payload")[:limit]
    )
    return [LogRow(pk, 0, game_id, received_at, payload) for pk, game_id, received_at, payload in rows]


def drained_mark() -> int:
    """Return a mark such that once horizon() reaches it, every event committed before this call is readable."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
        return cursor.fetchone()[0]


def horizon() -> int:
    """Return the oldest transaction that may still add rows to the log (PostgreSQL; 0 on SQLite)."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        if connection.in_atomic_block:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(f"SELECT ({_PG_HORIZON})::text::bigint".replace("%%", "%"))
        return cursor.fetchone()[0]


def cursor_of(shard: int) -> DeliveryCursor:
    """Return the shard's cursor row, made at the start of the log if the shard never had one."""
    cursor = DeliveryCursor.objects.filter(shard=shard).first()
    if cursor is None:
        with write_transaction():
            DeliveryCursor.objects.bulk_create([DeliveryCursor(shard=shard)], ignore_conflicts=True)
        cursor = DeliveryCursor.objects.get(shard=shard)
    return cursor


def advance(*, shard: int, old: Position, new: Position, now: datetime) -> bool:
    """Move the shard's cursor from `old` to `new` in the current transaction; False if it was no longer at `old`."""
    moved = DeliveryCursor.objects.filter(shard=shard, last_txid=old.txid, last_event=old.event).update(
        last_txid=new.txid, last_event=new.event, moved_at=now
    )
    return moved == 1


def hold_shard(*, shard: int, holder: uuid.UUID) -> bool:
    """Take or keep the shard for this process; False while another process holds it (then be a standby)."""
    connection = connections[DEFAULT_DB_ALIAS]
    cursor_of(shard)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # A session lock survives transactions but not the connection: check, then take.
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                "AND classid = %s AND objid = %s AND objsubid = 2 AND granted)",
                [_RELAY_LOCK_SPACE, shard],
            )
            if cursor.fetchone()[0]:
                return True
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_RELAY_LOCK_SPACE, shard])
            return cursor.fetchone()[0]
    now = timezone.now()
    with write_transaction():
        taken = (
            DeliveryCursor.objects.filter(shard=shard)
            .exclude(held_until__gte=now, holder__isnull=False)
            .update(holder=holder, held_until=now + SQLITE_LEASE)
        )
        if not taken:
            taken = DeliveryCursor.objects.filter(shard=shard, holder=holder).update(held_until=now + SQLITE_LEASE)
    return bool(taken)


def release_shard(*, shard: int, holder: uuid.UUID) -> None:
    """Let the shard go, so a standby takes it at once."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_RELAY_LOCK_SPACE, shard])
        return
    with write_transaction():
        DeliveryCursor.objects.filter(shard=shard, holder=holder).update(holder=None, held_until=None)


def _position_sql(alias: str) -> tuple[str, str]:
    connection = connections[DEFAULT_DB_ALIAS]
    quote = connection.ops.quote_name
    if connection.vendor == "postgresql":
        return f"({alias}.{quote('txid')}, {alias}.{quote('id')})", "(%s::text::xid8, %s)"
    return f"{alias}.{quote('id')}", "%s"


def not_relayed(cursors: list[DeliveryCursor]) -> RawSQL:
    """Return a filter on Event matching the events no relay has passed yet (pending unless they have an issue)."""
    connection = connections[DEFAULT_DB_ALIAS]
    table = _table()
    quote = connection.ops.quote_name
    position, placeholder = _position_sql(table)
    parts, params = [], []
    for cursor in cursors:
        parts.append(f"({table}.{quote('shard')} = %s AND {position} > {placeholder})")
        params.append(cursor.shard)
        if connection.vendor == "postgresql":
            params.append(str(cursor.last_txid))
        params.append(cursor.last_event)
    # A shard without a cursor row has never been relayed: all of it is still to send.
    known = [cursor.shard for cursor in cursors]
    parts.append(f"({table}.{quote('shard')} NOT IN ({', '.join(['%s'] * len(known)) or 'NULL'}))")
    params.extend(known)
    return RawSQL("(" + " OR ".join(parts) + ")", params, output_field=BooleanField())


def position_of(event_pk: int) -> Position | None:
    """Return an event's place in its shard's relay order, or None if it does not exist."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        return Position(0, event_pk) if Event.objects.filter(pk=event_pk).exists() else None
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT txid::text::bigint FROM {_table()} WHERE id = %s", [event_pk])
        row = cursor.fetchone()
    return None if row is None else Position(row[0], event_pk)
