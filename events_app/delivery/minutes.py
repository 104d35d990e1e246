"""Per-minute and per-hour counts of the events the relays send (EventMinute, EventHour): added once per batch."""

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.db import connection

from events_app.models import EventHour, EventMinute

_GROUP = ["game_id", "event_type", "platform", "currency"]


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def add(counts: dict[tuple, tuple[int, Decimal]]) -> None:
    """Add {(minute, game_id, event_type, platform, currency): (events, revenue_base)} in the current transaction.

    To their minutes and to their hours: one upsert for each (a new group is inserted,
    an existing one grows).
    """
    hours: dict[tuple, tuple[int, Decimal]] = {}
    for (minute, *group), (events, revenue) in counts.items():
        key = (minute.replace(minute=0), *group)
        so_far = hours.get(key, (0, Decimal(0)))
        hours[key] = (so_far[0] + events, so_far[1] + revenue)
    for model, period, grouped in ((EventMinute, "minute", counts), (EventHour, "hour", hours)):
        groups = list(grouped.items())
        for start in range(0, len(groups), _GROUPS_PER_STATEMENT):
            _upsert(model, period, groups[start : start + _GROUPS_PER_STATEMENT])


# SQLite binds at most 32,766 values per statement; 7 a group.
_GROUPS_PER_STATEMENT = 1000


def _upsert(model, period: str, groups: list[tuple[tuple, tuple[int, Decimal]]]) -> None:
    if not groups:
        return
    key_columns = [period, *_GROUP]
    columns = [*key_columns, "events", "revenue_base"]
    fields = {name: model._meta.get_field(name.removesuffix("_id")) for name in columns}
    params = []
    for key, (events, revenue) in groups:
        values = dict(zip(key_columns, key, strict=True)) | {"events": events, "revenue_base": revenue}
        params += [fields[name].get_db_prep_save(values[name], connection) for name in columns]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(quote(name) for name in columns)}) VALUES "
            + ", ".join([row] * len(groups))
            + f" ON CONFLICT ({', '.join(quote(name) for name in key_columns)}) DO UPDATE SET "
            f"events = {table}.events + excluded.events, "
            f"revenue_base = {table}.revenue_base + excluded.revenue_base",
            params,
        )


def count_lines(rows: Iterable) -> dict[tuple, tuple[int, Decimal]]:
    """Group log rows (received_at, game_id, payload) by minute, game, type, platform and currency."""
    counts: dict[tuple, tuple[int, Decimal]] = {}
    for row in rows:
        payload = row.payload
        key = (
            minute_of(row.received_at),
            row.game_id,
            payload.get("event_type") or "",
            payload.get("platform") or "",
            payload.get("currency") or "",
        )
        events, revenue = counts.get(key, (0, Decimal(0)))
        base = payload.get("revenue_base")
        counts[key] = (events + 1, revenue + (Decimal(base) if base is not None else Decimal(0)))
    return counts
