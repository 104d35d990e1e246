"""Ingestion: validate events, drop duplicates and erased players' events, append the rest to the log."""

import functools
import logging
import threading
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.db import DatabaseError
from rest_framework import serializers

from events_app import conf
from events_app.delivery.records import build_payload
from events_app.event_types import REGISTRY
from events_app.idempotency import purchase_identity
from events_app.ingest import counting
from events_app.ingest.serializers import EventSerializer
from events_app.ingest.storage import insert_events
from events_app.models import ApiKey, DuplicateTally, Game
from events_app.privacy.erasure import suppressed_ids

logger = logging.getLogger(__name__)

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"
SUPPRESSED = "suppressed"  # the player was erased (events_app.privacy.erasure): neither stored nor forwarded


@dataclass
class IngestResult:
    """What happened to each submitted event, in submission order, and the refused ones for the caller to record.

    `rejections` holds a (body as sent, errors) pair per rejected event: whoever owns
    the request records them once, with its own (record_rejections), so that one
    per-request cap covers everything a request refused.
    """

    results: list[dict] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    suppressed: int = 0
    rejections: list[tuple[object, dict]] = field(default_factory=list)

    def add(self, other: "IngestResult") -> None:
        """Add the counts and rejections of `other` (a later part of the same request) to these."""
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.suppressed += other.suppressed
        self.rejections.extend(other.rejections)


def ingest_events(
    *,
    api_key: ApiKey,
    raw_events: list,
    received_at: datetime,
    batch_sent_at: datetime | None = None,
    originals: list | None = None,
) -> IngestResult:
    """Validate and store `raw_events` for the key's game; return a result per event.

    `originals`, when given, are the messages the events were mapped from (a Segment
    call), one per event: a rejected event is returned in `rejections` as it was sent.
    Recording the rejections is the caller's: it owns the request.

    Returns only after the accepted events' audit rows are committed. Invalid events
    are rejected one by one without affecting the others; an `event_id` or purchase
    `transaction_id` already stored for the game (or earlier in the same call) makes a
    duplicate, stored and forwarded once only, answered with the stored event's id.
    Events of a suppressed (erased) player are answered `suppressed`: not stored, not
    forwarded.
    """
    game = api_key.game
    serializer = _event_serializer({"received_at": received_at, "batch_sent_at": batch_sent_at, "game": game})
    shards = conf.relay_shards()

    outcome = IngestResult(results=[None] * len(raw_events))
    rows: dict[int, dict] = {}
    rejected = outcome.rejections
    for index, raw in enumerate(raw_events):
        try:
            data = serializer.run_validation(raw)
        except serializers.ValidationError as exc:
            outcome.results[index] = {"index": index, "status": REJECTED, "errors": exc.detail}
            outcome.rejected += 1
            rejected.append((raw if originals is None else originals[index], exc.detail))
            continue
        event_id = data.get("event_id") or uuid.uuid4()
        payload = build_payload(event=data, event_id=str(event_id), game_slug=game.slug)
        rows[index] = _row(
            game_id=game.pk,
            event_id=event_id,
            data=data,
            payload=payload,
            shards=shards,
        )

    stored = _store(game=game, rows=rows)
    for index, errors in stored.refused.items():  # validated, yet no column could hold it: rejected like any invalid
        del rows[index]
        outcome.results[index] = {"index": index, "status": REJECTED, "errors": errors}
        outcome.rejected += 1
        rejected.append((raw_events[index] if originals is None else originals[index], errors))
    for index, row in rows.items():
        if row["player_id"] in stored.suppressed:
            outcome.results[index] = _suppressed_result(index, row, sent_id=bool(raw_events[index].get("event_id")))
            outcome.suppressed += 1
        elif index in stored.inserted:
            outcome.results[index] = {"index": index, "event_id": str(row["event_id"]), "status": ACCEPTED}
            outcome.accepted += 1
        else:
            outcome.results[index] = {"index": index, "event_id": stored.answer_ids[index], "status": DUPLICATE}
            outcome.duplicates += 1
    logger.info(
        "ingested game=%s accepted=%d duplicates=%d rejected=%d suppressed=%d",
        game.slug,
        outcome.accepted,
        outcome.duplicates,
        outcome.rejected,
        outcome.suppressed,
    )
    counting.count_received(raw_events=raw_events, results=outcome.results)

    if outcome.duplicates:
        _tally_duplicates(game_id=game.pk, received_at=received_at, duplicates=outcome.duplicates)

    return outcome


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


def _row(*, game_id: int, event_id: uuid.UUID, data: dict, payload: dict, shards: int) -> dict:
    """Return the column values (by attribute name) of a new log row."""
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
        "shard": relay_shard(game_id=game_id, player_id=data["player_id"], shards=shards),
    }


def relay_shard(*, game_id: int, player_id: str, shards: int) -> int:
    """Return the relay shard of a player's events: all of one player's events go out through one relay, in order."""
    if shards <= 1:
        return 0
    return zlib.crc32(f"{game_id}:{player_id}".encode()) % shards


def _suppressed_result(index: int, row: dict, *, sent_id: bool) -> dict:
    # Nothing is stored, so no id of ours: only the client's own, if it sent one.
    result = {"index": index, "status": SUPPRESSED}
    if sent_id:
        result["event_id"] = str(row["event_id"])
    return result


REPEATS_SUPPRESSED = (
    "Repeats the event_id or transaction_id of an erased player's event earlier in this request; not stored."
)


@dataclass
class _Stored:
    """What _store did: the indexes it inserted, the suppressed players it left out, each duplicate's stored id,
    and the rows no column could hold (index -> errors)."""

    inserted: set[int]
    suppressed: set[str]
    answer_ids: dict[int, str]
    refused: dict[int, dict] = field(default_factory=dict)


def _store(*, game: Game, rows: dict[int, dict]) -> _Stored:
    """Insert the rows whose event and transaction ids are new and whose players are not suppressed.

    Rows no column can hold are refused (returned in `refused`, with the repeats of
    them in the same call), never a database error.

    The first of several rows with the same id in one call wins; against rows already
    stored, the unique constraints decide, inside the insert itself, so two requests
    racing with the same id cannot both store it. The suppression list is read in the
    insert's transaction (one query).
    """
    first_rows: dict[int, dict] = {}
    first_of: dict[int, int] = {}  # a repeat within the call -> the index of the row it repeats
    by_event: dict = {}
    by_transaction: dict = {}
    for index, row in rows.items():
        transaction_id = row["transaction_id"]
        first = by_event.get(row["event_id"])
        if first is None and transaction_id is not None:
            first = by_transaction.get(transaction_id)
        if first is not None:
            first_of[index] = first
            continue
        by_event[row["event_id"]] = index
        if transaction_id is not None:
            by_transaction[transaction_id] = index
        first_rows[index] = row
    if not first_rows:
        return _Stored(inserted=set(), suppressed=set(), answer_ids={})
    chosen = list(first_rows.values())
    result = insert_events(chosen, screen=functools.partial(suppressed_ids, game=game, locked=True))
    suppressed = result.suppressed
    stored = _Stored(
        inserted={index for index, row in first_rows.items() if row["event_id"] in result.inserted},
        suppressed=suppressed,
        answer_ids={index: str(row["event_id"]) for index, row in first_rows.items()},
        refused={
            index: result.refused[row["event_id"]]
            for index, row in first_rows.items()
            if row["event_id"] in result.refused
        },
    )
    for index, row in first_rows.items():
        repeat = result.repeats.get(row["event_id"])
        if repeat is None:
            continue
        if repeat.differing:
            stored.refused[index] = _conflict(repeat.key, repeat.differing)
        else:
            stored.answer_ids[index] = str(repeat.event_id)
    for index, first in first_of.items():
        if first in stored.refused:  # a repeat of a row nothing stored is no duplicate of anything
            stored.refused[index] = stored.refused[first]
        elif first_rows[first]["player_id"] in suppressed and rows[index]["player_id"] not in suppressed:
            # Its first was an erased player's, not stored: "duplicate" would name an event
            # that exists nowhere. Refused, so the client knows it was not kept.
            stored.refused[index] = {"non_field_errors": [REPEATS_SUPPRESSED]}
        elif conflict := conflict_errors(rows[index], first_rows[first]):
            stored.refused[index] = conflict
        else:
            stored.answer_ids[index] = stored.answer_ids[first]
    return stored


CONFLICT_MESSAGE = "Conflicts with an event already stored: same {key}, another {fields}."


def conflict_errors(row: dict, first: dict) -> dict | None:
    """Return the errors of a repeat that is not the same event as `first` (stored, or earlier in the call), else None.

    The same event_id must carry the same event_type and player_id; the same purchase
    transaction_id the same player_id, product_id, price and currency. Anything else is
    another event claiming the first one's id: refused, never stored over it nor
    answered as its duplicate (a client must not turn another player's purchase into
    a "duplicate" of its own).
    """
    if row["event_id"] == first["event_id"]:
        differing = [name for name in ("event_type", "player_id") if row[name] != first[name]]
        return _conflict("event_id", differing) if differing else None
    stored = purchase_identity(first)
    differing = [name for name, value in purchase_identity(row).items() if value != stored[name]]
    return _conflict("transaction_id", differing) if differing else None


def _conflict(key: str, differing) -> dict:
    """Return the errors of a repeat of `key` whose `differing` fields are not the stored event's."""
    message = CONFLICT_MESSAGE.format(key=key, fields=", ".join(differing))
    return {"event_id": [message]} if key == "event_id" else {"properties": {"transaction_id": [message]}}
