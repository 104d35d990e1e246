"""The one event builder: `build_event`, and the typed `track_*` helpers both client classes share.

TrackerClient (returns the event) and Tracker (queues it and returns its event_id)
inherit `EventHelpers`; each says in `_take` what becomes of a built event. So the
keyword arguments of every helper, the way decimals are written and the checks the
builder itself makes (event_id, occurred_at, inexact numbers) exist once.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, TypeVar

from .validation import MAX_CLOCK_SKEW, format_timestamp

R = TypeVar("R")

_second_text: tuple[int, str] = (0, "")  # (a Unix second, its "YYYY-MM-DDTHH:MM:SS" in UTC)


def utc_now_text() -> str:
    """Return now as RFC 3339 UTC with milliseconds and Z; formats each second once, not each call."""
    global _second_text
    now = time.time()
    second = int(now)
    cached_second, text = _second_text
    if cached_second != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second_text = (second, text)  # one rebinding: safe to race, both threads write the same
    return f"{text}.{int((now - second) * 1000):03d}Z"


def new_uuid4() -> str:
    """Return a random (version 4) UUID string; three times faster than str(uuid.uuid4())."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


# (the event as it will be sent, what the builder found wrong with it, the fields it already checked):
# a plain tuple, as it is made on every track_* call.
BuiltEvent = tuple[dict[str, Any], dict[str, list[str]], tuple[str, ...]]


def build_event(
    event_type: str,
    player_id: str,
    *,
    occurred_at: datetime | str | None = None,
    properties: Mapping[str, Any] | None = None,
    platform: str | None = None,
    app_version: str | None = None,
    session_id: str | None = None,
    context: Mapping[str, Any] | None = None,
    event_id: str | uuid.UUID | None = None,
    event_schema_version: int | None = None,
    errors: dict[str, list[str]] | None = None,
) -> BuiltEvent:
    """Return the event as sent (fields left as None omitted), never raising.

    `event_id` defaults to a new UUID and is written canonically, `occurred_at` to
    now; a datetime goes out as UTC with Z, a string as given (the validator checks
    it). `properties` and `context` become part of the event as they are (callers
    pass copies). `errors` holds what the caller found already (an inexact price).
    """
    errors = {} if errors is None else errors
    if event_id is None:
        event_id = new_uuid4()
    else:
        try:
            event_id = str(event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(event_id))
        except (TypeError, ValueError, AttributeError):
            errors["event_id"] = [f"must be a UUID, not {event_id!r}"]
            event_id = str(event_id)
    checked: tuple[str, ...] = ("event_id", "occurred_at")
    if occurred_at is None:
        occurred = utc_now_text()
    elif isinstance(occurred_at, datetime):
        if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
            errors["occurred_at"] = ["has no time zone; use an aware datetime"]
            occurred = occurred_at.isoformat()
        else:
            if occurred_at - datetime.now(UTC) > MAX_CLOCK_SKEW:
                hours = MAX_CLOCK_SKEW.total_seconds() / 3600
                errors["occurred_at"] = [f"lies more than {hours:g} h ahead of this device's clock"]
            occurred = format_timestamp(occurred_at)
    else:
        occurred = occurred_at
        checked = ("event_id",)
    event: dict[str, Any] = {
        "event_id": event_id,
        "event_type": event_type,
        "player_id": player_id,
        "occurred_at": occurred,
    }
    if platform is not None:
        event["platform"] = platform
    if app_version is not None:
        event["app_version"] = app_version
    if session_id is not None:
        event["session_id"] = session_id
    if properties is not None:
        event["properties"] = properties
    if context is not None:
        event["context"] = context
    if event_schema_version is not None:
        event["event_schema_version"] = event_schema_version
    return event, errors, checked


def decimal_property(name: str, value: Any, errors: dict[str, list[str]]) -> Any:
    """Return a decimal property as it goes out: a plain decimal string; record why not in `errors`.

    A float is refused: it cannot hold 4.99 exactly (it is 4.99000000000000021...),
    and revenue must add up to the cent. A Decimal or an integer is written without
    exponent; a string is kept as given once it reads as a number (the validator
    judges its digits and sign).
    """
    if isinstance(value, Decimal):
        if value.is_finite():
            return format(value, "f")
        message = f"{value} is not a finite number"
    elif isinstance(value, (float, bool)):
        message = f"must be a Decimal or a string such as '4.99', not a {type(value).__name__} (inexact)"
    elif isinstance(value, int):
        return str(value)
    elif isinstance(value, str):
        try:
            if Decimal(value).is_finite():
                return value
        except InvalidOperation:
            pass
        message = f"{value!r} is not a decimal number"
    elif value is None:
        return None
    else:
        message = f"must be a Decimal or a string such as '4.99', not {type(value).__name__}"
    errors[f"properties.{name}"] = [message]
    return value


class EventHelpers(Generic[R]):
    """`track` and the typed helpers of every built-in type; a subclass's `_take` decides what to return.

    Each helper takes the type's properties as keyword arguments (a property left as
    None is not sent), `properties` for any others, and the keyword arguments of
    `track` (occurred_at, platform, app_version, session_id, context, event_id).
    """

    def _take(self, built: BuiltEvent) -> R:
        raise NotImplementedError

    def track(
        self,
        event_type: str,
        player_id: str,
        *,
        occurred_at: datetime | str | None = None,
        properties: Mapping[str, Any] | None = None,
        platform: str | None = None,
        app_version: str | None = None,
        session_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        event_id: str | uuid.UUID | None = None,
        event_schema_version: int | None = None,
    ) -> R:
        """Build an event of any type, built-in or custom (lower snake_case, e.g. "level_up").

        TrackerClient returns the event; Tracker checks and queues it and returns its
        event_id. `occurred_at` defaults to now (an aware datetime or an RFC 3339 string);
        `event_id` defaults to a new UUID, fixed here so that every retry carries it.
        `event_schema_version` pins a custom event to that registered version of its
        type's schema (the one this build of the game was written for); by default the
        server checks it against the latest.
        """
        return self._take(
            build_event(
                event_type,
                player_id,
                occurred_at=occurred_at,
                properties=dict(properties) if properties is not None else None,
                platform=platform,
                app_version=app_version,
                session_id=session_id,
                context=dict(context) if context is not None else None,
                event_id=event_id,
                event_schema_version=event_schema_version,
            )
        )

    def track_install(
        self,
        player_id: str,
        *,
        store: str | None = None,
        campaign: str | None = None,
        country: str | None = None,
        device_model: str | None = None,
        os_version: str | None = None,
        properties: Mapping[str, Any] | None = None,
        **common: Any,
    ) -> R:
        """An `install`: the game's first start on a device; all properties optional."""
        known = {
            "store": store,
            "campaign": campaign,
            "country": country,
            "device_model": device_model,
            "os_version": os_version,
        }
        return self._typed("install", player_id, properties, known, {}, common)

    def track_purchase(
        self,
        player_id: str,
        *,
        transaction_id: str,
        product_id: str,
        price: Decimal | str | int,
        currency: str,
        quantity: int = 1,
        store: str | None = None,
        properties: Mapping[str, Any] | None = None,
        **common: Any,
    ) -> R:
        """A `purchase`; the price goes out as a decimal string (a float is refused)."""
        errors: dict[str, list[str]] = {}
        known = {
            "transaction_id": transaction_id,
            "product_id": product_id,
            "price": decimal_property("price", price, errors),
            "currency": currency,
            "quantity": quantity,
            "store": store,
        }
        return self._typed("purchase", player_id, properties, known, errors, common)

    def track_session_start(
        self, player_id: str, *, session_id: str, properties: Mapping[str, Any] | None = None, **common: Any
    ) -> R:
        """A `session_start`: a play session began; give every event of the session the same `session_id`."""
        return self._typed("session_start", player_id, properties, {}, {}, {**common, "session_id": session_id})

    def track_session_end(
        self,
        player_id: str,
        *,
        session_id: str,
        duration_ms: int,
        properties: Mapping[str, Any] | None = None,
        **common: Any,
    ) -> R:
        """A `session_end`: the session of `session_id` ended after `duration_ms` (0 to 7 days)."""
        common = {**common, "session_id": session_id}
        return self._typed("session_end", player_id, properties, {"duration_ms": duration_ms}, {}, common)

    def track_progression(
        self,
        player_id: str,
        *,
        status: str,
        level: str,
        score: int | None = None,
        attempt: int | None = None,
        properties: Mapping[str, Any] | None = None,
        **common: Any,
    ) -> R:
        """A `progression`: `status` "start", "complete" or "fail" of `level` (e.g. "world1:level3")."""
        known = {"status": status, "level": level, "score": score, "attempt": attempt}
        return self._typed("progression", player_id, properties, known, {}, common)

    def track_resource(
        self,
        player_id: str,
        *,
        flow: str,
        resource: str,
        amount: Decimal | str | int,
        item_type: str | None = None,
        item_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
        **common: Any,
    ) -> R:
        """A `resource`: `amount` (> 0) of a virtual currency or item gained ("source") or spent ("sink")."""
        errors: dict[str, list[str]] = {}
        known = {
            "flow": flow,
            "resource": resource,
            "amount": decimal_property("amount", amount, errors),
            "item_type": item_type,
            "item_id": item_id,
        }
        return self._typed("resource", player_id, properties, known, errors, common)

    def track_ad_impression(
        self,
        player_id: str,
        *,
        ad_network: str,
        ad_format: str,
        ad_unit: str | None = None,
        revenue: Decimal | str | int | None = None,
        currency: str | None = None,
        properties: Mapping[str, Any] | None = None,
        **common: Any,
    ) -> R:
        """An `ad_impression`; `revenue` (>= 0, sub-cent amounts kept) needs its `currency`."""
        errors: dict[str, list[str]] = {}
        known = {
            "ad_network": ad_network,
            "ad_format": ad_format,
            "ad_unit": ad_unit,
            "revenue": decimal_property("revenue", revenue, errors),
            "currency": currency,
        }
        return self._typed("ad_impression", player_id, properties, known, errors, common)

    def _typed(
        self,
        event_type: str,
        player_id: str,
        properties: Mapping[str, Any] | None,
        known: dict[str, Any],
        errors: dict[str, list[str]],
        common: dict[str, Any],
    ) -> R:
        """Merge a helper's properties into `properties` (a copy), build the event and take it."""
        merged = dict(properties) if properties else {}
        for name, value in known.items():
            if value is not None:
                merged[name] = value
        context = common.get("context")
        if context is not None:
            common["context"] = dict(context)
        return self._take(build_event(event_type, player_id, properties=merged, errors=errors, **common))
