"""Ingestion: validate events, drop duplicates, commit audit rows, then hand them to delivery."""

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
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


@dataclass
class _Candidate:
    index: int
    event: Event


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
    serializer = EventSerializer(context={"received_at": received_at, "batch_sent_at": batch_sent_at})
    inline = conf.inline_delivery()
    claim_token = uuid.uuid4() if inline else None
    claimed_until = received_at + timedelta(seconds=conf.claim_lease_seconds()) if inline else None

    outcome = IngestResult(results=[None] * len(raw_events))
    candidates: list[_Candidate] = []
    for index, raw in enumerate(raw_events):
        try:
            data = serializer.run_validation(raw)
        except serializers.ValidationError as exc:
            outcome.results[index] = {"index": index, "status": REJECTED, "errors": exc.detail}
            outcome.rejected += 1
            continue
        event_id = data.get("event_id") or uuid.uuid4()
        payload = build_payload(event=data, event_id=str(event_id), game_slug=game.slug)
        candidates.append(
            _Candidate(
                index,
                _event_row(
                    game=game,
                    event_id=event_id,
                    data=data,
                    payload=payload,
                    claim_token=claim_token,
                    claimed_until=claimed_until,
                ),
            )
        )

    stored = _store(game_id=game.pk, candidates=candidates)
    for candidate in candidates:
        status = ACCEPTED if candidate.event.pk in stored else DUPLICATE
        outcome.results[candidate.index] = {
            "index": candidate.index,
            "event_id": str(candidate.event.event_id),
            "status": status,
        }
        if status == ACCEPTED:
            outcome.accepted += 1
        else:
            outcome.duplicates += 1
    logger.info(
        "ingested game=%s accepted=%d duplicates=%d rejected=%d",
        game.slug,
        outcome.accepted,
        outcome.duplicates,
        outcome.rejected,
    )

    if inline and stored:
        new_events = [c.event for c in candidates if c.event.pk in stored]
        delivery.deliver_claimed(events=new_events, claim_token=claim_token, inline=True)
    return outcome


def _event_row(*, game, event_id, data: dict, payload: dict, claim_token, claimed_until) -> Event:
    properties = data["properties"]
    is_purchase = data["event_type"] == "purchase"
    return Event(
        game=game,
        event_id=event_id,
        event_type=data["event_type"],
        player_id=data["player_id"],
        platform=data.get("platform") or "",
        transaction_id=properties["transaction_id"] if is_purchase else None,
        currency=payload.get("currency", ""),
        revenue=Decimal(payload["revenue"]) if is_purchase else None,
        occurred_at=data["occurred_at"],
        sent_at=data["sent_at"],
        received_at=data["received_at"],
        derived_at=data["derived_at"],
        payload=payload,
        delivery_state=DeliveryState.PENDING,
        next_attempt_at=data["received_at"],
        claim_token=claim_token,
        claimed_until=claimed_until,
    )


def _store(*, game_id: int, candidates: list[_Candidate]) -> set[int]:
    """Insert the candidates that are new; return the primary keys of those inserted."""
    if not candidates:
        return set()
    try:
        with transaction.atomic():
            fresh = _drop_known(game_id=game_id, candidates=candidates)
            Event.objects.bulk_create([c.event for c in fresh])
            return {c.event.pk for c in fresh}
    except IntegrityError:
        # Another request stored one of these ids between our check and our insert
        # (possible on PostgreSQL; SQLite's IMMEDIATE transactions serialise writers).
        # Insert one by one so only the real duplicates are dropped.
        logger.info("concurrent duplicate detected; storing events one by one")
    for candidate in candidates:
        candidate.event.pk = None
    stored = set()
    with transaction.atomic():
        for candidate in _drop_known(game_id=game_id, candidates=candidates):
            try:
                with transaction.atomic():
                    candidate.event.save(force_insert=True)
            except IntegrityError:
                candidate.event.pk = None
                continue
            stored.add(candidate.event.pk)
    return stored


def _drop_known(*, game_id: int, candidates: list[_Candidate]) -> list[_Candidate]:
    """Return the candidates whose event and transaction ids are new to the game and to the batch."""
    event_ids = {c.event.event_id for c in candidates}
    transaction_ids = {c.event.transaction_id for c in candidates if c.event.transaction_id is not None}
    known_events = set(Event.objects.filter(game_id=game_id, event_id__in=event_ids).values_list("event_id", flat=True))
    known_transactions = (
        set(
            Event.objects.filter(game_id=game_id, transaction_id__in=transaction_ids).values_list(
                "transaction_id", flat=True
            )
        )
        if transaction_ids
        else set()
    )
    fresh = []
    for candidate in candidates:
        event = candidate.event
        if event.event_id in known_events or (
            event.transaction_id is not None and event.transaction_id in known_transactions
        ):
            continue
        known_events.add(event.event_id)
        if event.transaction_id is not None:
            known_transactions.add(event.transaction_id)
        fresh.append(candidate)
    return fresh
