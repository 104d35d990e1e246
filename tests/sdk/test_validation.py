"""The SDK's own checks, no server needed: errors that name every bad field and why, values JSON cannot carry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sdk.validation import InvalidEventError, encode_json, validate_event
from tests.sdk.builders import MISSING, event, install, purchase


def test_the_error_names_every_bad_field_and_why():
    sent = purchase(player_id="", properties__price="-1", properties__currency="ZZZ")

    with pytest.raises(InvalidEventError) as caught:
        validate_event(sent)

    assert set(caught.value.errors) == {"player_id", "properties.price", "properties.currency"}
    message = str(caught.value)
    assert "player_id: may not be blank" in message
    assert "properties.price: must be greater than 0" in message
    assert "'ZZZ' is not a valid ISO 4217 currency code" in message


def test_the_errors_of_the_new_types_say_what_is_wrong():
    cases = {
        "session_id": (event("session_end", session_id=MISSING), "is required for session_end events"),
        "properties.status": (event("progression", properties__status="won"), "must be one of start, complete, fail"),
        "properties.duration_ms": (
            event("session_end", properties__duration_ms=-1),
            "must be between 0 and 604800000",
        ),
        "properties.attempt": (event("progression", properties__attempt=0), "must be at least 1"),
        "properties.revenue": (event("ad_impression", properties__revenue="-1"), "must be at least 0"),
        "properties.currency": (event("ad_impression", properties__currency=MISSING), "required when revenue is given"),
        "event_type": (event("level_up", event_type="Level Up"), "custom type name"),
    }
    for field, (sent, words) in cases.items():
        with pytest.raises(InvalidEventError) as caught:
            validate_event(sent)

        assert words in " ".join(caught.value.errors[field]), field


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


@pytest.mark.parametrize(
    ("properties", "field"),
    [
        ({"ratio": float("inf")}, "properties.ratio"),
        ({"big": 2**64}, "properties.big"),
        ({"hero": {1: "a", "1": "b"}}, "properties.hero"),
        ({"when": object()}, "properties.when"),
    ],
)
def test_custom_properties_json_cannot_carry_are_refused_locally(properties, field):
    with pytest.raises(InvalidEventError) as caught:
        validate_event(event("level_up", properties=properties))

    assert field in caught.value.errors


def test_decimals_datetimes_and_uuids_are_encoded_as_strings():
    value = {"price": Decimal("0.10"), "at": datetime(2025, 1, 2, tzinfo=UTC), "id": uuid.UUID(int=1)}

    assert encode_json(value) == (
        b'{"price":"0.10","at":"2025-01-02T00:00:00.000Z","id":"00000000-0000-0000-0000-000000000001"}'
    )
