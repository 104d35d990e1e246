"""The Firehose record: one flat NDJSON line per event, in the contract's field order."""

from datetime import datetime
from decimal import Decimal

import orjson

from events_app import conf
from events_app.event_types import REGISTRY
from events_app.event_types.fields import decimal_string
from events_app.event_types.timeutil import iso_utc
from events_app.money import currency
from sdk.contract import Money


def build_payload(*, event: dict, event_id: str, game_slug: str) -> dict:
    """Return the line sent to Firehose for a validated event, all but `emitted_at`.

    Stored on the audit row, so a resend sends exactly what was accepted. Decimal
    properties go out as plain decimal strings; a type with revenue adds its money
    fields, converted to the base currency; a custom type adds the version of the
    schema that validated it.
    """
    properties = event["properties"]
    for key, value in properties.items():
        if isinstance(value, Decimal):
            properties[key] = decimal_string(value)
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
    event_type = REGISTRY.get(event["event_type"])
    if event_type is None:
        payload["event_schema_version"] = event.get("event_schema_version")
    elif event_type.money is not None and properties.get(event_type.money.amount) is not None:
        payload.update(_money_fields(event_type.money, properties, derived_at=event["derived_at"]))
    return payload


def _money_fields(money: Money, properties: dict, *, derived_at: datetime) -> dict:
    """Return the line's revenue fields: amount (and quantity), currency, revenue, and base-currency conversion."""
    amount = Decimal(properties[money.amount])
    fields: dict = {}
    revenue = amount
    if money.quantity is not None:
        quantity: int = properties[money.quantity]
        fields["price"] = properties[money.amount]
        fields["quantity"] = quantity
        revenue = amount * quantity
    fields["currency"] = properties[money.currency]
    fields["revenue"] = decimal_string(revenue)
    # Converted at the rate of the day it happened (cached in-process, see currency).
    fields.update(
        currency.convert(
            revenue=revenue,
            currency=fields["currency"],
            on=currency.utc_day(derived_at),
            minor_units=money.minor_units,
        )
    )
    return fields


# The contract's field order. PostgreSQL's jsonb does not keep the order a payload
# was stored in, so lines are put back in this order when they are encoded.
LINE_FIELDS = (
    "schema_version",
    "event_id",
    "event_type",
    "game",
    "player_id",
    "occurred_at",
    "sent_at",
    "received_at",
    "derived_at",
    "emitted_at",
    "platform",
    "app_version",
    "session_id",
    "properties",
    "context",
    "event_schema_version",
    "price",
    "quantity",
    "currency",
    "revenue",
    "revenue_base",
    "base_currency",
    "fx_rate",
    "fx_date",
)


def encode_line(payload: dict, *, emitted_at: datetime) -> bytes:
    """Return the NDJSON line for `payload` stamped with `emitted_at`, newline included."""
    stamped = {**payload, "emitted_at": iso_utc(emitted_at)}
    line = {name: stamped[name] for name in LINE_FIELDS if name in stamped}
    if len(line) != len(stamped):  # fields a later schema version adds go last
        line.update(stamped)
    return orjson.dumps(line) + b"\n"
