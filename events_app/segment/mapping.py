"""Segment messages onto native events: pure functions from one Segment call to an event dict, or to its errors.

The contract (design.md, "Segment-compatible endpoints") fixes the mapping; what a
Segment message may carry that the contract cannot hold is refused here with errors
named by the message's own fields (`userId`, `timestamp`, `event`), or, for context
and app_version, cut down and noted (docs/segment.md lists each case), never passed
on to fail later. Everything the native rules judge (properties per type, custom
schemas, clock skew) is left to the event serializer, so those rules stay written once.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

import orjson

from events_app.event_types.timeutil import parse_rfc3339
from sdk.contract import (
    CUSTOM_EVENT_TYPE,
    DECIMAL_MAX_PLACES,
    EVENT_STRINGS,
    FORBIDDEN_CHARACTERS,
    MAX_CONTEXT_BYTES,
    PLAYER_ID_MAX_LENGTH,
)

# Segment's own limits, answered as Segment answers them (the views and the service).
# "KB" read as KiB: the mobile SDKs close a batch file once it passes 475,000 bytes,
# so a file can hold 475,000 bytes plus one 32 KiB message, which 500 KiB still takes.
MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2500

CALL_TYPES = ("track", "identify", "page", "screen", "group", "alias")

# The namespace of the uuid5 a non-UUID messageId becomes. Changing it would make every
# such message stored before the change look new again: never change it.
MESSAGE_ID_NAMESPACE = uuid.UUID("c2e50517-dde3-4751-a95c-5a7db4566098")

# Semantic events of Segment's spec onto built-in types, matched by their snake_case so
# "Order Completed", "order_completed" and "orderCompleted" are the same event.
INSTALL_EVENT = "application_installed"
ORDER_COMPLETED_EVENT = "order_completed"

# Where the ids a Segment message carried are kept in the event's context: the
# anonymousId is what links an anonymous player to the userId an identify gives them.
CONTEXT_IDS_KEY = "segment"
# Names the context keys dropped to fit MAX_CONTEXT_BYTES.
CONTEXT_TRUNCATED_KEY = "_truncated"

NESTED_TOO_DEEPLY = "Cannot be encoded as JSON: nested too deeply."

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# "+0000" (Java's and Objective-C's formatters) means "+00:00"; RFC 3339 wants the colon.
_OFFSET_WITHOUT_COLON = re.compile(r"([+-]\d{2})(\d{2})$")

# context.os.name (lower-cased) by prefix, onto the contract's platforms; any other
# name is "other". Segment's SDKs send "iOS", "iPadOS", "Android", "macOS", "Mac OS X",
# "Windows", "Linux"; Unity's names (IPhonePlayer, OSXPlayer, WebGLPlayer, PS5,
# XboxOne, Switch) are here too.
_OS_PLATFORMS = (
    ("ios", "ios"),
    ("ipados", "ios"),
    ("iphone", "ios"),
    ("android", "android"),
    ("windows", "windows"),
    ("microsoft windows", "windows"),
    ("mac", "macos"),
    ("os x", "macos"),
    ("osx", "macos"),
    ("darwin", "macos"),
    ("linux", "linux"),
    ("ubuntu", "linux"),
    ("debian", "linux"),
    ("fedora", "linux"),
    ("playstation", "playstation"),
    ("ps4", "playstation"),
    ("ps5", "playstation"),
    ("xbox", "xbox"),
    ("gamecore", "xbox"),
    ("nintendo", "switch"),
    ("switch", "switch"),
    ("web", "web"),
)
# context.library.name of the web SDKs: their events come from a browser, so the platform
# is "web" when they name no OS (RudderStack's JS SDK sends an empty os.name).
WEB_LIBRARIES = frozenset({"analytics.js", "analytics-next", "RudderLabs JavaScript SDK"})
# A context.app that names one of these describes the SDK, not the game: RudderStack's
# JS SDK fills context.app with its own name, namespace and version, which would make
# every web event's app_version the SDK's. Matched against the app's name and namespace;
# an app named as context.library is the SDK's too.
SDK_APP_NAMES = frozenset({"RudderLabs JavaScript SDK", "com.rudderlabs.javascript"})


@dataclass(frozen=True)
class Envelope:
    """What a batch gives all its messages: its `sentAt` and `context` (its `integrations` are ignored)."""

    sent_at: object = None
    context: dict = field(default_factory=dict)


NO_ENVELOPE = Envelope()


@dataclass
class Mapped:
    """One Segment message mapped: the native event, or the errors that refused it.

    `original` is the message as sent minus its writeKey (a credential is never kept),
    for the admin's rejected events; `notes` say what was cut down to fit the contract.
    """

    original: object
    event: dict | None = None
    errors: dict | None = None
    notes: list[str] = field(default_factory=list)
    event_type: str | None = None  # the type it maps to, when known (also for a refused message)


def map_message(
    message: object, *, received_at: datetime, envelope: Envelope = NO_ENVELOPE, call_type: str | None = None
) -> Mapped:
    """Return the native event `message` maps onto, or every error that refuses it.

    `call_type` is the call a single-call endpoint (/v1/track...) implies; in a batch
    each message names its own `type`. `received_at` is the event time of a message
    that gives neither a timestamp nor a sentAt (Segment stamps those on arrival).
    """
    original = without_write_key(message)
    if not isinstance(message, dict):
        return Mapped(original, errors={"non_field_errors": [f"Expected a JSON object, got {_json_type(message)}."]})
    size = json_size(message)
    if size is None:
        return Mapped(original, errors={"non_field_errors": [NESTED_TOO_DEEPLY]})
    if size > MAX_MESSAGE_BYTES:
        return Mapped(original, errors={"non_field_errors": [too_large_message(size)]})

    errors: dict = {}
    notes: list[str] = []
    kind = call_type or message.get("type")
    if kind not in CALL_TYPES:
        errors["type"] = [f"Expected one of {', '.join(CALL_TYPES)}, got {_short(kind)}."]
    event_id = _event_id(message, errors)
    player_id = _player_id(message, errors)
    sent_at = _timestamp_field(message, "sentAt", errors) or _envelope_sent_at(envelope, errors)
    occurred_at = _occurred_at(message, errors) or sent_at or received_at.isoformat()
    context = _context(message, envelope, errors)
    typed = _typed(kind, message, errors) if kind in CALL_TYPES else None
    if errors:
        return Mapped(original, errors=errors, event_type=typed[0] if typed else None)

    event_type, properties = typed
    event = {
        "event_type": event_type,
        "player_id": player_id,
        "occurred_at": occurred_at,
        "properties": properties,
    }
    if event_id is not None:
        event["event_id"] = event_id
    if sent_at is not None:
        event["sent_at"] = sent_at
    platform = platform_for(context)
    if platform is not None:
        event["platform"] = platform
    app_version = _app_version(context, notes)
    if app_version is not None:
        event["app_version"] = app_version
    ids = {key: _id_text(message.get(key)) for key in ("messageId", "userId", "anonymousId")}
    ids = {key: value for key, value in ids.items() if value is not None}
    if ids:
        context = {**context, CONTEXT_IDS_KEY: ids}
    event["context"] = _fit_context(context, notes)
    return Mapped(original, event=event, notes=notes, event_type=event_type)


def without_write_key(message: object) -> object:
    """Return `message` without its `writeKey`: analytics.js puts the credential in every message."""
    if isinstance(message, dict) and "writeKey" in message:
        return {key: value for key, value in message.items() if key != "writeKey"}
    return message


def json_size(value: object) -> int | None:
    """Return the size of `value` as compact JSON, the measure of every Segment limit here.

    None if it cannot be encoded: nested deeper than orjson writes (255 levels), which
    its parser (1,024 levels) still reads.
    """
    try:
        return len(orjson.dumps(value))
    except orjson.JSONEncodeError:
        return None


def event_id_for(message_id: str) -> str:
    """Return the event_id of a messageId: the UUID it is, else a uuid5 of it, the same every time."""
    if _UUID.fullmatch(message_id):
        return message_id.lower()  # the canonical form, as str(uuid.UUID(...)) gives it
    return str(uuid.uuid5(MESSAGE_ID_NAMESPACE, message_id))


def snake_case(name: str) -> str:
    """Return `name` in lower snake_case: "Level Up" and "levelUp" -> "level_up", "Niveau Réussi" -> "niveau_reussi"."""
    return _cached_snake_case(name) if len(name) <= _CACHED_LENGTH else _snake_case(name)


# A game sends a few dozen event names, OS names and, per batch, one sentAt, over and
# over: each is worked out once. Only short strings are cached, so that a client
# sending long distinct ones cannot fill the memory.
_CACHED_LENGTH = 128


def _snake_case(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", ascii_name)
    words = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", words)
    return re.sub(r"[^a-z0-9]+", "_", words.lower()).strip("_")


_cached_snake_case = functools.lru_cache(maxsize=4096)(_snake_case)


def platform_for(context: dict) -> str | None:
    """Return the contract's platform for a Segment context: by context.os.name, else "web" for a web SDK."""
    os_info = context.get("os")
    name = os_info.get("name") if isinstance(os_info, dict) else None
    if isinstance(name, str) and name.strip():
        return _cached_os_platform(name) if len(name) <= _CACHED_LENGTH else _os_platform(name)
    if _library_name(context) in WEB_LIBRARIES:
        return "web"
    return None


def describes_the_sdk(app: dict, context: dict) -> bool:
    """Return True if context.app names the SDK that sent the event rather than the game."""
    names = {app.get("name"), app.get("namespace")} - {None, ""}
    if names & SDK_APP_NAMES:
        return True
    library = _library_name(context)
    return library is not None and app.get("name") == library


def _library_name(context: dict) -> str | None:
    library = context.get("library")
    name = library.get("name") if isinstance(library, dict) else None
    return name if isinstance(name, str) and name else None


def _os_platform(name: str) -> str:
    lowered = name.strip().lower()
    return next((platform for prefix, platform in _OS_PLATFORMS if lowered.startswith(prefix)), "other")


_cached_os_platform = functools.lru_cache(maxsize=1024)(_os_platform)


def _event_id(message: dict, errors: dict) -> str | None:
    message_id = message.get("messageId")
    if message_id is None or message_id == "":
        return None  # the server makes one; without a messageId a retry cannot be recognised
    if isinstance(message_id, bool) or not isinstance(message_id, str | int):
        errors["messageId"] = ["Expected a string."]
        return None
    message_id = str(message_id)
    if FORBIDDEN_CHARACTERS.search(message_id):
        errors["messageId"] = ["Contains a character that is not allowed (NUL or a lone surrogate)."]
        return None
    return event_id_for(message_id)


def _player_id(message: dict, errors: dict) -> str | None:
    """Return userId, else anonymousId, as the player_id; refuse an id the contract cannot hold whole."""
    for key in ("userId", "anonymousId"):
        value = message.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            errors[key] = ["Expected a string."]
            return None
        text = str(value)
        if len(text) > PLAYER_ID_MAX_LENGTH:
            # Cutting it would make two players one: refuse instead.
            errors[key] = [f"Is {len(text)} characters; a player_id has at most {PLAYER_ID_MAX_LENGTH}."]
            return None
        return text
    errors["userId"] = ["A message needs a userId or an anonymousId."]
    return None


def _occurred_at(message: dict, errors: dict) -> str | None:
    """Return `timestamp`, else `originalTimestamp`, checked and in RFC 3339 form."""
    for key in ("timestamp", "originalTimestamp"):
        if message.get(key) is not None:
            return _timestamp_field(message, key, errors)
    return None


def _envelope_sent_at(envelope: Envelope, errors: dict) -> str | None:
    if envelope.sent_at is None:
        return None
    return _timestamp_field({"sentAt": envelope.sent_at}, "sentAt", errors)


def _timestamp_field(message: dict, key: str, errors: dict) -> str | None:
    """Return the timestamp at `key` as RFC 3339 (an offset "+0000" gets its colon), or None and an error."""
    value = message.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        text, error = None, _NOT_A_TIMESTAMP
    elif len(value) <= _CACHED_LENGTH:
        text, error = _cached_checked_timestamp(value)
    else:
        text, error = _checked_timestamp(value)
    if error is not None:
        errors[key] = [error]
    return text


_NOT_A_TIMESTAMP = "Expected an ISO 8601 timestamp with an offset, e.g. 2026-01-31T12:00:00.000Z."


def _checked_timestamp(value: str) -> tuple[str | None, str | None]:
    """Return (the timestamp in RFC 3339 form, None), or (None, why it is refused)."""
    text = _OFFSET_WITHOUT_COLON.sub(r"\1:\2", value.strip())
    if parse_rfc3339(text) is not None:
        return text, None
    if parse_rfc3339(text + "Z") is not None:
        # A time without an offset could be any zone's; guessing UTC would shift a
        # player's events by hours without anyone noticing. Refuse it instead.
        return None, "Has no UTC offset; send one, e.g. 2026-01-31T12:00:00Z or +02:00."
    return None, _NOT_A_TIMESTAMP


_cached_checked_timestamp = functools.lru_cache(maxsize=1024)(_checked_timestamp)


def _context(message: dict, envelope: Envelope, errors: dict) -> dict:
    """Return the message's context over the batch's (the message wins, key by key, at every depth)."""
    context = message.get("context")
    if context is None:
        context = {}
    if not isinstance(context, dict):
        errors["context"] = ["Expected a JSON object."]
        return {}
    return _merged(envelope.context, context) if envelope.context else context


def _merged(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        below = merged.get(key)
        merged[key] = _merged(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return merged


def _typed(kind: str, message: dict, errors: dict) -> tuple[str, dict] | None:
    """Return (event_type, properties) for the call: a track by its event name, the others as built-ins."""
    if kind == "track":
        return _track(message, errors)
    if kind == "identify":
        return kind, _identify_traits(message, errors)
    if kind == "group":
        properties = _object(message, "traits", errors)
        _copy_id(message, "groupId", properties)
        return kind, properties
    if kind == "alias":
        properties = {}
        _copy_id(message, "previousId", properties)
        return kind, properties
    properties = _object(message, "properties", errors)  # page, screen
    for key in ("name", "category"):
        if isinstance(message.get(key), str):
            properties[key] = message[key]
    return kind, properties


def _identify_traits(message: dict, errors: dict) -> dict:
    """Return an identify's `traits`, else its `context.traits` (RudderStack's JS SDK sends them only there)."""
    traits = _object(message, "traits", errors)
    if traits or "traits" in errors:
        return traits
    context = message.get("context")
    if isinstance(context, dict) and isinstance(context.get("traits"), dict):
        return dict(context["traits"])
    return traits


def _track(message: dict, errors: dict) -> tuple[str, dict] | None:
    properties = _object(message, "properties", errors)
    name = message.get("event")
    if not isinstance(name, str) or not name.strip():
        errors["event"] = ["A track call needs an event name."]
        return None
    event_type = snake_case(name)
    if event_type == INSTALL_EVENT:
        return "install", properties
    if event_type == ORDER_COMPLETED_EVENT:
        return "purchase", _purchase_properties(properties, errors)
    # Any other name is a custom type (the game's schemas and policy apply), or the
    # built-in type of that name ("Progression" -> progression), whose rules apply.
    if not CUSTOM_EVENT_TYPE.fullmatch(event_type):
        errors["event"] = [
            f"{_short(name)} gives the event type {event_type!r}, which is not a valid type name "
            "(lower snake_case, a letter first, at most 64 characters)."
        ]
        return None
    return event_type, properties


def _purchase_properties(properties: dict, errors: dict) -> dict:
    """Return an Order Completed's properties with the purchase fields the contract maps them to."""
    problems: dict = {}
    order_id = _id_text(properties.get("order_id"))
    if order_id is None:
        problems["order_id"] = ["Order Completed needs an order_id: it is the purchase's transaction_id."]
    price = properties.get("revenue")
    if price is None:
        price = properties.get("total")
    if price is None:
        problems["revenue"] = ["Order Completed needs revenue (or total): it is the purchase's price."]
    if problems:
        errors["properties"] = problems
        return properties
    # The order's revenue is one price for the whole order, hence quantity 1.
    return {
        **properties,
        "transaction_id": order_id,
        "product_id": _first_product_id(properties.get("products")) or order_id,
        "price": _without_float_noise(price),
        "quantity": 1,
    }


def _without_float_noise(amount: object) -> object:
    """Return a JSON-number amount rounded to the contract's 6 decimals, as a decimal string.

    A web client's arithmetic sends 3 x 4.33 as 12.989999999999998: past 6 decimals
    that is float noise, never a price. A real third decimal (12.995 EUR) is kept, for
    the currency rules to refuse.
    """
    if not isinstance(amount, float):
        return amount
    try:
        rounded = Decimal(repr(amount)).quantize(_SIX_PLACES, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:  # too many digits to round (1e300): left for the price rules to refuse
        return amount
    return format(rounded.normalize(), "f")


_SIX_PLACES = Decimal(1).scaleb(-DECIMAL_MAX_PLACES)


def _first_product_id(products: object) -> str | None:
    if not isinstance(products, list) or not products or not isinstance(products[0], dict):
        return None
    return _id_text(products[0].get("product_id")) or _id_text(products[0].get("sku"))


def identity_links(message: dict, *, call_type: str | None = None) -> list[tuple[str, str, str]]:
    """Return the (player_id, other id, kind) links a message shows: its anonymousId beside its userId, an alias's join.

    Erasing a player erases its linked ids too (events_app.privacy.identities).
    """
    user = _id_text(message.get("userId"))
    if user is None:
        return []
    links = []
    anonymous = _id_text(message.get("anonymousId"))
    if anonymous is not None and anonymous != user:
        links.append((user, anonymous, "anonymous"))
    previous = _id_text(message.get("previousId"))
    if (call_type or message.get("type")) == "alias" and previous is not None and previous != user:
        links.append((user, previous, "alias"))
    return links


def _id_text(value: object) -> str | None:
    """Return an id given as a string or an integer as text; None for anything else or nothing."""
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return str(value)


def _copy_id(message: dict, key: str, properties: dict) -> None:
    value = _id_text(message.get(key))
    if value is not None:
        properties[key] = value


def _object(message: dict, key: str, errors: dict) -> dict:
    value = message.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors[key] = ["Expected a JSON object."]
        return {}
    return dict(value)  # a copy: the record builder rewrites values in place


def _app_version(context: dict, notes: list[str]) -> str | None:
    """Return context.app.version as the game's app_version, unless context.app describes the SDK."""
    app = context.get("app")
    if not isinstance(app, dict) or describes_the_sdk(app, context):
        return None
    version = app.get("version")
    if isinstance(version, int | float) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not version:
        return None
    limit = EVENT_STRINGS["app_version"]
    if len(version) > limit:
        notes.append(f"context.app.version cut to its first {limit} of {len(version)} characters")
        version = version[:limit]
    return version


def _fit_context(context: dict, notes: list[str]) -> dict:
    """Return `context`, or, when over MAX_CONTEXT_BYTES as JSON, without its largest keys, named under `_truncated`.

    Dropping whole keys (largest first) keeps every value that is kept exact; the
    small ones that say most (app, os, device, library) go last.
    """
    size = json_size(context)
    if size is None or size <= MAX_CONTEXT_BYTES:
        return context  # (the message encoded, so its context does)
    # Each key's share of the encoding, measured once: `"key":value` is its pair's
    # size less the braces, plus a comma. Dropping keys then costs arithmetic, not a
    # new encoding of what is left after each key (quadratic in the number of keys).
    shares = {key: (json_size({key: context[key]}) or 2) - 1 for key in context}
    remaining, dropped = size, []
    for key in sorted(context, key=shares.__getitem__, reverse=True):
        if remaining <= MAX_CONTEXT_BYTES - _TRUNCATED_RESERVE:
            break
        remaining -= shares[key]
        dropped.append(key)
    dropped_set = set(dropped)
    fitted = {key: value for key, value in context.items() if key not in dropped_set}
    fitted[CONTEXT_TRUNCATED_KEY] = _listed_within(dropped, _TRUNCATED_RESERVE - 32)
    # The names are the client's: the note gives how many, never which.
    notes.append(f"context was {size} bytes as JSON, over {MAX_CONTEXT_BYTES}: dropped {len(dropped)} of its keys")
    return fitted


_TRUNCATED_RESERVE = 512  # bytes of a fitted context kept for the names of what was dropped


def _listed_within(names: list[str], budget: int) -> list[str]:
    """Return the first of `names` that fit in `budget` bytes as JSON, then "+N more" for the others."""
    listed: list[str] = []
    used = 2
    for name in names:
        used += (json_size(name) or 0) + 1
        if used > budget:
            return [*listed, f"+{len(names) - len(listed)} more"]
        listed.append(name)
    return listed


def too_large_message(size: int) -> str:
    """Return the reason a message of `size` bytes is refused."""
    return f"Message is {size} bytes as JSON; at most {MAX_MESSAGE_BYTES} are allowed (Segment's 32 KB)."


def _json_type(value: object) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
