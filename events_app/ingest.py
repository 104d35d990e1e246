"""Ingestion: validate events, drop duplicates, commit audit rows, then hand them to delivery."""

import functools
import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
from django.db import IntegrityError, connections, transaction
from rest_framework import serializers

from . import conf, delivery
from .models import ApiKey, DeliveryState, Event
from .records import build_payload
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
    serializer = _event_serializer({"received_at": received_at, "batch_sent_at": batch_sent_at})
    inline = conf.inline_delivery()
    # Rows a request will forward itself are stored already leased to it, so the
    # worker leaves them alone unless the request dies before recording the outcome.
    claim_token = uuid.uuid4() if inline else None
    claimed_until = received_at + timedelta(seconds=conf.claim_lease_seconds()) if inline else None

    outcome = IngestResult(results=[None] * len(raw_events))
    rows: dict[int, dict] = {}
    for index, raw in enumerate(raw_events):
        try:
            data = serializer.run_validation(raw)
        except serializers.ValidationError as exc:
            outcome.results[index] = {"index": index, "status": REJECTED, "errors": exc.detail}
            outcome.rejected += 1
            continue
        event_id = data.get("event_id") or uuid.uuid4()
        payload = build_payload(event=data, event_id=str(event_id), game_slug=game.slug)
        rows[index] = _row(
            game_id=game.pk, event_id=event_id, data=data, payload=payload,
            claim_token=claim_token, claimed_until=claimed_until,
        )  # fmt: skip

    stored = _store(game_id=game.pk, rows=rows)
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

    if inline and stored:
        stored_ids = [rows[index]["event_id"] for index in stored]
        events = list(
            Event.objects.filter(game_id=game.pk, event_id__in=stored_ids, claim_token=claim_token).only(
                "pk", "payload", "attempts"
            )
        )
        delivery.deliver_claimed(events=events, claim_token=claim_token, inline=True)
    return outcome


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
    is_purchase = data["event_type"] == "purchase"
    return {
        "game_id": game_id,
        "event_id": event_id,
        "event_type": data["event_type"],
        "player_id": data["player_id"],
        "platform": data.get("platform") or "",
        "transaction_id": data["properties"]["transaction_id"] if is_purchase else None,
        "currency": payload.get("currency", ""),
        "revenue": Decimal(payload["revenue"]) if is_purchase else None,
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


def _store(*, game_id: int, rows: dict[int, dict]) -> set[int]:
    """Insert the rows that are new; return the indexes of those inserted."""
    if not rows:
        return set()
    try:
        with transaction.atomic():
            fresh = _drop_known(game_id=game_id, rows=rows)
            _insert_rows([rows[index] for index in fresh])
            return fresh
    except IntegrityError:
        # Another request stored one of these ids between our check and our insert
        # (possible on PostgreSQL; SQLite's IMMEDIATE transactions serialise writers).
        # Insert one by one so only the real duplicates are dropped.
        logger.info("concurrent duplicate detected; storing events one by one")
    stored = set()
    with transaction.atomic():
        for index in sorted(_drop_known(game_id=game_id, rows=rows)):
            try:
                with transaction.atomic():
                    _insert_rows([rows[index]])
            except IntegrityError:
                continue
            stored.add(index)
    return stored


def _drop_known(*, game_id: int, rows: dict[int, dict]) -> set[int]:
    """Return the indexes of rows whose event and transaction ids are new to the game and to the batch."""
    db = connections[Event.objects.db]
    # Ids are compared in their database form (a UUID is hex text on SQLite).
    prep_event_id = functools.partial(_EVENT_ID_FIELD.get_db_prep_value, connection=db)
    event_ids = {prep_event_id(row["event_id"]) for row in rows.values()}
    transaction_ids = {row["transaction_id"] for row in rows.values() if row["transaction_id"] is not None}
    known_events, known_transactions = _known_ids(
        db, game_id=game_id, event_ids=event_ids, transaction_ids=transaction_ids
    )
    fresh = set()
    for index, row in rows.items():
        event_id = prep_event_id(row["event_id"])
        transaction_id = row["transaction_id"]
        if event_id in known_events or (transaction_id is not None and transaction_id in known_transactions):
            continue
        known_events.add(event_id)
        if transaction_id is not None:
            known_transactions.add(transaction_id)
        fresh.add(index)
    return fresh


def _known_ids(db, *, game_id: int, event_ids: set, transaction_ids: set[str]) -> tuple[set, set[str]]:
    """Return which of these event ids and transaction ids the game already has.

    Plain SQL on the two unique indexes: the ORM took longer to build this query
    than the database took to answer it.
    """
    quote = db.ops.quote_name
    table = quote(Event._meta.db_table)
    event_sql = ", ".join(["%s"] * len(event_ids))
    sql = (
        f"SELECT {quote('event_id')}, NULL FROM {table}"
        f" WHERE {quote('game_id')} = %s AND {quote('event_id')} IN ({event_sql})"
    )
    params = [game_id, *event_ids]
    if transaction_ids:
        txn_sql = ", ".join(["%s"] * len(transaction_ids))
        sql += (
            f" UNION ALL SELECT NULL, {quote('transaction_id')} FROM {table}"
            f" WHERE {quote('game_id')} = %s AND {quote('transaction_id')} IN ({txn_sql})"
        )
        params += [game_id, *transaction_ids]
    known_events, known_transactions = set(), set()
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        for event_id, transaction_id in cursor.fetchall():
            if event_id is not None:
                known_events.add(event_id)
            if transaction_id is not None:
                known_transactions.add(transaction_id)
    return known_events, known_transactions


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


@functools.cache
def _insert_plan(vendor: str, alias: str) -> tuple[str, list]:
    """Return the INSERT statement and, per column, (attribute name, converter or None)."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(model_field.column) for model_field in _INSERT_FIELDS)
    placeholders = ", ".join(["%s"] * len(_INSERT_FIELDS))
    sql = f"INSERT INTO {quote(Event._meta.db_table)} ({columns}) VALUES ({placeholders})"
    plan = []
    for model_field in _INSERT_FIELDS:
        internal = model_field.get_internal_type()
        if internal in _RAW_TYPES or (vendor == "postgresql" and internal in ("DateTimeField", "UUIDField")):
            converter = None
        elif vendor == "sqlite" and internal in _SQLITE_CONVERTERS:
            converter = _SQLITE_CONVERTERS[internal]
        else:
            converter = functools.partial(_prep_with_field, model_field, alias)
        plan.append((model_field.attname, converter))
    return sql, plan


def _prep_with_field(field, alias: str, value: object) -> object:
    return field.get_db_prep_save(value, connections[alias])


def _insert_rows(rows: list[dict]) -> None:
    """Insert audit rows with one executemany.

    The ORM's bulk_create spends more time preparing each value than the database
    spends storing it; here values are converted once, directly, into the same
    forms the ORM stores (the tests read the rows back through the ORM).
    """
    if not rows:
        return
    alias = Event.objects.db
    connection = connections[alias]
    sql, plan = _insert_plan(connection.vendor, alias)
    params = [[row[name] if convert is None else convert(row[name]) for name, convert in plan] for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
