"""Local checks of an event: the server's rules (events_app/serializers.py), so a bad event fails in the caller's code.

A background SDK cannot raise once the event has left the caller: an event the
server would refuse is only reported later, to a callback. Checking the same rules
when the event is tracked turns those late reports into an exception at the line
that made the mistake, naming every bad field. tests/test_sdk_validation.py runs
each case through both this module and the server's serializer.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ._codes import COUNTRY_CODES, CURRENCY_CODES, minor_units

EVENT_TYPES = ("install", "purchase")
PLATFORMS = ("ios", "android", "windows", "macos", "linux", "web", "playstation", "xbox", "switch", "other")

# The contract's limits (events_app/conf.py holds the server's copy).
MAX_EVENT_BYTES = 32 * 1024
MAX_CONTEXT_BYTES = 8 * 1024
MAX_CLOCK_SKEW = timedelta(hours=24)

# Strings: (max length) per field, as the server declares them.
_EVENT_STRINGS = {"app_version": 64, "session_id": 128}
_INSTALL_STRINGS = {"store": 64, "campaign": 256, "device_model": 128, "os_version": 64}
_PURCHASE_STRINGS = {"transaction_id": 256, "product_id": 256}
_PRICE_MAX_DIGITS = 18
_PRICE_MAX_PLACES = 6
_QUANTITY_MAX = 1_000_000
_CODE_MAX_LENGTH = 8
_NUMBER_STRING_MAX = 1000  # DRF refuses longer numeric strings

_FORBIDDEN_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
# RFC 3339 with a mandatory offset, as events_app/timeutil.py parses it.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})")
_INTEGRAL = re.compile(r"\.0*\s*$")  # DRF's IntegerField takes "3.0" as 3
# The server's record holds integers of 64 bits; its parser reads larger ones as
# floats (and past ~1e308 as infinity, failing the whole batch).
_INT_MIN, _INT_END = -(2**63), 2**64


class InvalidEventError(ValueError):
    """The event breaks the tracker's rules; nothing was queued.

    `errors` maps each bad field, as a dotted path such as "properties.price", to
    its messages; "event" stands for the event as a whole.
    """

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = dict(errors)
        details = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in self.errors.items())
        super().__init__(f"invalid event: {details}")


def validate_event(event: Mapping[str, Any], *, now: datetime | None = None) -> None:
    """Raise InvalidEventError, naming every bad field, unless the tracker would accept `event`.

    `event` is the event as sent (see TrackerClient.track); `now` is this device's
    clock, used for the rule that an event may not lie more than 24 h ahead.
    """
    errors = event_errors(event, now=now)
    if errors:
        raise InvalidEventError(errors)
    encode_event(event)  # what JSON cannot carry, and the size limit


def event_errors(event: Any, *, now: datetime | None = None, checked: Collection[str] = ()) -> dict[str, list[str]]:
    """Return the bad fields of `event` and their messages; empty when the field rules hold.

    The size of the encoded event is checked by `encode_event`, which has the bytes.
    `checked` names fields the caller has already checked (an event_id or a time
    the SDK made itself), to keep track_* fast.
    """
    if not isinstance(event, (dict, Mapping)):
        return {"event": [f"must be a mapping (a JSON object), not {type(event).__name__}"]}
    errors: dict[str, list[str]] = {}

    if "event_id" in event and "event_id" not in checked:
        message = _uuid_problem(event["event_id"])
        if message:
            errors["event_id"] = [message]

    event_type = event.get("event_type")
    if event_type is None:
        errors["event_type"] = ["is required"]
    elif not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        errors["event_type"] = [f"must be one of {', '.join(EVENT_TYPES)}, not {event_type!r}"]
        event_type = None

    message = _string_problem(event.get("player_id"), 128, required=True)
    if message:
        errors["player_id"] = [message]

    sent_at = None
    if event.get("sent_at") is not None:
        sent_at, message = _timestamp(event["sent_at"])
        if message:
            errors["sent_at"] = [message]
    if "occurred_at" not in checked:
        occurred_at, message = _timestamp(event.get("occurred_at"))
        if not message and "sent_at" not in errors:
            reference = sent_at or now or datetime.now(UTC)
            if occurred_at - reference > MAX_CLOCK_SKEW:
                message = "lies more than 24 h ahead of the clock (this device's, or sent_at)"
        if message:
            errors["occurred_at"] = [message]

    platform = event.get("platform")
    if platform is not None and (not isinstance(platform, str) or platform not in PLATFORMS):
        errors["platform"] = [f"must be one of {', '.join(PLATFORMS)}, not {platform!r}"]

    for field, max_length in _EVENT_STRINGS.items():
        value = event.get(field)
        if value is not None:
            message = _string_problem(value, max_length)
            if message:
                errors[field] = [message]

    if "properties" in event:
        properties = event["properties"]
        if not isinstance(properties, (dict, Mapping)):
            errors["properties"] = [_object_problem(properties)]
            event_type = None  # the server skips the per-type checks too
    else:
        properties = {}
    if event_type == "install":
        _check_install(properties, errors)
    elif event_type == "purchase":
        _check_purchase(properties, errors)
    if isinstance(properties, (dict, Mapping)):
        _check_json_values(properties, "properties", errors)

    context = event.get("context")
    if context is not None:
        if not isinstance(context, (dict, Mapping)):
            errors["context"] = [_object_problem(context)]
        elif _check_json_values(context, "context", errors):
            try:
                size = len(encode_json(context))
            except (TypeError, ValueError, RecursionError) as err:
                errors["context"] = [f"cannot be sent as JSON: {err}"]
            else:
                if size > MAX_CONTEXT_BYTES:
                    errors["context"] = [f"is {size} bytes as JSON; at most {MAX_CONTEXT_BYTES} are allowed"]
    return errors


def encode_event(event: Mapping[str, Any]) -> bytes:
    """Return `event` as compact UTF-8 JSON, or raise InvalidEventError if it cannot go out as one."""
    try:
        data = encode_json(event)
    except (TypeError, ValueError, RecursionError):
        raise InvalidEventError(_encoding_errors(event) or {"event": ["cannot be encoded as JSON"]}) from None
    if len(data) > MAX_EVENT_BYTES:
        raise InvalidEventError({"event": [f"is {len(data)} bytes as JSON; at most {MAX_EVENT_BYTES} are allowed"]})
    return data


def encode_json(value: Any) -> bytes:
    """Return `value` as compact UTF-8 JSON; Decimal, datetime and UUID become strings.

    NaN and infinities are refused (they are not JSON, and the server would refuse
    the whole batch), and so are lone surrogates (not UTF-8).
    """
    return _ENCODER.encode(value).encode()


def format_timestamp(value: datetime | str) -> str:
    """Return an RFC 3339 UTC timestamp ending in Z; strings pass through unchanged."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timestamp {value.isoformat()} has no time zone; use an aware datetime")
    return value.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def format_price(price: Decimal | str | int) -> str:
    """Return a price as a plain decimal string; refuse floats, which are inexact."""
    if isinstance(price, (float, bool)):
        raise TypeError("price must be a Decimal or a string such as '4.99', not a float")
    try:
        amount = Decimal(price)
    except (InvalidOperation, TypeError, ValueError) as err:
        raise ValueError(f"price {price!r} is not a decimal number") from err
    if not amount.is_finite():
        raise ValueError(f"price {price!r} is not a finite number")
    return format(amount, "f")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a finite number")
        return format(value, "f")
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default)


def _encoding_errors(event: Mapping[str, Any]) -> dict[str, list[str]]:
    """Return which fields of `event` cannot be encoded (the slow path, after encoding failed)."""
    errors: dict[str, list[str]] = {}
    for field, value in event.items():
        items = value.items() if field in ("properties", "context") and isinstance(value, Mapping) else [(None, value)]
        for key, item in items:
            try:
                encode_json(item)
            except (TypeError, ValueError, RecursionError) as err:
                name = field if key is None else f"{field}.{key}"
                errors[name] = [f"cannot be sent as JSON: {err}"]
    return errors


def _check_json_values(value: Mapping[str, Any], path: str, errors: dict[str, list[str]]) -> bool:
    """Record values the server cannot read back; return True if there were none.

    Non-string keys would be turned into strings and could collide, and the server
    refuses a body with duplicate keys; integers beyond 64 bits do not fit the
    record, and huge ones turn into infinity and fail the whole batch.
    """
    if type(value) is dict:  # the common case, cheaply: flat, with strings and small numbers
        for key, item in value.items():
            kind = type(item)
            if type(key) is not str or not (
                kind is str or kind is bool or item is None or (kind is int and _INT_MIN <= item < _INT_END)
            ):
                break
        else:
            return True
    ok = True
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        current, where = stack.pop()
        if isinstance(current, Mapping):
            for key, item in current.items():
                if not isinstance(key, str):
                    errors.setdefault(where, []).append(f"has a key that is not a string: {key!r}")
                    ok = False
                elif isinstance(item, (Mapping, list, tuple, int, float)):
                    stack.append((item, f"{where}.{key}" if where == path else where))
        elif isinstance(current, (list, tuple)):
            stack.extend((item, where) for item in current if isinstance(item, (Mapping, list, tuple, int, float)))
        elif isinstance(current, int):
            if not isinstance(current, bool) and not _INT_MIN <= current < _INT_END:
                errors.setdefault(where, []).append("has an integer beyond 64 bits")
                ok = False
        elif isinstance(current, float) and (current != current or current in (float("inf"), float("-inf"))):
            errors.setdefault(where, []).append("has NaN or an infinity, which JSON cannot hold")
            ok = False
    return ok


def _check_install(properties: Mapping[str, Any], errors: dict[str, list[str]]) -> None:
    for field, max_length in _INSTALL_STRINGS.items():
        if field in properties:
            message = _string_problem(properties[field], max_length, required=True)
            if message:
                errors[f"properties.{field}"] = [message]
    if "country" in properties:
        message = _code_problem(properties["country"], COUNTRY_CODES, "ISO 3166-1 alpha-2 country")
        if message:
            errors["properties.country"] = [message]


def _check_purchase(properties: Mapping[str, Any], errors: dict[str, list[str]]) -> None:
    for field, max_length in _PURCHASE_STRINGS.items():
        message = _string_problem(properties.get(field), max_length, required=True)
        if message:
            errors[f"properties.{field}"] = [message]
    amount, message = _price(properties.get("price"))
    if message:
        errors["properties.price"] = [message]
    message = _code_problem(properties.get("currency"), CURRENCY_CODES, "ISO 4217 currency")
    if message:
        errors["properties.currency"] = [message]
    if "quantity" in properties:
        message = _quantity_problem(properties["quantity"])
        if message:
            errors["properties.quantity"] = [message]
    if "store" in properties:
        message = _string_problem(properties["store"], 64, required=True)
        if message:
            errors["properties.store"] = [message]
    if not any(field.startswith("properties.") for field in errors):
        # Like the server, only once each property is valid on its own.
        currency = properties["currency"].upper()
        allowed = minor_units(currency)
        places = _decimal_places(amount)
        if allowed is not None and places > allowed:
            errors["properties.price"] = [f"{currency} allows at most {allowed} decimals (ISO 4217), not {places}"]


def _string_problem(value: Any, max_length: int, *, required: bool = False) -> str | None:
    # The common case first, cheaply: an ASCII string cannot hold a lone surrogate.
    if type(value) is str and 0 < len(value) <= max_length and value.isascii() and "\x00" not in value:
        return None
    if value is None:
        return "is required" if required else None
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value:
        return "may not be blank"
    if len(value) > max_length:
        return f"has {len(value)} characters; at most {max_length} are allowed"
    if _FORBIDDEN_CHARACTERS.search(value):
        return "contains a character that is not allowed (NUL or a lone surrogate)"
    return None


def _code_problem(value: Any, codes: frozenset[str], standard: str) -> str | None:
    message = _string_problem(value, _CODE_MAX_LENGTH, required=True)
    if message:
        return message
    if value.upper() not in codes:
        return f"{value!r} is not a valid {standard} code"
    return None


def _uuid_problem(value: Any) -> str | None:
    if isinstance(value, uuid.UUID):
        return None
    if isinstance(value, str):
        try:
            uuid.UUID(value)
            return None
        except ValueError:
            pass
    return f"must be a UUID string, not {value!r}"


def _timestamp(value: Any) -> tuple[datetime | None, str | None]:
    """Return (the parsed timestamp, None) or (None, what is wrong with it)."""
    if value is None:
        return None, "is required"
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return None, "has no time zone; use an aware datetime"
        return value, None
    message = "must be an RFC 3339 timestamp with an offset, e.g. 2026-01-31T12:00:00Z"
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        return None, message
    text = value.upper()
    dot = text.find(".")
    if dot != -1:  # keep microseconds, as the server does
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        if end - dot > 7:
            text = text[: dot + 7] + text[end:]
    try:
        parsed = datetime.fromisoformat(text)
        parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None, message
    return parsed, None


def _price(value: Any) -> tuple[Decimal, None] | tuple[None, str]:
    """Return (the price, None) if the server would take it, else (None, why not)."""
    if value is None:
        return None, "is required"
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        return None, f"must be a decimal number (a string such as '4.99'), not {type(value).__name__}"
    text = str(value).strip()
    if len(text) > _NUMBER_STRING_MAX:
        return None, "is too long"
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None, f"{value!r} is not a decimal number"
    if not amount.is_finite():
        return None, f"{value!r} is not a finite number"
    _, digits, exponent = amount.as_tuple()
    if exponent >= 0:
        total, places = len(digits) + exponent, 0
    elif len(digits) > -exponent:
        total, places = len(digits), -exponent
    else:
        total = places = -exponent
    if total > _PRICE_MAX_DIGITS:
        return None, f"has more than {_PRICE_MAX_DIGITS} digits"
    if places > _PRICE_MAX_PLACES:
        return None, f"has more than {_PRICE_MAX_PLACES} decimal places"
    if total - places > _PRICE_MAX_DIGITS - _PRICE_MAX_PLACES:
        return None, f"has more than {_PRICE_MAX_DIGITS - _PRICE_MAX_PLACES} digits before the decimal point"
    if amount <= 0:
        return None, "must be greater than 0"
    return amount, None


def _decimal_places(amount: Decimal) -> int:
    """Return how many decimals `amount` really has, trailing zeros ignored ("4.990" has 2)."""
    exponent = amount.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _quantity_problem(value: Any) -> str | None:
    if isinstance(value, str) and len(value) > _NUMBER_STRING_MAX:
        return "is too long"
    try:
        number = int(_INTEGRAL.sub("", str(value)))
    except (TypeError, ValueError):
        return f"must be an integer, not {value!r}"
    if not 1 <= number <= _QUANTITY_MAX:
        return f"must be between 1 and {_QUANTITY_MAX}"
    return None


def _object_problem(value: Any) -> str:
    return "may not be null" if value is None else f"must be an object (a dict), not {type(value).__name__}"
