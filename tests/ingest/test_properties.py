"""Property-based tests: whatever a client sends, the API answers 2xx or a 4xx naming fields, never 500."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from events_app.ingest.serializers import EventSerializer
from events_app.models import Event, Game, UnknownEventPolicy
from sdk.contract import BUILTIN_EVENT_TYPES as EVENT_TYPES
from sdk.contract import PLATFORMS, is_custom_type_name

RECEIVED_AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
EVENT_KEYS = [
    "event_id",
    "event_type",
    "player_id",
    "occurred_at",
    "sent_at",
    "platform",
    "app_version",
    "session_id",
    "properties",
    "context",
]
PROPERTY_KEYS = ["transaction_id", "product_id", "price", "currency", "quantity", "store", "country", "campaign"]

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
# Hypothesis takes naive bounds and adds the time zones itself.
timestamps = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()).map(
    lambda dt: dt.isoformat()
)
# Events whose known keys hold anything: right types, wrong types, edge values.
hostile_events = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.uuids().map(str) | json_values,
        "event_type": st.sampled_from(EVENT_TYPES) | json_values,
        "player_id": st.text(max_size=200) | json_values,
        "occurred_at": timestamps | json_values,
        "sent_at": timestamps | json_values,
        "platform": st.sampled_from(PLATFORMS) | json_values,
        "properties": st.fixed_dictionaries(
            {},
            optional={
                "transaction_id": st.text(max_size=300) | json_values,
                "product_id": st.text(max_size=30) | json_values,
                "price": st.decimals(allow_nan=False, allow_infinity=False).map(str) | json_values,
                "currency": st.sampled_from(["EUR", "USD", "JPY", "KWD", "eur", "XXX", "EURO"]) | json_values,
                "quantity": st.integers() | json_values,
                "country": st.sampled_from(["FR", "fr", "XX"]) | json_values,
            },
        )
        | json_values,
        "context": json_values,
    },
)


def validate(data, *, game=None):
    serializer = EventSerializer(context={"received_at": RECEIVED_AT, "batch_sent_at": None, "game": game})
    return serializer.run_validation(data)


@pytest.mark.django_db
@given(data=hostile_events | json_values)
@settings(max_examples=400, deadline=None)
def test_the_serializer_either_validates_or_names_the_bad_fields(data):
    # A game that accepts custom types unchecked: the hostile names hypothesis makes reach every branch.
    game = Game.objects.get_or_create(slug="fuzz", defaults={"unknown_events": UnknownEventPolicy.ACCEPT})[0]
    try:
        validated = validate(data, game=game)
    except serializers.ValidationError as exc:
        assert isinstance(exc.detail, dict)
        assert set(exc.detail) <= {*EVENT_KEYS, "non_field_errors"}
        return
    assert validated["event_type"] in EVENT_TYPES or is_custom_type_name(validated["event_type"])
    assert 1 <= len(validated["player_id"]) <= 128
    assert validated["derived_at"] - RECEIVED_AT <= timedelta(hours=24)


valid_purchases = st.fixed_dictionaries(
    {
        "event_type": st.just("purchase"),
        "player_id": st.text(min_size=1, max_size=128).filter(lambda s: "\x00" not in s),
        "occurred_at": st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2026, 5, 31), timezones=st.just(UTC)
        ).map(lambda dt: dt.isoformat()),
        "properties": st.fixed_dictionaries(
            {
                "transaction_id": st.uuids().map(str),
                "product_id": st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s),
                "price": st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9999"), places=2).map(str),
                "currency": st.just("EUR"),
                "quantity": st.integers(min_value=1, max_value=1000),
            }
        ),
    }
)


@given(event=valid_purchases)
@settings(max_examples=200, deadline=None)
def test_valid_purchases_are_accepted_with_exact_decimal_revenue(event):
    validated = validate(event)

    properties = validated["properties"]
    assert properties["price"] == Decimal(event["properties"]["price"])
    assert validated["player_id"] == event["player_id"]
    assert (
        properties["price"] * properties["quantity"]
        == Decimal(event["properties"]["price"]) * event["properties"]["quantity"]
    )


@pytest.mark.django_db
@given(body=hostile_events | json_values)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_api_answers_any_json_with_2xx_or_a_4xx_and_stores_only_valid_events(api, body):
    before = Event.objects.count()

    response = api.post("/v1/events", body, format="json")

    assert response.status_code in (202, 400), response.content
    stored = Event.objects.count() - before
    if response.status_code == 400:
        assert stored == 0
        assert isinstance(response.json(), dict)
    else:
        assert stored == (1 if response.json()["status"] == "accepted" else 0)


@pytest.mark.django_db
@given(events=st.lists(hostile_events | json_values, min_size=1, max_size=20))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_batch_of_anything_keeps_exactly_its_accepted_events(api, events):
    before = Event.objects.count()

    response = api.post("/v1/events/batch", {"events": events}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert [r["index"] for r in body["results"]] == list(range(len(events)))
    assert body["accepted"] + body["duplicates"] + body["rejected"] == len(events)
    assert Event.objects.count() - before == body["accepted"]
