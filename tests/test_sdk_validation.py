"""The SDK's local checks agree with the server's serializer: same events refused, same fields named."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from events_app.codes import COUNTRY_CODES, CURRENCY_CODES
from events_app.currency import MINOR_UNITS
from events_app.serializers import EventSerializer
from sdk import _codes
from sdk.validation import InvalidEventError, encode_json, validate_event

NOW = datetime.now(UTC).replace(microsecond=0)


def at(delta: timedelta) -> str:
    return (NOW + delta).isoformat().replace("+00:00", "Z")


def install(**changes: Any) -> dict:
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "install",
        "player_id": "player-1",
        "occurred_at": at(timedelta(minutes=-5)),
        "platform": "android",
        "properties": {"store": "google_play", "country": "DE"},
    }
    return apply(event, changes)


def purchase(**changes: Any) -> dict:
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "purchase",
        "player_id": "player-1",
        "occurred_at": at(timedelta(minutes=-5)),
        "properties": {"transaction_id": "GPA.1", "product_id": "gems_100", "price": "4.99", "currency": "EUR"},
    }
    return apply(event, changes)


MISSING = object()


def apply(event: dict, changes: dict) -> dict:
    """Set fields; `properties__x` sets a property; MISSING removes the key."""
    for name, value in changes.items():
        target, key = (event["properties"], name.removeprefix("properties__")) if "__" in name else (event, name)
        if value is MISSING:
            target.pop(key, None)
        else:
            target[key] = value
    return event


def server_fields(event: Any) -> set[str]:
    """Return the fields the server's serializer names for `event` (dotted; "event" for the whole)."""
    serializer = EventSerializer(context={"received_at": NOW, "batch_sent_at": None})
    try:
        serializer.run_validation(event)
    except serializers.ValidationError as exc:
        return flatten(exc.detail)
    return set()


def flatten(detail: Any, prefix: str = "") -> set[str]:
    if isinstance(detail, dict):
        fields = set()
        for key, value in detail.items():
            name = "event" if key == "non_field_errors" and not prefix else f"{prefix}{key}"
            fields |= flatten(value, f"{name}.") if isinstance(value, dict) else {name}
        return fields
    return {prefix.rstrip(".") or "event"}


def sdk_fields(event: Any) -> set[str]:
    try:
        validate_event(event, now=NOW)
    except InvalidEventError as exc:
        return set(exc.errors)
    return set()


VALID = {
    "install": install(),
    "install without properties": install(properties=MISSING),
    "install with only unknown properties": install(properties={"referrer": "friend", "level": 3}),
    "install with a lower-case country": install(properties__country="de"),
    "purchase": purchase(),
    "purchase with quantity": purchase(properties__quantity=3),
    "purchase with quantity as a string": purchase(properties__quantity="3"),
    "purchase with quantity 3.0": purchase(properties__quantity=3.0),
    "purchase with an integer price": purchase(properties__price=1200),
    "purchase with a JSON number price": purchase(properties__price=4.99),
    "purchase with the smallest price": purchase(properties__price="0.000001", properties__currency="XAU"),
    "purchase with the largest price": purchase(properties__price="999999999999.99"),
    "purchase with trailing zeros": purchase(properties__price="4.990000"),
    "purchase in yen": purchase(properties__price="1200", properties__currency="JPY"),
    "purchase in Kuwaiti dinars": purchase(properties__price="1.125", properties__currency="KWD"),
    "purchase with spaces around the price": purchase(properties__price=" 4.99 "),
    "purchase with price in exponent form": purchase(properties__price="1E+2"),
    "purchase with a lower-case currency": purchase(properties__price="1200", properties__currency="jpy"),
    "purchase with unknown and nested properties": purchase(properties__extra={"a": [1, {"b": None}]}),
    "event_id in braces": install(event_id="{" + str(uuid.uuid4()) + "}"),
    "event_id without dashes": install(event_id=uuid.uuid4().hex),
    "no event_id": install(event_id=MISSING),
    "occurred_at with an offset": install(occurred_at="2025-07-01T14:30:05+02:00"),
    "occurred_at with nanoseconds": install(occurred_at="2025-07-01T14:30:05.123456789Z"),
    "occurred_at 23 h ahead": install(occurred_at=at(timedelta(hours=23))),
    "occurred_at years ago": install(occurred_at="2001-01-01T00:00:00Z"),
    "sent_at given": install(sent_at=at(timedelta(0))),
    "nulls where allowed": install(platform=None, app_version=None, session_id=None, context=None, sent_at=None),
    "app_version and session_id at their limits": install(app_version="v" * 64, session_id="s" * 128),
    "player_id of 128 characters": install(player_id="p" * 128),
    "player_id in Japanese": install(player_id="プレイヤー"),
    "context": install(context={"level": 7, "flags": [True, None], "ratio": 0.5}),
    "unknown top-level field": install(level=3),
}

INVALID = {
    "event that is a list": [],
    "no event_type": install(event_type=MISSING),
    "unknown event_type": install(event_type="level_up"),
    "event_type that is a number": install(event_type=5),
    "no player_id": install(player_id=MISSING),
    "blank player_id": install(player_id=""),
    "player_id of 129 characters": install(player_id="p" * 129),
    "player_id that is a number": install(player_id=42),
    "player_id with NUL": install(player_id="a\x00b"),
    "no occurred_at": install(occurred_at=MISSING),
    "naive occurred_at": install(occurred_at="2025-07-01T14:30:05"),
    "occurred_at as a date": install(occurred_at="2025-07-01"),
    "occurred_at with month 13": install(occurred_at="2025-13-01T00:00:00Z"),
    "occurred_at 25 h ahead": install(occurred_at=at(timedelta(hours=25))),
    "occurred_at that is a number": install(occurred_at=1751380205),
    "sent_at garbage": install(sent_at="yesterday"),
    "unknown platform": install(platform="nintendo64"),
    "app_version of 65 characters": install(app_version="v" * 65),
    "blank session_id": install(session_id=""),
    "properties that are a list": install(properties=["store"]),
    "properties null": install(properties=None),
    "context that is a string": install(context="level 7"),
    "context over 8 KiB": install(context={"blob": "x" * 9000}),
    "event over 32 KiB": install(properties={"blob": "x" * 33000}),
    "event_id not a UUID": install(event_id="not-a-uuid"),
    "event_id that is a number": install(event_id=42),
    "event_id null": install(event_id=None),
    "unknown country": install(properties__country="ZZ"),
    "store of 65 characters": install(properties__store="s" * 65),
    "store null": install(properties__store=None),
    "purchase without transaction_id": purchase(properties__transaction_id=MISSING),
    "purchase without properties": purchase(properties=MISSING),
    "price 0": purchase(properties__price="0"),
    "negative price": purchase(properties__price="-1.00"),
    "price that is not a number": purchase(properties__price="4,99"),
    "price NaN": purchase(properties__price="NaN"),
    "price Infinity": purchase(properties__price="Infinity"),
    "price with 7 decimal places": purchase(properties__price="1.0000001", properties__currency="XAU"),
    "price with 3 decimals in euros": purchase(properties__price="4.999"),
    "price with cents in yen": purchase(properties__price="1200.5", properties__currency="jpy"),
    "price with 13 whole digits": purchase(properties__price="1234567890123"),
    "price with 19 digits": purchase(properties__price="1234567890123.123456"),
    "price true": purchase(properties__price=True),
    "price null": purchase(properties__price=None),
    "price empty": purchase(properties__price=""),
    "currency too long": purchase(properties__currency="EUROS"),
    "unknown currency": purchase(properties__currency="XYZ"),
    "currency that is a number": purchase(properties__currency=978),
    "quantity 0": purchase(properties__quantity=0),
    "quantity over a million": purchase(properties__quantity=1_000_001),
    "quantity 2.5": purchase(properties__quantity="2.5"),
    "quantity true": purchase(properties__quantity=True),
    "quantity null": purchase(properties__quantity=None),
    "many bad fields at once": purchase(
        player_id="", platform="amiga", properties__price="-1", properties__currency="ZZZ", context=[]
    ),
}


@pytest.mark.parametrize("event", VALID.values(), ids=VALID.keys())
def test_events_the_server_accepts_pass_the_local_checks(event):
    assert server_fields(event) == set()
    assert sdk_fields(event) == set()


@pytest.mark.parametrize("event", INVALID.values(), ids=INVALID.keys())
def test_events_the_server_refuses_fail_locally_naming_the_same_fields(event):
    expected = server_fields(event)

    assert expected, "the case is meant to be invalid on the server"
    assert sdk_fields(event) == expected


@settings(max_examples=300, deadline=None)
@given(
    currency=st.sampled_from(["EUR", "JPY", "KWD", "CLF", "XAU"]),
    price=st.one_of(
        st.from_regex(r"[ -]?\d{0,14}(\.\d{0,8})?([eE][+-]?\d{1,2})? ?", fullmatch=True),
        st.decimals(allow_nan=True, allow_infinity=True, places=None).map(str),
        st.integers(min_value=-(10**14), max_value=10**14),
    ),
)
def test_prices_are_judged_as_the_server_judges_them(currency, price):
    event = purchase(properties__price=price, properties__currency=currency)

    assert ("properties.price" in sdk_fields(event)) == ("properties.price" in server_fields(event))


def test_the_error_names_every_bad_field_and_why():
    event = purchase(player_id="", properties__price="-1", properties__currency="ZZZ")

    with pytest.raises(InvalidEventError) as caught:
        validate_event(event)

    assert set(caught.value.errors) == {"player_id", "properties.price", "properties.currency"}
    message = str(caught.value)
    assert "player_id: may not be blank" in message
    assert "properties.price: must be greater than 0" in message
    assert "'ZZZ' is not a valid ISO 4217 currency code" in message


def test_the_sdks_code_lists_are_the_servers():
    assert _codes.COUNTRY_CODES == COUNTRY_CODES
    assert _codes.CURRENCY_CODES == CURRENCY_CODES
    assert {code: _codes.minor_units(code) for code in CURRENCY_CODES} == {
        code: MINOR_UNITS[code] for code in CURRENCY_CODES
    }


def test_a_lone_surrogate_is_refused_naming_its_field():
    event = install(player_id="a\ud800b")

    assert server_fields(event) == {"event"}  # the server cannot even measure it
    assert sdk_fields(event) == {"player_id"}


# Stricter than the server on purpose: each would make the whole batch unreadable.


@pytest.mark.parametrize(
    ("context", "field"),
    [
        ({1: "a", "1": "b"}, "context"),  # JSON turns 1 into "1": a duplicate key, and the server refuses the body
        ({"ratio": float("nan")}, "context.ratio"),  # NaN is not JSON
        ({"big": 10**400}, "context.big"),  # read back as infinity: the body fails to parse
        ({"big": 2**64}, "context.big"),  # beyond the record's 64 bits
        ({"text": "a\ud800"}, "context"),  # not UTF-8
        ({"when": object()}, "context"),  # not JSON at all
    ],
)
def test_values_json_cannot_carry_are_refused_locally(context, field):
    with pytest.raises(InvalidEventError) as caught:
        validate_event(install(context=context))

    assert field in caught.value.errors


def test_decimals_datetimes_and_uuids_are_encoded_as_strings():
    value = {"price": Decimal("0.10"), "at": datetime(2025, 1, 2, tzinfo=UTC), "id": uuid.UUID(int=1)}

    assert encode_json(value) == (
        b'{"price":"0.10","at":"2025-01-02T00:00:00.000Z","id":"00000000-0000-0000-0000-000000000001"}'
    )
