"""Storing events: the log insert behind one function, and the rule of what a row can hold."""

import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import orjson
from django.db import DEFAULT_DB_ALIAS, DataError, connections, models

from events_app import idempotency as keys
from events_app.db import write_transaction
from events_app.event_types.fields import NUL_MESSAGE, encoded_has_nul, nest_error, nul_paths
from events_app.idempotency import Repeat
from events_app.models import Event
from sdk.contract import FORBIDDEN_CHARACTERS

logger = logging.getLogger(__name__)

# --- Inserting log rows ----------------------------------------------------------
#
# Raw SQL, per-vendor conversions and the driver cursor live here, behind
# insert_events(), so that ingestion reads as rules. Unknown vendors take the plain
# ORM path, which stores the same rows (tests/ingest/test_storage.py checks both).

# Not the primary key, nor what the database fills in itself (the transaction id).
_INSERT_FIELDS = [
    model_field
    for model_field in Event._meta.concrete_fields
    if not model_field.primary_key and not model_field.has_db_default()
]
# Columns whose Python values every supported driver takes as they are.
_RAW_TYPES = {"CharField", "TextField", "PositiveIntegerField", "PositiveSmallIntegerField", "ForeignKey"}


def _sqlite_datetime(value: datetime | None) -> str | None:
    # What Django's SQLite backend stores for an aware datetime: naive UTC text.
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ")


def _sqlite_uuid(value: uuid.UUID | None) -> str | None:
    return None if value is None else value.hex


def _json_text(value: object) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


_SQLITE_CONVERTERS = {"DateTimeField": _sqlite_datetime, "UUIDField": _sqlite_uuid, "JSONField": _json_text}


@dataclass(frozen=True)
class _InsertPlan:
    """How to insert audit rows on one database: the statement and each column's conversion."""

    vendor: str
    head: str  # INSERT INTO ... up to the rows
    row_placeholders: str  # one row's "(?, ...)", repeated per row (SQLite only)
    tail: str  # RETURNING id, game_id, event_id
    columns: list  # (attribute name, converter or None, memoise: the same value recurs across rows)


@functools.cache
def _insert_plan(vendor: str, alias: str) -> _InsertPlan:
    connection = connections[alias]
    quote = connection.ops.quote_name
    names = ", ".join(quote(model_field.column) for model_field in _INSERT_FIELDS)
    pk_column = quote(Event._meta.pk.column)
    game_column = quote(Event._meta.get_field("game").column)
    event_id_column = quote(Event._meta.get_field("event_id").column)
    tail = f" RETURNING {pk_column}, {game_column}, {event_id_column}"
    columns = []
    for model_field in _INSERT_FIELDS:
        internal = model_field.get_internal_type()
        if internal in _RAW_TYPES or (vendor == "postgresql" and internal in ("DateTimeField", "UUIDField")):
            converter = None
        elif vendor == "sqlite" and internal in _SQLITE_CONVERTERS:
            converter = _SQLITE_CONVERTERS[internal]
        elif vendor == "postgresql" and internal == "JSONField":
            converter = _json_text  # cast to jsonb by the statement
        else:
            converter = functools.partial(_prep_with_field, model_field, alias)
        columns.append((model_field.attname, converter, internal == "DateTimeField"))
    table = quote(Event._meta.db_table)
    if vendor == "postgresql":
        # One statement per request, each column an array parameter: the SQL text stays
        # short, so it is parsed and planned once per process; and the partitioned log
        # is entered once per request, not once per row (per-row statements cost ~2x).
        arrays = ", ".join(f"%s::{_array_type(model_field, connection)}" for model_field in _INSERT_FIELDS)
        head = f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays})"
        return _InsertPlan(vendor, head, "", tail, columns)
    # "?" as sqlite3 takes it: the driver is called directly, without Django's "%s" rewriting.
    row = "(" + ", ".join(["?"] * len(_INSERT_FIELDS)) + ")"
    return _InsertPlan(vendor, f"INSERT INTO {table} ({names}) VALUES ", row, tail, columns)


def _array_type(model_field, connection) -> str:
    """Return the PostgreSQL array type of a column's values as sent (JSON goes as text, then cast)."""
    db_type = model_field.db_type(connection)
    return "text[]::jsonb[]" if db_type == "jsonb" else f"{db_type}[]"


def _prep_with_field(model_field, alias: str, value: object) -> object:
    return None if value is None else model_field.get_db_prep_save(value, connections[alias])


@dataclass
class InsertResult:
    """What insert_events did: the rows it stored, those no database could hold (with why), the players screened out."""

    inserted: dict[uuid.UUID, int] = field(default_factory=dict)  # event_id: pk
    # event_id: errors in DRF's shape, named by the event's own fields where a column is one
    refused: dict[uuid.UUID, dict] = field(default_factory=dict)
    suppressed: set[str] = field(default_factory=set)  # players whose rows screen() left out
    # event_id: the stored event a row repeats (by event_id or purchase transaction_id), not stored again
    repeats: dict[uuid.UUID, Repeat] = field(default_factory=dict)


def insert_events(
    rows: list[dict],
    *,
    screen: Callable[..., set[str]] | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> InsertResult:
    """Insert one game's log rows (column values by attribute name, distinct ids); return what became of each.

    Rows that repeat an event the game stored within the idempotency window (by
    event_id, or by purchase transaction_id: events_app.idempotency) are not stored
    again and come back in `repeats`, and so are the rows of the players
    `screen(player_ids=...)` returns left out: both run inside the write
    transaction, before the insert, so what they read cannot change before the rows
    are stored (the transaction holds the game's shared erasure lock from its first
    statement, idempotency.begin, so a screen need not take it). A row a column
    cannot hold (see unstorable) is refused alone, on every database alike; should
    the database still refuse a statement with a data error, each row is tried on its
    own so that only the guilty ones are refused. The values are converted before the
    write lock is taken, so other writers wait only for the database's own work.
    On SQLite and PostgreSQL one statement does it; elsewhere the ORM.
    """
    result = InsertResult()
    for row in rows:
        errors = unstorable(row)
        if errors:
            result.refused[row["event_id"]] = errors
    if result.refused:
        rows = [row for row in rows if row["event_id"] not in result.refused]
    if not rows:
        return result
    connection = connections[using]
    if connection.vendor not in ("sqlite", "postgresql"):
        with write_transaction(using):
            moment = keys.begin(game_id=rows[0]["game_id"])
            result.suppressed = _screened(screen, rows)
            kept_rows = [row for row in rows if row["player_id"] not in result.suppressed]
            kept_rows, _ = _claim_keys(kept_rows, [None] * len(kept_rows), moment=moment, result=result)
            result.inserted = insert_events_orm(kept_rows, using=using)
        return result
    plan = _insert_plan(connection.vendor, using)
    params = _sql_params(plan, rows)
    try:
        with write_transaction(using):
            moment = keys.begin(game_id=rows[0]["game_id"])
            result.suppressed = _screened(screen, rows)
            kept_rows, kept_params = rows, params
            if result.suppressed:
                pairs = zip(rows, params, strict=True)
                kept = [(row, values) for row, values in pairs if row["player_id"] not in result.suppressed]
                kept_rows, kept_params = [row for row, _ in kept], [values for _, values in kept]
            kept_rows, kept_params = _claim_keys(kept_rows, kept_params, moment=moment, result=result)
            result.inserted = _insert(plan, kept_rows, kept_params, using=using) if kept_rows else {}
    except DataError as exc:
        # Rolled back whole (PostgreSQL aborts a transaction at its first error), so
        # the happy path pays for no savepoint; only now is each row tried alone.
        logger.warning("insert of %d events refused (%s): trying them one by one", len(rows), _error_code(exc))
        result.repeats.clear()
        _insert_one_by_one(plan, rows, params, result, screen=screen, using=using)
    return result


def _insert_one_by_one(
    plan: _InsertPlan,
    rows: list[dict],
    params: list[list],
    result: InsertResult,
    *,
    screen: Callable[..., set[str]] | None,
    using: str,
) -> None:
    """Insert each row in its own transaction, refusing those the database refuses with its reason."""
    # Screened again, row by row: the first transaction (and the lock it held) rolled back.
    result.suppressed = set()
    for row, values in zip(rows, params, strict=True):
        try:
            with write_transaction(using):
                moment = keys.begin(game_id=row["game_id"])
                left_out = _screened(screen, [row])
                if left_out:
                    result.suppressed |= left_out
                    continue
                kept_rows, kept_params = _claim_keys([row], [values], moment=moment, result=result)
                if kept_rows:
                    result.inserted.update(_insert(plan, kept_rows, kept_params, using=using))
        except DataError as exc:
            reason = _first_line(exc)
            logger.warning("event %s refused by the database (%s)", row["event_id"], _error_code(exc))
            result.refused[row["event_id"]] = {"non_field_errors": [f"Cannot be stored: {reason}."]}


def _claim_keys(rows: list[dict], params: list, *, moment: float, result: InsertResult) -> tuple[list[dict], list]:
    """Claim the rows' idempotency keys; note the repeats in `result`; return the new rows and their params."""
    if not rows:
        return rows, params
    claimed = keys.claim(rows, game_id=rows[0]["game_id"], moment=moment)
    for index, repeat in claimed.repeats.items():
        result.repeats[rows[index]["event_id"]] = repeat
    return [rows[index] for index in claimed.new], [params[index] for index in claimed.new]


def _screened(screen: Callable[..., set[str]] | None, rows: list[dict]) -> set[str]:
    """Return the players of `rows` that `screen` leaves out (none without a screen)."""
    return screen(player_ids={row["player_id"] for row in rows}) if screen is not None else set()


def _error_code(exc: Exception) -> str:
    # For the log: the SQLSTATE (22P05, 22003) or the class, never the database's
    # message, which may quote the value ("invalid input syntax ...: "<the value>"").
    return getattr(exc.__cause__, "sqlstate", None) or exc.__class__.__name__


def _first_line(exc: Exception) -> str:
    # The database's own sentence ("numeric field overflow"); its DETAIL lines quote the data.
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0].rstrip(".")


# --- What no column can hold --------------------------------------------------------
#
# PostgreSQL refuses these where SQLite silently stores them; refusing them here
# keeps one rule on both, and names the event's field rather than the database's error.

# Columns the event carries under its own name; the others are derived from its properties.
_EVENT_FIELD_COLUMNS = {"event_type", "player_id", "platform"}
TOO_LONG_MESSAGE = "Is {length} characters; at most {max_length} can be stored."
TOO_LARGE_MESSAGE = "{value} is too large to store (at most {digits} digits before the point)."
FORBIDDEN_MESSAGE = "Contains a NUL character or a lone surrogate, which cannot be stored."


@functools.cache
def _column_checks() -> list[tuple[str, str, object]]:
    """Return (attribute, kind, limit) for each insert column whose values may break its type."""
    checks = []
    for model_field in _INSERT_FIELDS:
        if isinstance(model_field, models.CharField | models.TextField):
            checks.append((model_field.attname, "text", model_field.max_length))
        elif isinstance(model_field, models.DecimalField):
            checks.append((model_field.attname, "decimal", model_field.max_digits - model_field.decimal_places))
        elif isinstance(model_field, models.JSONField):
            checks.append((model_field.attname, "json", None))
    return checks


def unstorable(row: dict) -> dict:
    """Return why some column of `row` cannot hold its value, as errors by the event's fields; {} if none.

    Text with a NUL or a lone surrogate, text over its column's length, a decimal
    with more integer digits than its column, a NUL anywhere in the JSON payload.
    On every event's way in: about 3 us for a purchase.
    """
    errors: dict = {}
    for name, kind, limit in _column_checks():
        value = row.get(name)
        if value is None:
            continue
        place = [name] if name in _EVENT_FIELD_COLUMNS else []
        prefix = "" if place else f"{name}: "  # a derived column is named in the message
        if kind == "text" and isinstance(value, str):
            if FORBIDDEN_CHARACTERS.search(value):
                nest_error(errors, place, prefix + FORBIDDEN_MESSAGE)
            elif limit is not None and len(value) > limit:
                nest_error(errors, place, prefix + TOO_LONG_MESSAGE.format(length=len(value), max_length=limit))
        elif kind == "decimal" and isinstance(value, Decimal) and value.is_finite():
            if value != 0 and value.adjusted() + 1 > limit:
                nest_error(errors, place, prefix + TOO_LARGE_MESSAGE.format(value=value, digits=limit))
        elif kind == "json":
            try:
                has_nul = encoded_has_nul(orjson.dumps(value))
            except TypeError as exc:  # orjson's JSONEncodeError: a lone surrogate, an integer past 64 bits
                nest_error(errors, place, f"Cannot be encoded as JSON: {exc}.")
                continue
            if has_nul:
                for path in nul_paths(value):  # a payload's keys are the event's fields
                    nest_error(errors, [str(part) for part in path[:2]], NUL_MESSAGE)
    return errors


def _insert(plan: _InsertPlan, rows: list[dict], params: list[list], *, using: str) -> dict[uuid.UUID, int]:
    """Insert `rows` (converted as `params`) in the current transaction; return {event_id: pk} of those stored."""
    returned: dict[tuple[int, uuid.UUID], int] = {}
    for start in range(0, len(params), _MAX_ROWS_PER_STATEMENT):
        returned.update(_sql_execute(plan, params[start : start + _MAX_ROWS_PER_STATEMENT], using=using))
    return {
        row["event_id"]: returned[(row["game_id"], row["event_id"])]
        for row in rows
        if (row["game_id"], row["event_id"]) in returned
    }


# SQLite binds at most 32,766 values per statement; 18 columns a row.
_MAX_ROWS_PER_STATEMENT = 1000


def insert_rows_sql(rows: list[dict], *, using: str = DEFAULT_DB_ALIAS) -> dict[uuid.UUID, int]:
    """Insert log rows with one plain statement (SQLite, PostgreSQL) in the current transaction; return their pks.

    Plain SQL because the ORM's per-value preparation cost more than the database's
    work; values are converted into the same forms the ORM stores. No key is
    claimed here: insert_events does that first.
    """
    plan = _insert_plan(connections[using].vendor, using)
    return _insert(plan, rows, _sql_params(plan, rows), using=using)


def _sql_params(plan: _InsertPlan, rows: list[dict]) -> list[list]:
    """Return each row's values in the statement's column order, converted for the driver."""
    params = [[] for _ in rows]
    for name, convert, memoise in plan.columns:
        if convert is None:
            for values, row in zip(params, rows, strict=True):
                values.append(row[name])
        elif memoise:  # received_at, next_attempt_at, claimed_until: one value for the whole request
            seen: dict = {}
            for values, row in zip(params, rows, strict=True):
                value = row[name]
                if value not in seen:
                    seen[value] = convert(value)
                values.append(seen[value])
        else:
            for values, row in zip(params, rows, strict=True):
                values.append(convert(row[name]))
    return params


def _sql_execute(plan: _InsertPlan, params: list[list], *, using: str) -> dict[tuple[int, uuid.UUID], int]:
    """Run the insert for `params`; return {(game_id, event_id): pk} of the rows it stored."""
    connection = connections[using]
    connection.ensure_connection()
    # Django's error translation (so a lost connection answers 503, not 500).
    with connection.wrap_database_errors:
        if plan.vendor == "postgresql":
            columns = [list(column) for column in zip(*params, strict=True)]
            with connection.cursor() as cursor:
                cursor.cursor.execute(plan.head + plan.tail, columns)  # psycopg's own: no "%s" rewriting on the way
                returned = cursor.cursor.fetchall()
        else:
            sql = plan.head + ", ".join([plan.row_placeholders] * len(params)) + plan.tail
            returned = connection.connection.execute(sql, [value for row in params for value in row]).fetchall()
    # A UUID comes back as hex text from SQLite and as a UUID from PostgreSQL.
    return {
        (game_id, value if isinstance(value, uuid.UUID) else uuid.UUID(value)): pk for pk, game_id, value in returned
    }


def insert_events_orm(rows: list[dict], *, using: str = DEFAULT_DB_ALIAS) -> dict[uuid.UUID, int]:
    """Insert log rows through the ORM (databases other than SQLite and PostgreSQL); return their pks."""
    # One by one: not every database returns the keys of a bulk insert.
    events = [Event.objects.using(using).create(**row) for row in rows]
    return {event.event_id: event.pk for event in events}
