"""Where a time range starts in the log's ids (SQLite, which has no index on received_at)."""

from datetime import datetime, timedelta

from django.db import connection

from events_app.models import Event

# Ids follow arrival, and received_at is stamped at arrival: out of order by at most this much.
ARRIVAL_SLACK = timedelta(minutes=5)


def first_id_since(since: datetime) -> int:
    """Return a lower bound of the ids of the events received since `since` (SQLite), in one query.

    SQLite's log has no index on received_at: a bounded range is found by a binary search
    over the primary key (ids follow arrival order), a few dozen seeks, so that a filter
    matching few rows stops at the range's start instead of reading the whole table.
    PostgreSQL needs none of it: it reads only the day partitions of the range.
    """
    table = connection.ops.quote_name(Event._meta.db_table)
    moment = connection.ops.adapt_datetimefield_value(since - ARRIVAL_SLACK)
    probe = f"(SELECT received_at FROM {table} WHERE id >= (lo + hi) / 2 ORDER BY id LIMIT 1)"
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH RECURSIVE search(lo, hi) AS ("
            f"SELECT (SELECT MIN(id) FROM {table}), (SELECT MAX(id) FROM {table}) + 1 "
            f"UNION ALL SELECT CASE WHEN {probe} >= %s THEN lo ELSE (lo + hi) / 2 + 1 END, "
            f"CASE WHEN {probe} >= %s THEN (lo + hi) / 2 ELSE hi END FROM search WHERE lo < hi"
            ") SELECT MIN(hi) FROM search",
            [moment, moment],
        )
        row = cursor.fetchone()
    return row[0] if row and row[0] is not None else 0
