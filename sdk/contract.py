"""The event contract as data: types, property rules, enums and limits, read by both the SDK and the server.

Dependency-free on purpose: the SDK ships it and the server (events_app) imports
it, so a limit, an enum or a length is written here once. The server builds its DRF
serializers from `BUILTIN_TYPES`; sdk/validation.py checks events against the same
rules; tests/system/test_sdk_parity.py runs each case through both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType

# Hard limits of the HTTP API.
MAX_BODY_BYTES = 1024 * 1024  # request body, after decompression too
MAX_EVENT_BYTES = 32 * 1024  # one event as JSON
MAX_CONTEXT_BYTES = 8 * 1024  # an event's context as JSON
MAX_BATCH_EVENTS = 500  # events in one POST /v1/events/batch
MAX_CLOCK_SKEW_SECONDS = 24 * 3600  # derived_at may lie at most this far after received_at

PLATFORMS = ("ios", "android", "windows", "macos", "linux", "web", "playstation", "xbox", "switch", "other")

# Top-level optional strings and their maximum lengths.
PLAYER_ID_MAX_LENGTH = 128
EVENT_STRINGS = MappingProxyType({"app_version": 64, "session_id": 128})

# A custom event type: lower snake_case, starting with a letter, at most 64 characters.
CUSTOM_EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
CUSTOM_EVENT_TYPE = re.compile(CUSTOM_EVENT_TYPE_PATTERN)

# NUL (PostgreSQL cannot store it in text or jsonb) and lone surrogates (not UTF-8).
FORBIDDEN_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
# RFC 3339 with a mandatory offset (events_app/event_types/timeutil.py parses it).
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})")

# Decimals (prices, amounts, revenue): digits in all and after the point.
DECIMAL_MAX_DIGITS = 18
DECIMAL_MAX_PLACES = 6
CODE_MAX_LENGTH = 8  # a country or currency code as sent, before upper-casing


@dataclass(frozen=True)
class Prop:
    """The rule for one property of a built-in type.

    `kind` is one of: "string" (1..max_length characters), "choice" (one of
    `choices`), "integer" (minimum..maximum), "decimal" (above `minimum`, or at
    least it when `inclusive`), "country" (ISO 3166-1 alpha-2), "currency"
    (ISO 4217). Codes are accepted in any case and stored upper-case.
    """

    kind: str
    required: bool = False
    max_length: int | None = None
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    inclusive: bool = False
    default: object = None


@dataclass(frozen=True)
class Money:
    """Which properties hold an event's revenue and its currency; the server converts it to the base currency.

    `quantity` names an integer property the amount is multiplied by (a purchase's
    price x quantity). `currency_required` makes the currency required whenever the
    amount is given. With `minor_units` the amount may have no more decimals than ISO
    4217 gives the currency (a price in JPY has none) and its base-currency amount is
    rounded to the base currency's minor units; without, sub-cent amounts are kept
    (an ad impression earns fractions of a cent) and rounded to DECIMAL_MAX_PLACES.
    """

    amount: str
    currency: str
    quantity: str | None = None
    currency_required: bool = False
    minor_units: bool = True


@dataclass(frozen=True)
class TypeRules:
    """What the contract says of one built-in event type."""

    properties: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    required_fields: tuple[str, ...] = ()  # top-level fields this type needs (e.g. session_id)
    money: Money | None = None


def _rules(properties: dict | None = None, **kwargs) -> TypeRules:
    return TypeRules(properties=MappingProxyType(properties or {}), **kwargs)


def _string(max_length: int, *, required: bool = False) -> Prop:
    return Prop("string", required=required, max_length=max_length)


AD_FORMATS = ("banner", "interstitial", "rewarded", "native", "app_open", "other")
PROGRESSION_STATUSES = ("start", "complete", "fail")
RESOURCE_FLOWS = ("source", "sink")
SESSION_MAX_DURATION_MS = 604_800_000  # 7 days
QUANTITY_MAX = 1_000_000

# Every built-in type: its properties' rules (other keys are kept as sent), the
# top-level fields it requires, and its money pair. The server registers one module
# per type (events_app/event_types/) for what it does beyond these rules.
BUILTIN_TYPES = MappingProxyType(
    {
        "install": _rules(
            {
                "store": _string(64),
                "campaign": _string(256),
                "country": Prop("country"),
                "device_model": _string(128),
                "os_version": _string(64),
            }
        ),
        "purchase": _rules(
            {
                "transaction_id": _string(256, required=True),
                "product_id": _string(256, required=True),
                "price": Prop("decimal", required=True, minimum=0),
                "currency": Prop("currency", required=True),
                "quantity": Prop("integer", minimum=1, maximum=QUANTITY_MAX, default=1),
                "store": _string(64),
            },
            money=Money("price", "currency", quantity="quantity"),
        ),
        "session_start": _rules(required_fields=("session_id",)),
        "session_end": _rules(
            {"duration_ms": Prop("integer", required=True, minimum=0, maximum=SESSION_MAX_DURATION_MS)},
            required_fields=("session_id",),
        ),
        "progression": _rules(
            {
                "status": Prop("choice", required=True, choices=PROGRESSION_STATUSES),
                "level": _string(128, required=True),
                "score": Prop("integer"),
                "attempt": Prop("integer", minimum=1),
            }
        ),
        "resource": _rules(
            {
                "flow": Prop("choice", required=True, choices=RESOURCE_FLOWS),
                "resource": _string(64, required=True),
                "amount": Prop("decimal", required=True, minimum=0),
                "item_type": _string(64),
                "item_id": _string(128),
            }
        ),
        "ad_impression": _rules(
            {
                "ad_network": _string(64, required=True),
                "ad_format": Prop("choice", required=True, choices=AD_FORMATS),
                "ad_unit": _string(128),
                "revenue": Prop("decimal", minimum=0, inclusive=True),
                "currency": Prop("currency"),
            },
            money=Money("revenue", "currency", currency_required=True, minor_units=False),
        ),
        # Segment's calls: free-form properties (traits), kept as sent.
        "identify": _rules(),
        "page": _rules(),
        "screen": _rules(),
        "group": _rules(),
        "alias": _rules(),
    }
)

BUILTIN_EVENT_TYPES = tuple(BUILTIN_TYPES)


def is_custom_type_name(name: object) -> bool:
    """Return True if `name` may name a custom event type (and is no built-in one)."""
    return isinstance(name, str) and name not in BUILTIN_TYPES and CUSTOM_EVENT_TYPE.fullmatch(name) is not None
