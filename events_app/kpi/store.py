"""The KPI tables' statements: counters added to days, players' activity read (locked) and written, set-based.

Upserts in the form of events_app.delivery.minutes (INSERT ... ON CONFLICT, on SQLite
and PostgreSQL alike), a few statements per relay batch whatever its size.
"""

from collections import Counter
from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from django.db import connection

from events_app.kpi.activity import Activity
from events_app.models import KpiDay, KpiPlayer, SuppressedPlayer

# The counters of a day, in the table's column order.
COUNTERS = (
    "dau",
    "new_players",
    "sessions",
    "session_ends",
    "session_ms",
    "purchases",
    "paying_players",
    "revenue_base",
    "ad_revenue_base",
    "retained_d1",
    "retained_d7",
    "retained_d30",
)
MONEY = ("revenue_base", "ad_revenue_base")

# SQLite binds at most 32,766 values per statement: rows per statement stay well below.
_ROWS_PER_STATEMENT = 1000


def add_to_days(deltas: Counter) -> None:
    """Add {(game_id, day, counter): amount} to the days' rows in the current transaction, creating missing days."""
    rows: dict[tuple[int, date], dict] = {}
    for (game_id, day, counter), amount in deltas.items():
        if amount:
            rows.setdefault((game_id, day), {})[counter] = amount
    columns = ["game_id", "day", *COUNTERS]
    values = [
        [game_id, day, *(counters.get(name, Decimal(0) if name in MONEY else 0) for name in COUNTERS)]
        for (game_id, day), counters in sorted(rows.items())  # one order, so concurrent writers never deadlock
    ]
    table = connection.ops.quote_name(KpiDay._meta.db_table)
    grow = ", ".join(f"{_q(name)} = {table}.{_q(name)} + excluded.{_q(name)}" for name in COUNTERS)
    _insert(KpiDay, columns, values, conflict=["game_id", "day"], update=grow)


def read_players(pairs: Iterable[tuple[int, str]], *, lock: bool) -> dict[tuple[int, str], Activity]:
    """Return the stored activity of those (game_id, player_id) pairs that have some; `lock`: hold their rows (PG).

    Plain SQL, a statement per thousand players: on every relay batch, where building
    the ORM's query and rows cost more than the database's work.
    """
    wanted = sorted(set(pairs))
    found: dict[tuple[int, str], Activity] = {}
    table = connection.ops.quote_name(KpiPlayer._meta.db_table)
    locking = " FOR UPDATE" if lock and connection.features.has_select_for_update else ""
    for start in range(0, len(wanted), _ROWS_PER_STATEMENT):
        chunk = wanted[start : start + _ROWS_PER_STATEMENT]
        asked = set(chunk)
        games, players = _in_list([game_id for game_id, _ in asked]), _in_list([player for _, player in asked])
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT game_id, player_id, first_day, active, paying FROM {table} "
                f"WHERE game_id IN ({games[0]}) AND player_id IN ({players[0]}) "
                f"ORDER BY game_id, player_id{locking}",  # one order, so concurrent lockers never deadlock
                [*games[1], *players[1]],
            )
            for game_id, player_id, first_day, active, paying in cursor.fetchall():
                if (game_id, player_id) in asked:  # the filter is a cross product of games and ids
                    if isinstance(first_day, str):  # SQLite
                        first_day = date.fromisoformat(first_day)
                    found[(game_id, player_id)] = Activity.load(first_day, active, paying)
    return found


def suppressed(pairs: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
    """Return which (game_id, player_id) pairs are suppressed (erased), a statement per thousand players."""
    wanted = sorted(set(pairs))
    found: set[tuple[int, str]] = set()
    table = connection.ops.quote_name(SuppressedPlayer._meta.db_table)
    for start in range(0, len(wanted), _ROWS_PER_STATEMENT):
        chunk = wanted[start : start + _ROWS_PER_STATEMENT]
        games, players = _in_list([game_id for game_id, _ in chunk]), _in_list([player for _, player in chunk])
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT game_id, player_id FROM {table} WHERE game_id IN ({games[0]}) AND player_id IN ({players[0]})",
                [*games[1], *players[1]],
            )
            found |= set(cursor.fetchall()) & set(chunk)
    return found


def _in_list(values: list) -> tuple[str, list]:
    distinct = sorted(set(values))
    return ", ".join(["%s"] * len(distinct)), distinct


def write_players(states: dict[tuple[int, str], Activity]) -> None:
    """Store each player's activity whole (insert or replace); the caller holds their rows or the write lock."""
    values = []
    day = connection.ops.adapt_datefield_value
    for (game_id, player_id), activity in sorted(states.items()):
        active, paying = activity.dump()
        values.append([game_id, player_id, day(activity.first_day), day(activity.last_day), active, paying])
    columns = ["game_id", "player_id", "first_day", "last_day", "active", "paying"]
    replace = ", ".join(f"{_q(name)} = excluded.{_q(name)}" for name in columns[2:])
    # Values ready for the driver already (ints, text, adapted dates, bytes): a thousand players
    # a batch would otherwise spend most of the statement's time in get_db_prep_save.
    _insert(KpiPlayer, columns, values, conflict=["game_id", "player_id"], update=replace, prepared=True)


def delete_players(game_id: int, player_ids: list[str]) -> int:
    """Delete the players' activity rows; return how many there were."""
    return KpiPlayer.objects.filter(game_id=game_id, player_id__in=player_ids).delete()[0]


def _insert(
    model, columns: list[str], values: list[list], *, conflict: list[str], update: str, prepared: bool = False
) -> None:
    fields = {name: model._meta.get_field(name) for name in columns}  # by attname too: game_id
    table = connection.ops.quote_name(model._meta.db_table)
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    for start in range(0, len(values), _ROWS_PER_STATEMENT):
        chunk = values[start : start + _ROWS_PER_STATEMENT]
        if prepared:
            params = [value for one in chunk for value in one]
        else:
            params = [
                fields[name].get_db_prep_save(value, connection)
                for one in chunk
                for name, value in zip(columns, one, strict=True)
            ]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(_q(name) for name in columns)}) VALUES "
                + ", ".join([row] * len(chunk))
                + f" ON CONFLICT ({', '.join(_q(name) for name in conflict)}) DO UPDATE SET {update}",
                params,
            )


def _q(name: str) -> str:
    return connection.ops.quote_name(name)
