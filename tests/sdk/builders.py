"""Valid events of every type to change one field at a time: for the SDK's tests and the parity test, no Django."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

NOW = datetime.now(UTC).replace(microsecond=0)
MISSING = object()

# A valid event of each type: its top-level fields beyond the common ones, and its properties.
BASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "install": ({"platform": "android"}, {"store": "google_play", "country": "DE"}),
    "purchase": ({}, {"transaction_id": "GPA.1", "product_id": "gems_100", "price": "4.99", "currency": "EUR"}),
    "session_start": ({"session_id": "s-1"}, {}),
    "session_end": ({"session_id": "s-1"}, {"duration_ms": 61_000}),
    "progression": ({}, {"status": "complete", "level": "world1:level3", "score": 1200, "attempt": 2}),
    "resource": ({}, {"flow": "source", "resource": "gems", "amount": "25", "item_type": "reward", "item_id": "x"}),
    "ad_impression": (
        {},
        {
            "ad_network": "admob",
            "ad_format": "rewarded",
            "ad_unit": "level_end",
            "revenue": "0.0125",
            "currency": "USD",
        },
    ),
    "identify": ({}, {"name": "Ada", "vip": True}),
    "page": ({}, {"url": "https://example.com/shop"}),
    "screen": ({}, {"name": "Shop"}),
    "group": ({}, {"group_id": "guild-7"}),
    "alias": ({}, {"previous_id": "anon-1"}),
    "level_up": ({}, {"level": 3, "hero": {"class": "mage"}}),  # a custom type
}


def at(delta: timedelta) -> str:
    return (NOW + delta).isoformat().replace("+00:00", "Z")


def event(kind: str, /, **changes: Any) -> dict:
    """Return a valid event of type `kind`; `properties__x` sets a property, MISSING removes a key."""
    top, properties = BASES[kind]
    built = {
        "event_id": str(uuid.uuid4()),
        "event_type": kind,
        "player_id": "player-1",
        "occurred_at": at(timedelta(minutes=-5)),
        **top,
        "properties": dict(properties),
    }
    for name, value in changes.items():
        target, key = (built["properties"], name.removeprefix("properties__")) if "__" in name else (built, name)
        if value is MISSING:
            target.pop(key, None)
        else:
            target[key] = value
    return built


def install(**changes: Any) -> dict:
    return event("install", **changes)


def purchase(**changes: Any) -> dict:
    return event("purchase", **changes)
