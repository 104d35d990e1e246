"""Per-hour counts of the events the relays send (EventHour): added once per batch, read by the dashboard."""

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.db import connection

from events_app.models import EventHour

_COLUMNS = ["hour", "game_id", "event_type", "platform", "currency", "events", "revenue_base"]
_KEY = ["hour", "game_id", "event_type", "platform", "currency"]


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def add(counts: dict[tuple, tuple[int, Decimal]]) -> None:
    """Add {(hour, game_id, event_type, platform, currency): (events, revenue_base)} in the current transaction.

    One upsert for all groups: a new group is inserted, an existing one grows.
    """
    groups = list(counts.items())
    for start in range(0, len(groups), _GROUPS_PER_STATEMENT):
        _upsert(groups[start : start + _GROUPS_PER_STATEMENT])


# SQLite binds at most 32,766 values per statement; 7 a group.
_GROUPS_PER_STATEMENT = 1000


def _upsert(groups: list[tuple[tuple, tuple[int, Decimal]]]) -> None:
    if not groups:
        return
    fields = {name: EventHour._meta.get_field(name.removesuffix("_id")) for name in _COLUMNS}
    params = []
    for key, (events, revenue) in groups:
        values = dict(zip(_KEY, key, strict=True)) | {"events": events, "revenue_base": revenue}
        params += [fields[name].get_db_prep_save(values[name], connection) for name in _COLUMNS]
    quote = connection.ops.quote_name
    table = quote(EventHour._meta.db_table)
    row = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(quote(name) for name in _COLUMNS)}) VALUES "
            + ", ".join([row] * len(groups))
            + f" ON CONFLICT ({', '.join(quote(name) for name in _KEY)}) DO UPDATE SET "
            f"events = {table}.events + excluded.events, "
            f"revenue_base = {table}.revenue_base + excluded.revenue_base",
            params,
        )


def count_lines(rows: Iterable) -> dict[tuple, tuple[int, Decimal]]:
    """Group log rows (received_at, game_id, payload) by hour, game, type, platform and currency."""
    counts: dict[tuple, tuple[int, Decimal]] = {}
    for row in rows:
        payload = row.payload
        key = (
            hour_of(row.received_at),
            row.game_id,
            payload.get("event_type") or "",
            payload.get("platform") or "",
            payload.get("currency") or "",
        )
        events, revenue = counts.get(key, (0, Decimal(0)))
        base = payload.get("revenue_base")
        counts[key] = (events + 1, revenue + (Decimal(base) if base is not None else Decimal(0)))
    return counts
