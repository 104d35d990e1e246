"""Local checks of an event against the contract (sdk/contract.py), so a bad event fails in the caller's code.

A background SDK cannot raise once the event has left the caller: an event the
server would refuse is only reported later, to a callback. Checking the same rules
when the event is tracked turns those late reports into an exception at the line
that made the mistake, naming every bad field. Every rule is read from the contract
module the server builds its serializers from; tests/system/test_sdk_parity.py runs
each case through both this module and the server's serializer. Custom types are
checked for their name, size and JSON-ness only: their schemas live on the server.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from ._codes import COUNTRY_CODES, CURRENCY_CODES, minor_units
from .contract import (
    BUILTIN_TYPES,
    CODE_MAX_LENGTH,
    CUSTOM_EVENT_TYPE_PATTERN,
    DECIMAL_MAX_DIGITS,
    DECIMAL_MAX_PLACES,
    EVENT_STRINGS,
    FORBIDDEN_CHARACTERS,
    MAX_CLOCK_SKEW_SECONDS,
    MAX_CONTEXT_BYTES,
    MAX_EVENT_BYTES,
    PLATFORMS,
    PLAYER_ID_MAX_LENGTH,
    RFC3339,
    Prop,
    TypeRules,
    is_custom_type_name,
)

MAX_CLOCK_SKEW = timedelta(seconds=MAX_CLOCK_SKEW_SECONDS)
_SKEW_HOURS = MAX_CLOCK_SKEW_SECONDS / 3600

# DRF's number fields refuse longer strings (their MAX_STRING_LENGTH).
_NUMBER_STRING_MAX = 1000
_INTEGRAL = re.compile(r"\.0*\s*$")  # DRF's IntegerField takes "3.0" as 3
# The server's record holds integers of 64 bits; its parser reads larger ones as
# floats (and past ~1e308 as infinity, failing the whole batch).
_INT_MIN, _INT_END = -(2**63), 2**64
_EVENT_STRINGS = tuple(EVENT_STRINGS.items())  # iterated on every event: a tuple is quicker than the mapping


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
    clock, used for the rule that an event may not lie more than 24 h ahead. An
    event of a custom type passes if its name, size and values are fit to send:
    whether its properties fit the game's schema only the server knows.
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
    plan: _Plan | None = None
    if event_type is None:
        errors["event_type"] = ["is required"]
    elif type(event_type) is str and event_type in _PLANS:
        plan = _PLANS[event_type]
    elif not is_custom_type_name(event_type):
        errors["event_type"] = [
            f"must be a built-in type or a custom type name ({CUSTOM_EVENT_TYPE_PATTERN}), not {event_type!r}"
        ]

    message = _string_problem(event.get("player_id"), PLAYER_ID_MAX_LENGTH, required=True)
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
                message = f"lies more than {_SKEW_HOURS:g} h ahead of the clock (this device's, or sent_at)"
        if message:
            errors["occurred_at"] = [message]

    platform = event.get("platform")
    if platform is not None and (not isinstance(platform, str) or platform not in PLATFORMS):
        errors["platform"] = [f"must be one of {', '.join(PLATFORMS)}, not {platform!r}"]

    for field, max_length in _EVENT_STRINGS:
        value = event.get(field)
        if value is not None:
            message = _string_problem(value, max_length)
            if message:
                errors[field] = [message]
    if plan is not None:
        for field in plan.rules.required_fields:
            if event.get(field) is None and field not in errors:
                errors[field] = [f"is required for {event_type} events"]

    version = event.get("event_schema_version")
    if version is not None:
        if type(version) is not int or version < 1:
            errors["event_schema_version"] = [f"must be an integer of at least 1, not {version!r}"]
        elif plan is not None:
            errors["event_schema_version"] = ["built-in event types have no schema version: leave it out"]

    properties = event.get("properties", {})
    if not isinstance(properties, (dict, Mapping)):
        errors["properties"] = [_object_problem(properties)]
    else:
        if plan is not None:
            _check_properties(plan, properties, errors)
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
    record, and huge ones turn into infinity and fail the whole batch; a NUL in a
    key or a string cannot be stored (the server refuses the event).
    """
    if type(value) is dict:  # the common case, cheaply: flat, with strings and small numbers
        for key, item in value.items():
            kind = type(item)
            if (
                type(key) is not str
                or "\x00" in key
                or not (
                    (kind is str and "\x00" not in item)
                    or kind is bool
                    or item is None
                    or (kind is int and _INT_MIN <= item < _INT_END)
                )
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
                elif isinstance(item, (Mapping, list, tuple, int, float, str)):
                    name = f"{where}.{key}" if where == path else where
                    if "\x00" in key:
                        errors.setdefault(name, []).append("has a key with a NUL character, which cannot be stored")
                        ok = False
                    stack.append((item, name))
        elif isinstance(current, (list, tuple)):
            stack.extend((item, where) for item in current if isinstance(item, (Mapping, list, tuple, int, float, str)))
        elif isinstance(current, str):
            if "\x00" in current:
                errors.setdefault(where, []).append("has a NUL character, which cannot be stored")
                ok = False
        elif isinstance(current, int):
            if not isinstance(current, bool) and not _INT_MIN <= current < _INT_END:
                errors.setdefault(where, []).append("has an integer beyond 64 bits")
                ok = False
        elif isinstance(current, float) and (current != current or current in (float("inf"), float("-inf"))):
            errors.setdefault(where, []).append("has NaN or an infinity, which JSON cannot hold")
            ok = False
    return ok


def _check_properties(plan: _Plan, properties: Mapping[str, Any], errors: dict[str, list[str]]) -> None:
    """Record the properties that break the rules of a built-in type, then its money rule."""
    bad = False
    for name, required, max_length, check in plan.checks:
        if name in properties:
            value = properties[name]
            # The common case first, cheaply: a short ASCII string for a string property.
            if type(value) is str and 0 < len(value) <= max_length and value.isascii() and "\x00" not in value:
                continue
            message = "may not be null" if value is None else check(value)
        elif required:
            message = "is required"
        else:
            continue
        if message:
            errors[f"properties.{name}"] = [message]
            bad = True
    money = plan.rules.money
    if money is None or bad:
        return  # like the server: the money rule runs once each property is valid on its own
    amount = properties.get(money.amount)
    if amount is None:
        return
    currency = properties.get(money.currency)
    if currency is None:
        if money.currency_required:
            errors[f"properties.{money.currency}"] = [f"is required when {money.amount} is given"]
        return
    if not money.minor_units:
        return
    currency = currency.upper()
    allowed = minor_units(currency)
    places = _decimal_places(Decimal(str(amount).strip()))  # valid: checked above
    if allowed is not None and places > allowed:
        message = f"{currency} allows at most {allowed} decimals (ISO 4217), not {places}"
        errors[f"properties.{money.amount}"] = [message]


def _property_check(prop: Prop) -> Callable[[Any], str | None]:
    """Return the check of one property's (non-null) value, as the server's field for `prop` judges it."""
    if prop.kind == "string":
        max_length = prop.max_length or 0
        return lambda value: _string_problem(value, max_length, required=True)
    if prop.kind == "choice":
        choices = prop.choices
        message = f"must be one of {', '.join(choices)}, not "
        return lambda value: None if isinstance(value, str) and value in choices else f"{message}{value!r}"
    if prop.kind == "integer":
        return lambda value: _integer_problem(value, prop.minimum, prop.maximum)
    if prop.kind == "decimal":
        minimum = prop.minimum or 0
        return lambda value: _decimal(value, minimum, prop.inclusive)[1]
    if prop.kind == "country":
        return lambda value: _code_problem(value, COUNTRY_CODES, "ISO 3166-1 alpha-2 country")
    if prop.kind == "currency":
        return lambda value: _code_problem(value, CURRENCY_CODES, "ISO 4217 currency")
    raise ValueError(f"unknown property kind {prop.kind!r}")


class _Plan(NamedTuple):
    """How to check one built-in type, made once from its contract rules."""

    rules: TypeRules
    # (property, required, the longest string that passes at once (0: none does), check of its value)
    checks: tuple[tuple[str, bool, int, Callable[[Any], str | None]], ...]


_PLANS: dict[str, _Plan] = {
    name: _Plan(
        rules,
        tuple(
            (prop_name, prop.required, (prop.max_length or 0) if prop.kind == "string" else 0, _property_check(prop))
            for prop_name, prop in rules.properties.items()
        ),
    )
    for name, rules in BUILTIN_TYPES.items()
}


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
    if FORBIDDEN_CHARACTERS.search(value):
        return "contains a character that is not allowed (NUL or a lone surrogate)"
    return None


def _code_problem(value: Any, codes: frozenset[str], standard: str) -> str | None:
    message = _string_problem(value, CODE_MAX_LENGTH, required=True)
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
    if not isinstance(value, str) or not RFC3339.fullmatch(value):
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


def _decimal(value: Any, minimum: int, inclusive: bool) -> tuple[Decimal, None] | tuple[None, str]:
    """Return (the amount, None) if the server's decimal field would take it, else (None, why not).

    Above `minimum`, or at least it when `inclusive`; within the contract's digits.
    """
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
    if total > DECIMAL_MAX_DIGITS:
        return None, f"has more than {DECIMAL_MAX_DIGITS} digits"
    if places > DECIMAL_MAX_PLACES:
        return None, f"has more than {DECIMAL_MAX_PLACES} decimal places"
    if total - places > DECIMAL_MAX_DIGITS - DECIMAL_MAX_PLACES:
        return None, f"has more than {DECIMAL_MAX_DIGITS - DECIMAL_MAX_PLACES} digits before the decimal point"
    if inclusive and amount < minimum:
        return None, f"must be at least {minimum}"
    if not inclusive and amount <= minimum:
        return None, f"must be greater than {minimum}"
    return amount, None


def _decimal_places(amount: Decimal) -> int:
    """Return how many decimals `amount` really has, trailing zeros ignored ("4.990" has 2)."""
    exponent = amount.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _integer_problem(value: Any, minimum: int | None, maximum: int | None) -> str | None:
    if isinstance(value, str) and len(value) > _NUMBER_STRING_MAX:
        return "is too long"
    try:
        number = int(_INTEGRAL.sub("", str(value)))
    except (TypeError, ValueError):
        return f"must be an integer, not {value!r}"
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        if maximum is None:
            return f"must be at least {minimum}"
        if minimum is None:
            return f"must be at most {maximum}"
        return f"must be between {minimum} and {maximum}"
    return None


def _object_problem(value: Any) -> str:
    return "may not be null" if value is None else f"must be an object (a dict), not {type(value).__name__}"
