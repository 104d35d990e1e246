"""Counting submitted events by type and answer, with bounded labels (built-in names, `custom`, `invalid`)."""

from collections import Counter as Tally
from collections.abc import Sequence

from events_app import metrics
from events_app.event_types import REGISTRY as EVENT_TYPES
from sdk.contract import is_custom_type_name


def event_type_label(event_type: object) -> str:
    """Return the label of an event type: a built-in name, `custom`, or `invalid` for what is neither."""
    if isinstance(event_type, str) and event_type in EVENT_TYPES:
        return event_type
    return "custom" if is_custom_type_name(event_type) else "invalid"


def count_received(*, raw_events: Sequence, results: Sequence[dict]) -> None:
    """Count each submitted event under its type and the status it was answered with."""
    tally: Tally[tuple[str | None, str]] = Tally()
    for raw, result in zip(raw_events, results, strict=True):
        event_type = raw.get("event_type") if isinstance(raw, dict) else None
        tally[(event_type if isinstance(event_type, str) else None, result["status"])] += 1
    labelled: Tally[tuple[str, str]] = Tally()
    for (event_type, status), count in tally.items():  # a few distinct types per request: label each once
        labelled[(event_type_label(event_type), status)] += count
    for (label, status), count in labelled.items():
        metrics.EVENTS_RECEIVED.labels(label, status).inc(count)


def count_events(*, event_type: object, status: str, count: int = 1) -> None:
    """Count `count` events answered `status` without going through ingest (e.g. refused before mapping)."""
    if count:
        metrics.EVENTS_RECEIVED.labels(event_type_label(event_type), status).inc(count)
