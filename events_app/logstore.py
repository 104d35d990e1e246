"""The event log's backend-specific SQL: reading past a relay's cursor in commit order, relay shards, partitions.

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
PostgreSQL (freed by the server if the process dies), an flock() on a file beside
the database on SQLite (freed by the kernel). Whoever fails to take it waits as a
standby.
"""

import fcntl
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from django.utils import timezone

from events_app import conf, idempotency
from events_app.db import write_transaction
from events_app.models import DeliveryCursor, Event, EventKey

# pg_try_advisory_lock's first key: the relay shards (the second is the shard).
_RELAY_LOCK_SPACE = 0x52454C59  # "RELY"
# An in-memory SQLite database (tests) leases shards on the cursor row, renewed every loop.
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
        # The horizon first, as a constant: the read is then one range of the (shard, txid, id)
        # index per day, merged in order. Every row below it committed before the read's snapshot.
        below = horizon()
        table = _table()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT e.id, e.txid::text::bigint, e.game_id, e.received_at, e.payload FROM {table} e "
                "WHERE e.shard = %s AND (e.txid, e.id) > (%s::text::xid8, %s) AND e.txid < %s::text::xid8 "
                "ORDER BY e.txid, e.id LIMIT %s",
                [shard, str(after.txid), after.event, str(below), limit],
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
    """Return the oldest transaction that may still add rows to the log (PostgreSQL; 0 on SQLite).

    The relay reads outside any transaction. Inside one that wrote events itself (a
    test's), those rows count as committed: the horizon is past its own transaction.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        if connection.in_atomic_block:
            # pg_stat_activity is read once per transaction: a long one (a test's) must look again.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            f"SELECT greatest(({_PG_HORIZON})::text::bigint, "
            "coalesce(pg_current_xact_id_if_assigned()::text::bigint + 1, 0))".replace("%%", "%")
        )
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
    if not connection.is_in_memory_db():
        return _hold_file_lock(f"{connection.settings_dict['NAME']}-relay-{shard}.lock")
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
    if not connection.is_in_memory_db():
        _release_file_lock(f"{connection.settings_dict['NAME']}-relay-{shard}.lock")
        return
    with write_transaction():
        DeliveryCursor.objects.filter(shard=shard, holder=holder).update(holder=None, held_until=None)


# SQLite file: every relay runs on the database's machine, so a shard is held by an
# flock() on a file beside the database, which the kernel frees the moment the holding
# process dies, however long its sends take. (An in-memory database, in tests: a
# lease on the cursor row instead.)
_file_locks: dict[str, int] = {}


def _hold_file_lock(path: str) -> bool:
    if path in _file_locks:
        return True
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return False
    _file_locks[path] = descriptor
    return True


def _release_file_lock(path: str) -> None:
    descriptor = _file_locks.pop(path, None)
    if descriptor is not None:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


def _position_sql(alias: str) -> tuple[str, str]:
    connection = connections[DEFAULT_DB_ALIAS]
    quote = connection.ops.quote_name
    if connection.vendor == "postgresql":
        return f"({alias}.{quote('txid')}, {alias}.{quote('id')})", "(%s::text::xid8, %s)"
    return f"{alias}.{quote('id')}", "%s"


def not_relayed(cursors: list[DeliveryCursor], *, table: str | None = None) -> RawSQL:
    """Return a filter on Event matching the events no relay has passed yet (pending unless they have an issue).

    `table` names another table holding log rows (a day's partition) to match in.
    """
    connection = connections[DEFAULT_DB_ALIAS]
    table = _table() if table is None else connection.ops.quote_name(table)
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
    # Named one by one (not NOT IN), so that every branch is a range of the relay index.
    known = {cursor.shard for cursor in cursors}
    for shard in range(conf.relay_shards()):
        if shard not in known:
            parts.append(f"({table}.{quote('shard')} = %s)")
            params.append(shard)
    if not parts:
        return RawSQL("(1 = 0)", [], output_field=BooleanField())
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


# --- Partitions (PostgreSQL) ----------------------------------------------------------
#
# On PostgreSQL the log is partitioned by UTC day of received_at and the event keys by
# bucket, with no DEFAULT partition: a day goes whole (detached, then dropped) instead
# of row by row. ensure_partitions() keeps PARTITION_DAYS_AHEAD days ready; migrate
# runs it (events_app.apps), so do `deliver_events` at start and every hour and the
# scheduled `ensure_partitions` job, and no process depends on a run today.

PARTITION_DAYS_AHEAD = 14
_MAINTENANCE_LOCK = (_RELAY_LOCK_SPACE, 0x7FFF_FFFF)  # one partition-maintainer at a time


@dataclass(frozen=True)
class DayPartition:
    """One day of the log on PostgreSQL: its table and the [start, end) of received_at it holds."""

    name: str
    start: datetime
    end: datetime


def partitioned() -> bool:
    """Return True where the log is partitioned: PostgreSQL, once migration 0011 has run."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s))",
            [Event._meta.db_table],
        )
        return cursor.fetchone()[0]


def day_partition_name(day) -> str:
    return f"{Event._meta.db_table}_p{day:%Y%m%d}"


def bucket_partition_name(bucket: int) -> str:
    return f"{EventKey._meta.db_table}_b{bucket}"


def _partitions_of(table: str) -> list[tuple[str, str]]:
    """Return (name, bound expression) of each partition of `table`."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass ORDER BY c.relname",
            [table],
        )
        return cursor.fetchall()


def day_partitions() -> list[DayPartition]:
    """Return the log's day partitions, oldest first (PostgreSQL; none elsewhere)."""
    if not partitioned():
        return []
    days = []
    prefix = f"{Event._meta.db_table}_p"
    for name, _ in _partitions_of(Event._meta.db_table):
        if name.startswith(prefix):
            start = datetime.strptime(name[len(prefix) :], "%Y%m%d").replace(tzinfo=UTC)
            days.append(DayPartition(name, start, start + timedelta(days=1)))
    return sorted(days, key=lambda day: day.start)


def days_ahead(*, now: datetime | None = None) -> int:
    """Return how many days after today have their partition ready, counted without a gap (PostgreSQL; else a lot)."""
    if not partitioned():
        return PARTITION_DAYS_AHEAD
    ready = {day.start.date() for day in day_partitions()}
    today = (now or timezone.now()).astimezone(UTC).date()
    count = 0
    while today + timedelta(days=count + 1) in ready:
        count += 1
    return count


def ensure_partitions(*, now: datetime | None = None, ahead: int = PARTITION_DAYS_AHEAD, back: int = 1) -> list[str]:
    """Create the log's partitions from `back` days ago to `ahead` days on, and the key buckets around now.

    Idempotent, and safe to run from several processes (one at a time, under an
    advisory lock). Returns the partitions it created. SQLite: nothing to do.
    """
    if not partitioned():
        return []

    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    connection = connections[DEFAULT_DB_ALIAS]
    created = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", list(_MAINTENANCE_LOCK))
        have = {name for name, _ in _partitions_of(Event._meta.db_table)}
        for offset in range(-back, ahead + 1):
            day = today + timedelta(days=offset)
            name = day_partition_name(day)
            if name in have:
                continue
            start, end = day.isoformat(), (day + timedelta(days=1)).isoformat()
            _attach_new_partition(
                cursor, Event._meta.db_table, name, f"FROM ('{start} 00:00:00+00') TO ('{end} 00:00:00+00')"
            )
            created.append(name)
        have = {name for name, _ in _partitions_of(EventKey._meta.db_table)}
        current, _ = idempotency.buckets_at(now.timestamp())
        for bucket in range(current - 1, current + 3):
            name = bucket_partition_name(bucket)
            if name in have:
                continue
            _attach_new_partition(cursor, EventKey._meta.db_table, name, f"FROM ({int(bucket)}) TO ({int(bucket) + 1})")
            created.append(name)
    return created


def _attach_new_partition(cursor, table: str, name: str, bounds: str) -> None:
    """Create the partition `name` of `table` for `bounds` without blocking the writers of `table`.

    `CREATE TABLE ... PARTITION OF` locks the parent exclusively: every insert waits,
    and a request that holds a row lock on one parent while it waits for the other
    deadlocks with a run that creates partitions of both. A table created alone and
    then attached needs only a SHARE UPDATE EXCLUSIVE lock on the parent, which
    inserts do not wait for; an empty table is checked against its bounds at once.
    """
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    cursor.execute(f"CREATE TABLE {quote(name)} (LIKE {quote(table)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    cursor.execute(f"ALTER TABLE {quote(table)} ATTACH PARTITION {quote(name)} FOR VALUES {bounds}")


def drop_partition(table: str, name: str) -> None:
    """Detach a partition from `table` (concurrently, outside a transaction) and drop it."""
    connection = connections[DEFAULT_DB_ALIAS]
    quote = connection.ops.quote_name
    # CONCURRENTLY takes no lock that blocks inserts, but cannot run inside a transaction block.
    concurrently = "" if connection.in_atomic_block else " CONCURRENTLY"
    with connection.cursor() as cursor:
        if connection.in_atomic_block:
            # Inside a transaction that wrote rows (a test's), their deferred checks must run first.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE {quote(table)} DETACH PARTITION {quote(name)}{concurrently}")
        cursor.execute(f"DROP TABLE {quote(name)}")


def drop_buckets_before(bucket: int) -> int:
    """Drop the event-key partitions of buckets before `bucket`; return the keys they held (PostgreSQL)."""
    connection = connections[DEFAULT_DB_ALIAS]
    dropped = 0
    prefix = f"{EventKey._meta.db_table}_b"
    for name, _ in _partitions_of(EventKey._meta.db_table):
        if not name.startswith(prefix) or int(name[len(prefix) :]) >= bucket:
            continue
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(name)}")
            dropped += cursor.fetchone()[0]
        drop_partition(EventKey._meta.db_table, name)
    return dropped
