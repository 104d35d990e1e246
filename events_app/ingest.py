"""Ingestion: validate events, drop duplicates, commit audit rows, then hand them to delivery."""

import functools
import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import orjson
from django.db import DatabaseError, connections
from rest_framework import serializers

from . import breaker, conf, delivery
from .dbwrite import write_transaction
from .event_types import REGISTRY
from .models import ApiKey, DeliveryState, DuplicateTally, Event
from .records import build_payload
from .rejections import record_rejections
from .serializers import EventSerializer

logger = logging.getLogger(__name__)

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"


@dataclass
class IngestResult:
    """What happened to each submitted event, in submission order."""

    results: list[dict] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0


def ingest_events(
    *,
    api_key: ApiKey,
    raw_events: list,
    received_at: datetime,
    batch_sent_at: datetime | None = None,
) -> IngestResult:
    """Validate and store `raw_events` for the key's game; return a result per event.

    Returns only after the accepted events' audit rows are committed. Invalid events
    are rejected one by one without affecting the others; an `event_id` or purchase
    `transaction_id` already stored for the game (or earlier in the same call) makes a
    duplicate, stored and forwarded once only.
    """
    game = api_key.game
    serializer = _event_serializer({"received_at": received_at, "batch_sent_at": batch_sent_at, "game": game})
    # While Firehose is failing (breaker open) requests only store; the worker sends.
    inline = conf.inline_delivery() and breaker.inline_allowed()
    # Rows a request will forward itself are stored already leased to it, so the
    # worker leaves them alone unless the request dies before recording the outcome.
    claim_token = uuid.uuid4() if inline else None
    claimed_until = received_at + timedelta(seconds=conf.claim_lease_seconds()) if inline else None

    outcome = IngestResult(results=[None] * len(raw_events))
    rows: dict[int, dict] = {}
    rejected: list[tuple[object, dict]] = []
    for index, raw in enumerate(raw_events):
        try:
            data = serializer.run_validation(raw)
        except serializers.ValidationError as exc:
            outcome.results[index] = {"index": index, "status": REJECTED, "errors": exc.detail}
            outcome.rejected += 1
            rejected.append((raw, exc.detail))
            continue
        event_id = data.get("event_id") or uuid.uuid4()
        payload = build_payload(event=data, event_id=str(event_id), game_slug=game.slug)
        rows[index] = _row(
            game_id=game.pk, event_id=event_id, data=data, payload=payload,
            claim_token=claim_token, claimed_until=claimed_until,
        )  # fmt: skip

    stored = _store(rows=rows)
    for index, row in rows.items():
        status = ACCEPTED if index in stored else DUPLICATE
        outcome.results[index] = {"index": index, "event_id": str(row["event_id"]), "status": status}
        if status == ACCEPTED:
            outcome.accepted += 1
        else:
            outcome.duplicates += 1
    logger.info(
        "ingested game=%s accepted=%d duplicates=%d rejected=%d",
        game.slug, outcome.accepted, outcome.duplicates, outcome.rejected,
    )  # fmt: skip

    record_rejections(game=game, received_at=received_at, rejected=rejected)
    if outcome.duplicates:
        _tally_duplicates(game_id=game.pk, received_at=received_at, duplicates=outcome.duplicates)

    if inline and stored:
        _forward_now(game_id=game.pk, event_ids=[rows[index]["event_id"] for index in stored], claim_token=claim_token)
    return outcome


def _forward_now(*, game_id: int, event_ids: list[uuid.UUID], claim_token: uuid.UUID) -> None:
    """Send the events this request just committed, never failing the request.

    The rows are durable already: answering 5xx now would make clients retry, and a
    retry of an event sent without an event_id would be stored twice. Whatever goes
    wrong here, the rows keep their lease and the worker sends them when it expires.
    """
    try:
        events = list(
            Event.objects.filter(game_id=game_id, event_id__in=event_ids, claim_token=claim_token).only(
                "pk", "payload", "attempts"
            )
        )
        delivery.deliver_claimed(events=events, claim_token=claim_token, inline=True)
    except Exception:
        logger.exception("in-request forwarding failed; the worker will send these %d events", len(event_ids))


def _tally_duplicates(*, game_id: int, received_at: datetime, duplicates: int) -> None:
    # A count for the dashboard: losing one must not fail a request already committed.
    try:
        DuplicateTally.objects.create(game_id=game_id, received_at=received_at, duplicates=duplicates)
    except DatabaseError as exc:
        logger.warning("could not count %d duplicates: %s", duplicates, exc.__class__.__name__)


_local = threading.local()


def _event_serializer(context: dict) -> EventSerializer:
    """Return this thread's EventSerializer, with `context` for this call.

    Building a serializer deep-copies its declared fields; reusing one per thread
    saves that on every request. Only run_validation is called on it, which keeps
    no per-object state.
    """
    serializer = getattr(_local, "event_serializer", None)
    if serializer is None:
        serializer = _local.event_serializer = EventSerializer()
    serializer._context = context
    return serializer


def _row(*, game_id: int, event_id: uuid.UUID, data: dict, payload: dict, claim_token, claimed_until) -> dict:
    """Return the column values (by attribute name) of a new audit row."""
    event_type = REGISTRY.get(data["event_type"])
    unique_property = event_type.unique_property if event_type is not None else None
    return {
        "game_id": game_id,
        "event_id": event_id,
        "event_type": data["event_type"],
        "player_id": data["player_id"],
        "platform": data.get("platform") or "",
        "transaction_id": data["properties"][unique_property] if unique_property else None,
        "currency": payload.get("currency", ""),
        "revenue": Decimal(payload["revenue"]) if "revenue" in payload else None,
        "revenue_base": Decimal(payload["revenue_base"]) if payload.get("revenue_base") is not None else None,
        "base_currency": payload.get("base_currency") or "",
        "fx_rate": Decimal(payload["fx_rate"]) if payload.get("fx_rate") is not None else None,
        "fx_date": date.fromisoformat(payload["fx_date"]) if payload.get("fx_date") else None,
        "occurred_at": data["occurred_at"],
        "sent_at": data["sent_at"],
        "received_at": data["received_at"],
        "derived_at": data["derived_at"],
        "payload": payload,
        "delivery_state": DeliveryState.PENDING.value,
        "attempts": 0,
        "next_attempt_at": data["received_at"],
        "last_error": "",
        "delivered_at": None,
        "emitted_at": None,
        "claim_token": claim_token,
        "claimed_until": claimed_until,
    }


def _store(*, rows: dict[int, dict]) -> set[int]:
    """Insert the rows whose event and transaction ids are new; return the indexes inserted.

    The first of several rows with the same id in one call wins; against rows already
    stored, the unique constraints decide, inside the insert itself, so two requests
    racing with the same id cannot both store it.
    """
    first_rows: dict[int, dict] = {}
    seen_events: set = set()
    seen_transactions: set = set()
    for index, row in rows.items():
        transaction_id = row["transaction_id"]
        if row["event_id"] in seen_events or (transaction_id is not None and transaction_id in seen_transactions):
            continue
        seen_events.add(row["event_id"])
        if transaction_id is not None:
            seen_transactions.add(transaction_id)
        first_rows[index] = row
    if not first_rows:
        return set()
    with write_transaction():
        inserted = _insert_new_rows(list(first_rows.values()))
    return {index for index, row in first_rows.items() if row["event_id"] in inserted}


_INSERT_FIELDS = [model_field for model_field in Event._meta.concrete_fields if not model_field.primary_key]
_EVENT_ID_FIELD = Event._meta.get_field("event_id")
# Columns whose Python values every supported driver takes as they are.
_RAW_TYPES = {"CharField", "TextField", "PositiveIntegerField", "ForeignKey"}


def _sqlite_datetime(value: datetime | None) -> str | None:
    # What Django's SQLite backend stores for an aware datetime: naive UTC text.
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")


def _sqlite_uuid(value: uuid.UUID | None) -> str | None:
    return None if value is None else value.hex


def _sqlite_json(value: object) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


_SQLITE_CONVERTERS = {"DateTimeField": _sqlite_datetime, "UUIDField": _sqlite_uuid, "JSONField": _sqlite_json}


def _json_text(value: object) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


@dataclass(frozen=True)
class _InsertPlan:
    """How to insert audit rows on one database: the statement and each column's conversion."""

    vendor: str
    head: str  # INSERT INTO ... up to the rows
    row_placeholders: str  # one row's "(%s, ...)", repeated per row (SQLite only)
    tail: str  # ON CONFLICT DO NOTHING RETURNING event_id
    columns: list  # (attribute name, converter or None)


@functools.cache
def _insert_plan(vendor: str, alias: str) -> _InsertPlan:
    connection = connections[alias]
    quote = connection.ops.quote_name
    names = ", ".join(quote(model_field.column) for model_field in _INSERT_FIELDS)
    tail = f" ON CONFLICT DO NOTHING RETURNING {quote(_EVENT_ID_FIELD.column)}"
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
        columns.append((model_field.attname, converter))
    table = quote(Event._meta.db_table)
    if vendor == "postgresql":
        # One row per statement, sent by psycopg's pipelined executemany: the SQL text
        # stays small, so psycopg prepares it once instead of re-parsing thousands of
        # placeholders on every request.
        values = ", ".join("%s::jsonb" if converter is _json_text else "%s" for _, converter in columns)
        return _InsertPlan(vendor, f"INSERT INTO {table} ({names}) VALUES ({values})", "", tail, columns)
    row = "(" + ", ".join(["%s"] * len(_INSERT_FIELDS)) + ")"
    return _InsertPlan(vendor, f"INSERT INTO {table} ({names}) VALUES ", row, tail, columns)


def _prep_with_field(model_field, alias: str, value: object) -> object:
    return model_field.get_db_prep_save(value, connections[alias])


def _insert_new_rows(rows: list[dict]) -> set[uuid.UUID]:
    """Insert audit rows in one statement, skipping any whose ids the game already has.

    Returns the event ids actually inserted. `ON CONFLICT DO NOTHING ... RETURNING`
    (SQLite 3.35+, PostgreSQL) checks and inserts in one round trip under the unique
    constraints. Plain SQL because the ORM cannot return what an ignore-conflicts
    insert stored, and its per-value preparation cost more than the database's work;
    values are converted into the same forms the ORM stores (the tests read the rows
    back through the ORM).
    """
    alias = Event.objects.db
    connection = connections[alias]
    plan = _insert_plan(connection.vendor, alias)
    params = [[row[name] if convert is None else convert(row[name]) for name, convert in plan.columns] for row in rows]
    returned = []
    with connection.cursor() as cursor:
        if plan.vendor == "postgresql":
            driver_cursor = cursor.cursor  # psycopg's own: Django's wrapper cannot return rows from executemany
            # Django's error translation (so a lost connection answers 503, not 500).
            with connection.wrap_database_errors:
                driver_cursor.executemany(plan.head + plan.tail, params, returning=True)
                while True:
                    returned += driver_cursor.fetchall()
                    if not driver_cursor.nextset():
                        break
        else:
            sql = plan.head + ", ".join([plan.row_placeholders] * len(rows)) + plan.tail
            cursor.execute(sql, [value for row in params for value in row])
            returned = cursor.fetchall()
    # A UUID comes back as hex text from SQLite and as a UUID from PostgreSQL.
    return {value if isinstance(value, uuid.UUID) else uuid.UUID(value) for (value,) in returned}
