"""PostgreSQL test databases: a DEFAULT partition for the log and the event keys, in tests only.

Production has none (a day goes whole, and a missing day must show, not fill a
catch-all): migrate makes the days around now and ensure_partitions keeps them ahead.
Tests store events of any date (40 days ago, next year), so their databases get a
DEFAULT partition beside the real days.
"""

from django.db import connection

from events_app import logstore
from events_app.models import Event, EventKey


def add_default_partitions() -> None:
    """Give the log and the event keys a DEFAULT partition (PostgreSQL, once migrated to partitions)."""
    if not logstore.partitioned():
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in (Event._meta.db_table, EventKey._meta.db_table):
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {quote(table + '_default')} PARTITION OF {quote(table)} DEFAULT"
            )
