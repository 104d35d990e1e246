"""PostgreSQL: the log becomes partitioned by UTC day of received_at, the event keys by bucket; SQLite: nothing.

The table cannot be turned into a partitioned one in place: the migration renames
it, creates the partitioned table with the same columns, constraints and indexes
(the primary key becomes (id, received_at), as a partitioned table requires), makes
a partition per day from the oldest event to PARTITION_DAYS_AHEAD days on, copies
the rows in one INSERT ... SELECT, and drops the old table. It runs in the
migration's transaction: inserts wait for it. Measured duration per million
events: docs/operations.md#upgrading-to-the-log.
"""

from datetime import timedelta

from django.db import migrations

from events_app import logstore

LOG = "events_app_event"
KEYS = "events_app_eventkey"


def _indexes(cursor, table: str) -> list[tuple[str, str]]:
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p')",
        [table, table],
    )
    return cursor.fetchall()


def _foreign_keys(cursor, table: str) -> list[tuple[str, str]]:
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
        [table],
    )
    return cursor.fetchall()


def _rebuild(cursor, table: str, *, partition_by: str | None, primary_key: str) -> str:
    """Move `table` aside and create it again, partitioned by `partition_by` (or plain); return the old one's name."""
    old = f"{table}_before_0011"
    indexes = _indexes(cursor, table)
    foreign_keys = _foreign_keys(cursor, table)
    cursor.execute(f'ALTER TABLE "{table}" RENAME TO "{old}"')
    for name, _ in indexes:
        cursor.execute(f'ALTER INDEX "{name}" RENAME TO "{name[:50]}_before_0011"')
    for name, _ in foreign_keys:
        cursor.execute(f'ALTER TABLE "{old}" RENAME CONSTRAINT "{name}" TO "{name[:50]}_before_0011"')
    cursor.execute(f'ALTER TABLE "{old}" RENAME CONSTRAINT "{table}_pkey" TO "{table[:40]}_pkey_before_0011"')
    partitioning = f" PARTITION BY {partition_by}" if partition_by else ""
    cursor.execute(
        f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY)'
        f"{partitioning}"
    )
    cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{table}_pkey" PRIMARY KEY ({primary_key})')
    for name, definition in foreign_keys:
        cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
    for _, definition in indexes:
        cursor.execute(definition)  # the original statement: same name, now free, on the new table
    return old


def _copy(cursor, table: str, old: str) -> None:
    cursor.execute(f'INSERT INTO "{table}" SELECT * FROM "{old}"')
    cursor.execute(f'DROP TABLE "{old}"')


def _restart_identity(cursor, table: str) -> None:
    sequence = f"pg_get_serial_sequence('\"{table}\"', 'id')"
    cursor.execute(f'SELECT setval({sequence}, coalesce((SELECT max(id) FROM "{table}"), 0) + 1, false)')


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        old_log = _rebuild(cursor, LOG, partition_by="RANGE (received_at)", primary_key="id, received_at")
        old_keys = _rebuild(cursor, KEYS, partition_by="RANGE (bucket)", primary_key="bucket, game_id, event_id")
        # A partition for every day that holds events, and every bucket that holds keys, then the days ahead.
        cursor.execute(f"SELECT DISTINCT (received_at AT TIME ZONE 'UTC')::date FROM \"{old_log}\"")
        days = sorted(day for (day,) in cursor.fetchall())
        quote = schema_editor.connection.ops.quote_name
        for day in days:
            start, end = day.isoformat(), (day + timedelta(days=1)).isoformat()
            cursor.execute(
                f'CREATE TABLE IF NOT EXISTS {quote(logstore.day_partition_name(day))} PARTITION OF "{LOG}" '
                f"FOR VALUES FROM ('{start} 00:00:00+00') TO ('{end} 00:00:00+00')"
            )
        cursor.execute(f'SELECT DISTINCT bucket FROM "{old_keys}"')
        for (bucket,) in cursor.fetchall():
            cursor.execute(
                f'CREATE TABLE IF NOT EXISTS {quote(logstore.bucket_partition_name(bucket))} PARTITION OF "{KEYS}" '
                f"FOR VALUES FROM ({int(bucket)}) TO ({int(bucket) + 1})"
            )
    logstore.ensure_partitions()
    with schema_editor.connection.cursor() as cursor:
        _copy(cursor, LOG, old_log)
        _copy(cursor, KEYS, old_keys)
        _restart_identity(cursor, LOG)


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for table, primary_key in ((LOG, "id"), (KEYS, "bucket, game_id, event_id")):
            old = _rebuild(cursor, table, partition_by=None, primary_key=primary_key)
            _copy(cursor, table, old)  # dropping the partitioned table drops its partitions
        _restart_identity(cursor, LOG)


class Migration(migrations.Migration):
    dependencies = [
        ("events_app", "0010_idempotency_keys"),
    ]

    operations = [
        migrations.RunPython(partition, unpartition, elidable=False),
    ]
