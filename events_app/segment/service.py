"""Segment calls into the one ingest path: map each message, keep the refused ones for operators, ingest the rest."""

import logging
from collections import Counter
from datetime import datetime

from events_app import conf
from events_app.ingest import counting
from events_app.ingest.rejections import record_rejections
from events_app.ingest.service import REJECTED, IngestResult, ingest_events
from events_app.models import ApiKey
from events_app.privacy import identities
from events_app.segment import mapping
from events_app.segment.errors import MessageTooLarge

logger = logging.getLogger(__name__)


def ingest_segment_calls(
    *,
    api_key: ApiKey,
    messages: list,
    received_at: datetime,
    envelope: mapping.Envelope = mapping.NO_ENVELOPE,
    call_type: str | None = None,
) -> IngestResult:
    """Map `messages` (a batch's, or one call's with its `call_type`) onto events and ingest them; return counts.

    Returns once the valid events' audit rows are committed. A message that cannot be
    mapped, or that the native rules refuse, is rejected alone: it is listed in the
    admin's rejected events as it was sent (minus its writeKey) with the reason, and
    the others are kept. Messages past Segment's 2,500 per batch are rejected so too.
    The request's rejections are recorded once, after ingest, under one per-request cap.
    """
    game = api_key.game
    events: list[dict] = []
    originals: list = []
    refused: list[tuple[object, dict]] = []
    refused_types: Counter = Counter()
    links: list[tuple[str, str, str]] = []
    cut_down, first_note = 0, ""
    for index, message in enumerate(messages):
        if index >= mapping.MAX_BATCH_MESSAGES:
            reason = f"Batch has {len(messages)} messages; Segment takes at most {mapping.MAX_BATCH_MESSAGES}."
            refused.append((mapping.without_write_key(message), {"non_field_errors": [reason]}))
            refused_types[None] += 1
            continue
        mapped = mapping.map_message(message, received_at=received_at, envelope=envelope, call_type=call_type)
        if mapped.notes:
            cut_down += 1
            first_note = first_note or mapped.notes[0]
        if mapped.errors is not None:
            refused.append((mapped.original, mapped.errors))
            refused_types[mapped.event_type] += 1
            continue
        events.append(mapped.event)
        originals.append(mapped.original)
        links.extend(mapping.identity_links(message, call_type=call_type))

    if cut_down:  # one line per request, whatever its size
        logger.warning("segment game=%s kept %d messages cut down, the first: %s", game.slug, cut_down, first_note)
    if refused:
        logger.info(
            "segment game=%s refused %d messages before ingest: %s",
            game.slug,
            len(refused),
            ", ".join(sorted({field for _, errors in refused for field in errors})),
        )
        # Ingest counts what it judges; these never reached it.
        for event_type, count in refused_types.items():
            counting.count_events(event_type=event_type, status=REJECTED, count=count)

    outcome = IngestResult(rejected=len(refused), rejections=refused)
    # In calls of at most a native batch: one insert statement per call stays within
    # what the database takes (SQLite's bound parameters).
    step = conf.MAX_BATCH_EVENTS
    for start in range(0, len(events), step):
        outcome.add(
            ingest_events(
                api_key=api_key,
                raw_events=events[start : start + step],
                received_at=received_at,
                originals=originals[start : start + step],
            )
        )
    record_rejections(game=game, received_at=received_at, rejected=outcome.rejections)
    identities.record_links(game=game, links=links, seen_at=received_at)
    return outcome


def ingest_segment_call(*, api_key: ApiKey, message: object, call_type: str, received_at: datetime) -> IngestResult:
    """Ingest one call of a single-call endpoint (/v1/track...); raise MessageTooLarge past 32 KiB, as Segment does.

    The refused message is listed among the rejected events before the error is raised.
    """
    size = mapping.json_size(message)
    if size is not None and size > mapping.MAX_MESSAGE_BYTES:
        error = MessageTooLarge(size)
        rejected = [(mapping.without_write_key(message), {"non_field_errors": [str(error.detail)]})]
        record_rejections(game=api_key.game, received_at=received_at, rejected=rejected)
        # A track's type lies in its event name, which was not read: counted as invalid.
        counting.count_events(event_type=None if call_type == "track" else call_type, status=REJECTED)
        raise error
    return ingest_segment_calls(api_key=api_key, messages=[message], received_at=received_at, call_type=call_type)
