"""The SDK's local checks agree with the server's serializer: same events refused, same fields named, every type."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from events_app.ingest.serializers import EventSerializer
from events_app.models import Game, UnknownEventPolicy
from events_app.money.codes import COUNTRY_CODES, CURRENCY_CODES
from events_app.money.currency import MINOR_UNITS
from sdk import _codes
from sdk.contract import BUILTIN_TYPES, MAX_EVENT_BYTES
from sdk.validation import InvalidEventError, validate_event
from tests.sdk.builders import MISSING, NOW, at, event, install, purchase


def server_fields(value: Any, game: Game | None = None) -> set[str]:
    """Return the fields the server's serializer names for `value` (dotted; "event" for the whole)."""
    serializer = EventSerializer(context={"received_at": NOW, "batch_sent_at": None, "game": game})
    try:
        serializer.run_validation(value)
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


def sdk_fields(value: Any) -> set[str]:
    try:
        validate_event(value, now=NOW)
    except InvalidEventError as exc:
        return set(exc.errors)
    return set()


@pytest.fixture
def game(db) -> Game:
    """A game that accepts custom types without a schema: the server then checks what the SDK checks."""
    return Game.objects.create(slug="parity", unknown_events=UnknownEventPolicy.ACCEPT)


VALID = {
    # The common fields.
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
    # install
    "install": install(),
    "install without properties": install(properties=MISSING),
    "install with only unknown properties": install(properties={"referrer": "friend", "level": 3}),
    "install with a lower-case country": install(properties__country="de"),
    "install with every property at its limit": install(
        properties__store="s" * 64, properties__campaign="c" * 256, properties__os_version="o" * 64
    ),
    "install with the longest device_model": install(properties__device_model="d" * 128),
    # purchase
    "purchase": purchase(),
    "purchase with quantity": purchase(properties__quantity=3),
    "purchase with quantity as a string": purchase(properties__quantity="3"),
    "purchase with quantity 3.0": purchase(properties__quantity=3.0),
    "purchase with the largest quantity": purchase(properties__quantity=1_000_000),
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
    "purchase with a store": purchase(properties__store="app_store"),
    # session_start
    "session_start": event("session_start"),
    "session_start without properties": event("session_start", properties=MISSING),
    "session_start with free-form properties": event("session_start", properties={"reason": "cold_start"}),
    "session_start with the longest session_id": event("session_start", session_id="s" * 128),
    # session_end
    "session_end": event("session_end"),
    "session_end of 0 ms": event("session_end", properties__duration_ms=0),
    "session_end of 7 days": event("session_end", properties__duration_ms=604_800_000),
    "session_end with duration as a string": event("session_end", properties__duration_ms="61000"),
    "session_end with duration 61000.0": event("session_end", properties__duration_ms=61000.0),
    "session_end with unknown properties": event("session_end", properties__screens=4),
    # progression
    "progression": event("progression"),
    "progression start without score or attempt": event(
        "progression", properties__status="start", properties__score=MISSING, properties__attempt=MISSING
    ),
    "progression fail": event("progression", properties__status="fail"),
    "progression with a level of 128 characters": event("progression", properties__level="l" * 128),
    "progression with a negative score": event("progression", properties__score=-50),
    "progression with a score as a string": event("progression", properties__score="10"),
    "progression with a huge score": event("progression", properties__score=2**62),
    "progression at the first attempt": event("progression", properties__attempt=1),
    # resource
    "resource": event("resource"),
    "resource sink": event("resource", properties__flow="sink"),
    "resource without item fields": event("resource", properties__item_type=MISSING, properties__item_id=MISSING),
    "resource with the smallest amount": event("resource", properties__amount="0.000001"),
    "resource with an integer amount": event("resource", properties__amount=500),
    "resource with a JSON number amount": event("resource", properties__amount=2.5),
    "resource with fields at their limits": event(
        "resource", properties__resource="r" * 64, properties__item_type="t" * 64, properties__item_id="i" * 128
    ),
    # ad_impression
    "ad_impression": event("ad_impression"),
    "ad_impression without revenue or currency": event(
        "ad_impression", properties__revenue=MISSING, properties__currency=MISSING, properties__ad_unit=MISSING
    ),
    "ad_impression earning nothing": event("ad_impression", properties__revenue="0"),
    "ad_impression earning a fraction of a cent": event("ad_impression", properties__revenue="0.000123"),
    "ad_impression with a currency but no revenue": event("ad_impression", properties__revenue=MISSING),
    "ad_impression with a lower-case currency": event("ad_impression", properties__currency="eur"),
    "ad_impression in yen with decimals": event("ad_impression", properties__revenue="0.5", properties__currency="JPY"),
    **{
        f"ad_impression {ad_format}": event("ad_impression", properties__ad_format=ad_format)
        for ad_format in ("banner", "interstitial", "native", "app_open", "other")
    },
    # Segment's calls: free-form properties.
    **{name: event(name) for name in ("identify", "page", "screen", "group", "alias")},
    "identify without properties": event("identify", properties=MISSING),
    # Custom types: name, size and JSON-ness only.
    "custom type": event("level_up"),
    "custom type without properties": event("level_up", properties=MISSING),
    "custom type with the longest name": event("level_up", event_type="a" + "_" * 63),
    "custom type with digits": event("level_up", event_type="boss2_defeated"),
}

INVALID = {
    # The common fields.
    "event that is a list": [],
    "no event_type": install(event_type=MISSING),
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
    "a NUL in a property": install(properties={"note": "a\x00b"}),
    "a NUL in a property key": install(properties={"k\x00": "v"}),
    "a NUL in a nested list of the context": install(context={"tags": ["ok", "\x00"]}),
    "a NUL in a custom type's nested property": event("level_up", properties={"hero": {"name": "\x00"}}),
    "event over 32 KiB": install(properties={"blob": "x" * 33000}),
    "event_id not a UUID": install(event_id="not-a-uuid"),
    "event_id that is a number": install(event_id=42),
    "event_id null": install(event_id=None),
    "many bad fields at once": purchase(
        player_id="", platform="amiga", properties__price="-1", properties__currency="ZZZ", context=[]
    ),
    # install
    "unknown country": install(properties__country="ZZ"),
    "country that is a number": install(properties__country=276),
    "store of 65 characters": install(properties__store="s" * 65),
    "campaign of 257 characters": install(properties__campaign="c" * 257),
    "device_model of 129 characters": install(properties__device_model="d" * 129),
    "blank os_version": install(properties__os_version=""),
    "store null": install(properties__store=None),
    # purchase
    "purchase without transaction_id": purchase(properties__transaction_id=MISSING),
    "purchase without product_id": purchase(properties__product_id=MISSING),
    "purchase without price": purchase(properties__price=MISSING),
    "purchase without currency": purchase(properties__currency=MISSING),
    "purchase without properties": purchase(properties=MISSING),
    "transaction_id of 257 characters": purchase(properties__transaction_id="t" * 257),
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
    "purchase store of 65 characters": purchase(properties__store="s" * 65),
    # session_start
    "session_start without session_id": event("session_start", session_id=MISSING),
    "session_start with session_id null": event("session_start", session_id=None),
    "session_start with a blank session_id": event("session_start", session_id=""),
    "session_start with a session_id of 129 characters": event("session_start", session_id="s" * 129),
    "session_start without session_id and with properties that are a list": event(
        "session_start", session_id=MISSING, properties=[1]
    ),
    # session_end
    "session_end without session_id": event("session_end", session_id=MISSING),
    "session_end without duration_ms": event("session_end", properties__duration_ms=MISSING),
    "session_end without properties": event("session_end", properties=MISSING),
    "session_end without anything": event("session_end", session_id=MISSING, properties=MISSING),
    "session_end of -1 ms": event("session_end", properties__duration_ms=-1),
    "session_end over 7 days": event("session_end", properties__duration_ms=604_800_001),
    "session_end with a fractional duration": event("session_end", properties__duration_ms="1.5"),
    "session_end with duration true": event("session_end", properties__duration_ms=True),
    "session_end with duration null": event("session_end", properties__duration_ms=None),
    "session_end with duration in words": event("session_end", properties__duration_ms="a minute"),
    # progression
    "progression without status": event("progression", properties__status=MISSING),
    "progression with an unknown status": event("progression", properties__status="finish"),
    "progression with a capitalised status": event("progression", properties__status="Start"),
    "progression with a blank status": event("progression", properties__status=""),
    "progression with status null": event("progression", properties__status=None),
    "progression with a numeric status": event("progression", properties__status=1),
    "progression without level": event("progression", properties__level=MISSING),
    "progression with a blank level": event("progression", properties__level=""),
    "progression with a level of 129 characters": event("progression", properties__level="l" * 129),
    "progression with a numeric level": event("progression", properties__level=3),
    "progression with a fractional score": event("progression", properties__score=1.5),
    "progression with a score in words": event("progression", properties__score="ten"),
    "progression with score null": event("progression", properties__score=None),
    "progression at attempt 0": event("progression", properties__attempt=0),
    "progression with attempt true": event("progression", properties__attempt=True),
    "progression without properties": event("progression", properties=MISSING),
    # resource
    "resource without flow": event("resource", properties__flow=MISSING),
    "resource with an unknown flow": event("resource", properties__flow="spend"),
    "resource without resource": event("resource", properties__resource=MISSING),
    "resource with a resource of 65 characters": event("resource", properties__resource="r" * 65),
    "resource without amount": event("resource", properties__amount=MISSING),
    "resource amount 0": event("resource", properties__amount="0"),
    "resource with a negative amount": event("resource", properties__amount=-5),
    "resource amount in words": event("resource", properties__amount="lots"),
    "resource amount with 7 decimal places": event("resource", properties__amount="0.0000001"),
    "resource amount with 19 digits": event("resource", properties__amount="1234567890123.123456"),
    "resource amount true": event("resource", properties__amount=True),
    "resource amount null": event("resource", properties__amount=None),
    "resource with an item_type of 65 characters": event("resource", properties__item_type="t" * 65),
    "resource with an item_id of 129 characters": event("resource", properties__item_id="i" * 129),
    "resource with item_type null": event("resource", properties__item_type=None),
    "resource without properties": event("resource", properties=MISSING),
    # ad_impression
    "ad_impression without ad_network": event("ad_impression", properties__ad_network=MISSING),
    "ad_impression with a blank ad_network": event("ad_impression", properties__ad_network=""),
    "ad_impression with an ad_network of 65 characters": event("ad_impression", properties__ad_network="n" * 65),
    "ad_impression without ad_format": event("ad_impression", properties__ad_format=MISSING),
    "ad_impression with an unknown ad_format": event("ad_impression", properties__ad_format="video"),
    "ad_impression with a blank ad_unit": event("ad_impression", properties__ad_unit=""),
    "ad_impression with an ad_unit of 129 characters": event("ad_impression", properties__ad_unit="u" * 129),
    "ad_impression with negative revenue": event("ad_impression", properties__revenue="-0.01"),
    "ad_impression with revenue but no currency": event("ad_impression", properties__currency=MISSING),
    "ad_impression with revenue and a null currency": event("ad_impression", properties__currency=None),
    "ad_impression with an unknown currency": event("ad_impression", properties__currency="XYZ"),
    "ad_impression with an unknown currency and no revenue": event(
        "ad_impression", properties__revenue=MISSING, properties__currency="XYZ"
    ),
    "ad_impression revenue NaN": event("ad_impression", properties__revenue="NaN"),
    "ad_impression revenue with 7 decimal places": event("ad_impression", properties__revenue="0.0000001"),
    "ad_impression revenue null": event("ad_impression", properties__revenue=None),
    "ad_impression revenue true": event("ad_impression", properties__revenue=True),
    "ad_impression with two bad fields and no currency": event(
        "ad_impression", properties__ad_format="video", properties__currency=MISSING
    ),
    "ad_impression without properties": event("ad_impression", properties=MISSING),
    # Segment's calls
    "identify with properties that are a list": event("identify", properties=["Ada"]),
    "screen with properties over 32 KiB": event("screen", properties={"blob": "x" * 33000}),
    # Custom types
    "custom type name with capitals": event("level_up", event_type="Level_Up"),
    "custom type name with a dash": event("level_up", event_type="level-up"),
    "custom type name with a space": event("level_up", event_type="level up"),
    "custom type name starting with a digit": event("level_up", event_type="1st_level"),
    "custom type name starting with an underscore": event("level_up", event_type="_level"),
    "custom type name of 65 characters": event("level_up", event_type="a" * 65),
    "blank event_type": event("level_up", event_type=""),
    "custom type with properties that are a list": event("level_up", properties=[3]),
    "custom type with properties null": event("level_up", properties=None),
    "custom type over 32 KiB": event("level_up", properties__blob="x" * MAX_EVENT_BYTES),
    "custom type with a bad common field": event("level_up", player_id="", platform="amiga"),
}


@pytest.mark.parametrize("case", VALID.values(), ids=VALID.keys())
def test_events_the_server_accepts_pass_the_local_checks(case, game):
    assert server_fields(case, game) == set()
    assert sdk_fields(case) == set()


@pytest.mark.parametrize("case", INVALID.values(), ids=INVALID.keys())
def test_events_the_server_refuses_fail_locally_naming_the_same_fields(case, game):
    expected = server_fields(case, game)

    assert expected, "the case is meant to be invalid on the server"
    assert sdk_fields(case) == expected


def test_every_rule_of_every_builtin_type_has_a_case_the_server_refuses(game):
    named: dict[str, set[str]] = {name: set() for name in BUILTIN_TYPES}
    for case in INVALID.values():
        if isinstance(case, dict) and case.get("event_type") in named:
            named[case["event_type"]] |= server_fields(case, game)

    for name, rules in BUILTIN_TYPES.items():
        wanted = {f"properties.{prop}" for prop in rules.properties} | set(rules.required_fields)
        assert wanted <= named[name], f"{name}: no refused case for {sorted(wanted - named[name])}"
        valid = [case for case in VALID.values() if case.get("event_type") == name]
        assert valid, f"{name}: no accepted case"


def test_an_unregistered_custom_type_is_judged_by_the_server_alone():
    level_up = event("level_up")

    assert sdk_fields(level_up) == set()  # the SDK cannot know the game's schemas or policy
    assert server_fields(level_up, game=None) == {"event_type"}  # rejected by default


DECIMALS = [
    ("purchase", "price", {"properties__currency": "EUR"}),
    ("purchase", "price", {"properties__currency": "JPY"}),
    ("purchase", "price", {"properties__currency": "KWD"}),
    ("purchase", "price", {"properties__currency": "CLF"}),
    ("purchase", "price", {"properties__currency": "XAU"}),
    ("resource", "amount", {}),
    ("ad_impression", "revenue", {"properties__currency": "USD"}),
    ("ad_impression", "revenue", {"properties__currency": "JPY"}),
]


@settings(max_examples=400, deadline=None)
@given(
    case=st.sampled_from(DECIMALS),
    value=st.one_of(
        st.from_regex(r"[ -]?\d{0,14}(\.\d{0,8})?([eE][+-]?\d{1,2})? ?", fullmatch=True),
        st.decimals(allow_nan=True, allow_infinity=True, places=None).map(str),
        st.integers(min_value=-(10**14), max_value=10**14),
    ),
)
def test_decimals_are_judged_as_the_server_judges_them(case, value):
    event_type, name, changes = case
    sent = event(event_type, **{f"properties__{name}": value, **changes})

    field = f"properties.{name}"
    assert (field in sdk_fields(sent)) == (field in server_fields(sent))


INTEGERS = [
    ("session_end", "duration_ms"),
    ("progression", "attempt"),
    ("progression", "score"),
    ("purchase", "quantity"),
]


@settings(max_examples=300, deadline=None)
@given(
    case=st.sampled_from(INTEGERS),
    value=st.one_of(
        st.integers(min_value=-(10**10), max_value=10**10),
        st.from_regex(r" ?-?\d{0,10}(\.0*)?(\.\d)? ?", fullmatch=True),
        st.floats(allow_nan=False, allow_infinity=False, width=32),
        st.booleans(),
    ),
)
def test_integers_are_judged_as_the_server_judges_them(case, value):
    event_type, name = case
    sent = event(event_type, **{f"properties__{name}": value})

    field = f"properties.{name}"
    assert (field in sdk_fields(sent)) == (field in server_fields(sent))


def test_the_sdks_code_lists_are_the_servers():
    assert _codes.COUNTRY_CODES == COUNTRY_CODES
    assert _codes.CURRENCY_CODES == CURRENCY_CODES
    assert {code: _codes.minor_units(code) for code in CURRENCY_CODES} == {
        code: MINOR_UNITS[code] for code in CURRENCY_CODES
    }


def test_a_lone_surrogate_is_refused_naming_its_field():
    sent = install(player_id="a\ud800b")

    assert server_fields(sent) == {"event"}  # the server cannot even measure it
    assert sdk_fields(sent) == {"player_id"}
