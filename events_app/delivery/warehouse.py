"""The warehouse SQL: warehouse/'s files filled in, and the per-type views generated from the event type registry."""

import re
from collections.abc import Mapping
from pathlib import Path

from django.conf import settings

from events_app import event_types
from events_app.delivery.records import LINE_FIELDS
from events_app.event_types import EventType, WarehouseColumn

WAREHOUSE_DIR = Path(settings.BASE_DIR) / "warehouse"
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
ROLE_ARN_PLACEHOLDER = "arn:aws:iam::<aws-account-id>:role/<snowflake-reader-role>"

# The columns of the game_events view (06_view.sql) that the per-type views repeat,
# in its order; test_warehouse checks this against the view as loaded.
EVENT_COLUMNS = LINE_FIELDS[: LINE_FIELDS.index("event_schema_version")]  # the line's fields up to the optional ones
CUSTOM_COLUMNS = ("event_schema_version",)
PRICE_COLUMNS = ("price", "quantity")  # only for a type whose amount is multiplied by a quantity
REVENUE_COLUMNS = ("currency", "revenue", "revenue_base", "base_currency", "fx_rate", "fx_date")
LOAD_COLUMNS = ("file_name", "loaded_at")
VARIANT_COLUMNS = ("properties", "context")  # what a WarehouseColumn path may start from
CUSTOM_VIEW = "game_events_custom"

# A typed column's path below its VARIANT column (`properties:level`, `properties:a.b`)
# and its Snowflake type (`STRING`, `NUMBER(38, 6)`).
_PATH = re.compile(r"(?P<root>\w+):(?P<rest>[A-Za-z_]\w*(?:[.:][A-Za-z_]\w*)*)")
_SQL_TYPE = re.compile(r"[A-Z][A-Z_0-9]*(?:\(\d+(?:, ?\d+)?\))?")
# Snowflake's reserved and limited keywords (docs: "Reserved & limited keywords"): no unquoted column name.
_RESERVED = frozenset(
    (
        "ACCOUNT",
        "ALL",
        "ALTER",
        "AND",
        "ANY",
        "AS",
        "BETWEEN",
        "BY",
        "CASE",
        "CAST",
        "CHECK",
        "COLUMN",
        "CONNECT",
        "CONNECTION",
        "CONSTRAINT",
        "CREATE",
        "CROSS",
        "CURRENT",
        "CURRENT_DATE",
        "CURRENT_TIME",
        "CURRENT_TIMESTAMP",
        "CURRENT_USER",
        "DATABASE",
        "DELETE",
        "DISTINCT",
        "DROP",
        "ELSE",
        "EXISTS",
        "FALSE",
        "FOLLOWING",
        "FOR",
        "FROM",
        "FULL",
        "GRANT",
        "GROUP",
        "GSCLUSTER",
        "HAVING",
        "ILIKE",
        "IN",
        "INCREMENT",
        "INNER",
        "INSERT",
        "INTERSECT",
        "INTO",
        "IS",
        "ISSUE",
        "JOIN",
        "LATERAL",
        "LEFT",
        "LIKE",
        "LOCALTIME",
        "LOCALTIMESTAMP",
        "MINUS",
        "NATURAL",
        "NOT",
        "NULL",
        "OF",
        "ON",
        "OR",
        "ORDER",
        "ORGANIZATION",
        "QUALIFY",
        "REGEXP",
        "REVOKE",
        "RIGHT",
        "RLIKE",
        "ROW",
        "ROWS",
        "SAMPLE",
        "SCHEMA",
        "SELECT",
        "SET",
        "SOME",
        "START",
        "TABLE",
        "TABLESAMPLE",
        "THEN",
        "TO",
        "TRIGGER",
        "TRUE",
        "TRY_CAST",
        "UNION",
        "UNIQUE",
        "UPDATE",
        "USING",
        "VALUES",
        "VIEW",
        "WHEN",
        "WHENEVER",
        "WHERE",
        "WITH",
    )
)


def warehouse_files() -> list[Path]:
    """Return the SQL files of warehouse/, in the order they are run."""
    return sorted(WAREHOUSE_DIR.glob("[0-9][0-9]_*.sql"))


def stream_pattern(stream: str) -> str:
    """Return the COPY PATTERN matching the S3 objects Firehose writes for `stream`.

    Firehose names them `<stream>-<version>-<YYYY-MM-DD-HH-MM-SS>-<random>`, under
    `<prefix>YYYY/MM/DD/HH/` by default.
    """
    literal = "".join(char if char.isalnum() or char in "_-" else f"[{char}]" for char in stream)
    return f".*{literal}-[0-9]+-[0-9]{{4}}(-[0-9]{{2}}){{5}}-.*"


def sql_string(value: str) -> str:
    """Return `value` safe inside a single-quoted Snowflake string (where a backslash escapes too)."""
    return value.replace("\\", "\\\\").replace("'", "''")


def type_view_name(event_type: str) -> str:
    """Return the name of the per-type view of `event_type`."""
    return f"game_events_{event_type}"


def _revenue_columns(event_type: EventType) -> tuple[str, ...]:
    """Return the revenue columns of game_events that apply to `event_type` (none without revenue)."""
    money = event_type.money
    if money is None:
        return ()
    return (PRICE_COLUMNS if money.quantity else ()) + REVENUE_COLUMNS


def type_view_columns(event_type: EventType) -> tuple[str, ...]:
    """Return the columns of the per-type view of `event_type`, in order."""
    typed = tuple(column.name for column in event_type.warehouse_columns)
    return EVENT_COLUMNS + _revenue_columns(event_type) + typed + LOAD_COLUMNS


def _typed_column_sql(event_type: EventType, column: WarehouseColumn, taken: set[str]) -> str:
    """Return the SELECT item of one typed column, read from the game_events view; raise ValueError if unusable.

    The path is relative to the record (`properties:level`); the view exposes
    `properties` as a column, and below the first level Snowflake takes dots.
    """
    where = f"Warehouse column {column.name!r} of event type {event_type.name!r}"
    if not IDENTIFIER.fullmatch(column.name) or "$" in column.name or column.name.upper() in _RESERVED:
        raise ValueError(f"{where}: the name is not a plain, unreserved Snowflake identifier.")
    if column.name in taken:
        raise ValueError(f"{where}: the name is already a column of the view.")
    path = _PATH.fullmatch(column.path)
    if path is None or path["root"] not in VARIANT_COLUMNS:
        raise ValueError(f"{where}: the path {column.path!r} is not <{'|'.join(VARIANT_COLUMNS)}>:<key>[.<key>...].")
    if not _SQL_TYPE.fullmatch(column.sql_type):
        raise ValueError(f"{where}: {column.sql_type!r} is not a Snowflake type.")
    taken.add(column.name)
    return f"{path['root']}:{path['rest'].replace(':', '.')}::{column.sql_type} AS {column.name}"


def _view_sql(*, name: str, comment: str, items: list[str], where: str) -> str:
    select = ",\n".join(f"  {item}" for item in items)
    return (
        f"CREATE OR REPLACE VIEW {name}\n  COMMENT = '{sql_string(comment)}'\nAS\n"
        f"SELECT\n{select}\nFROM game_events\nWHERE {where};"
    )


def type_views_sql(registry: Mapping[str, EventType] | None = None) -> str:
    """Return the CREATE VIEW statements of the per-type views, generated from the event type registry.

    One view per built-in type (game_events_<type>: the event's columns, the revenue
    columns when the type carries revenue, then its `warehouse_columns`), and one for
    every custom type (game_events_custom, with event_schema_version; properties stay
    VARIANT). Raises ValueError for a typed column the view cannot have.
    """
    registry = event_types.REGISTRY if registry is None else registry
    if "custom" in registry:
        raise ValueError(f"A built-in type named 'custom' would take {CUSTOM_VIEW}, the view of the custom types.")
    views = []
    for event_type in registry.values():
        if not IDENTIFIER.fullmatch(event_type.name) or "$" in event_type.name:
            raise ValueError(f"The event type {event_type.name!r} cannot name a view.")
        common = [*EVENT_COLUMNS, *_revenue_columns(event_type)]
        taken = {*common, *CUSTOM_COLUMNS, *LOAD_COLUMNS}
        typed = [_typed_column_sql(event_type, column, taken) for column in event_type.warehouse_columns]
        views.append(
            _view_sql(
                name=type_view_name(event_type.name),
                comment=f"Player event tracker: {event_type.name} events, one row per (game, event_id), "
                "typed from the event type registry",
                items=[*common, *typed, *LOAD_COLUMNS],
                where=f"event_type = '{sql_string(event_type.name)}'",
            )
        )
    builtins = ", ".join(f"'{sql_string(name)}'" for name in registry)
    views.append(
        _view_sql(
            name=CUSTOM_VIEW,
            comment="Player event tracker: events of the custom types of each game, one row per (game, event_id); "
            "properties VARIANT, validated by the JSON Schema version event_schema_version",
            items=[*EVENT_COLUMNS, *CUSTOM_COLUMNS, *LOAD_COLUMNS],
            where=f"event_type NOT IN ({builtins})",
        )
    )
    return "\n\n".join(views)


def render_warehouse_sql(
    *,
    bucket: str,
    prefix: str,
    stream: str,
    database: str = "ANALYTICS",
    schema: str = "PLAYER_EVENTS",
    storage_integration: str = "GAME_EVENTS_S3",
    aws_role_arn: str = ROLE_ARN_PLACEHOLDER,
) -> dict[str, str]:
    """Return {file name: SQL} for every file of warehouse/, placeholders filled in (the per-type views too)."""
    for name, value in (("database", database), ("schema", schema), ("storage integration", storage_integration)):
        if not IDENTIFIER.fullmatch(value):
            raise ValueError(f"The {name} {value!r} is not a plain Snowflake identifier.")
    values = {
        "bucket": sql_string(bucket),
        "prefix": sql_string(prefix),
        "stream": sql_string(stream),
        "stream_pattern": sql_string(stream_pattern(stream)),
        "database": database,
        "schema": schema,
        "storage_integration": storage_integration,
        "aws_role_arn": sql_string(aws_role_arn),
        "type_views": type_views_sql(),
    }
    rendered = {}
    for path in warehouse_files():
        rendered[path.name] = PLACEHOLDER.sub(lambda match: values[match.group(1)], path.read_text())
    return rendered
