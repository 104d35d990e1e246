"""The Firehose record: one flat NDJSON line per event, in the contract's field order."""

from datetime import datetime
from decimal import Decimal

import orjson

from . import conf, currency
from .serializers import decimal_string
from .timeutil import iso_utc


def build_payload(*, event: dict, event_id: str, game_slug: str) -> dict:
    """Return the line sent to Firehose for a validated event, all but `emitted_at`.

    Stored on the audit row, so a resend sends exactly what was accepted.
    """
    properties = event["properties"]
    payload = {
        "schema_version": conf.RECORD_SCHEMA_VERSION,
        "event_id": event_id,
        "event_type": event["event_type"],
        "game": game_slug,
        "player_id": event["player_id"],
        "occurred_at": iso_utc(event["occurred_at"]),
        "sent_at": iso_utc(event["sent_at"]) if event["sent_at"] else None,
        "received_at": iso_utc(event["received_at"]),
        "derived_at": iso_utc(event["derived_at"]),
        "platform": event.get("platform"),
        "app_version": event.get("app_version"),
        "session_id": event.get("session_id"),
        "properties": properties,
        "context": event.get("context") or {},
    }
    if event["event_type"] == "purchase":
        price: Decimal = properties["price"]
        quantity: int = properties["quantity"]
        properties["price"] = decimal_string(price)
        payload["price"] = properties["price"]
        payload["quantity"] = quantity
        payload["currency"] = properties["currency"]
        revenue = price * quantity
        payload["revenue"] = decimal_string(revenue)
        # Converted at the rate of the day it happened (cached in-process, see currency).
        payload.update(
            currency.convert(revenue=revenue, currency=payload["currency"], on=currency.utc_day(event["derived_at"]))
        )
    return payload


# The contract's field order. PostgreSQL's jsonb does not keep the order a payload
# was stored in, so lines are put back in this order when they are encoded.
LINE_FIELDS = (
    "schema_version", "event_id", "event_type", "game", "player_id", "occurred_at", "sent_at",
    "received_at", "derived_at", "emitted_at", "platform", "app_version", "session_id",
    "properties", "context", "price", "quantity", "currency", "revenue",
    "revenue_base", "base_currency", "fx_rate", "fx_date",
)  # fmt: skip


def encode_line(payload: dict, *, emitted_at: datetime) -> bytes:
    """Return the NDJSON line for `payload` stamped with `emitted_at`, newline included."""
    stamped = {**payload, "emitted_at": iso_utc(emitted_at)}
    line = {name: stamped[name] for name in LINE_FIELDS if name in stamped}
    if len(line) != len(stamped):  # fields a later schema version adds go last
        line.update(stamped)
    return orjson.dumps(line) + b"\n"
