"""The built-in event types beyond install and purchase: every rule accepted and refused, and their Firehose lines."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from events_app.delivery import engine
from events_app.delivery.reconvert import reconvert_missing
from events_app.event_types import REGISTRY
from events_app.models import Event, ExchangeRate
from sdk.contract import BUILTIN_TYPES
from tests.support.events import now_rfc3339

pytestmark = pytest.mark.django_db


EVENTS = "/v1/events"


def event(event_type: str, properties: dict | None = None, **fields) -> dict:
    body = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "player_id": "player-1",
        "occurred_at": now_rfc3339(),
        "properties": properties if properties is not None else {},
    }
    body.update(fields)
    return body


SESSION = {"session_id": "s-1"}

# (event, its type's valid variants)
ACCEPTED = {
    "session_start": event("session_start", **SESSION),
    "session_start with properties": event("session_start", {"entry": "push"}, **SESSION),
    "session_end of 0 ms": event("session_end", {"duration_ms": 0}, **SESSION),
    "session_end of 7 days": event("session_end", {"duration_ms": 604_800_000}, **SESSION),
    "progression start": event("progression", {"status": "start", "level": "world1:level3"}),
    "progression complete with score and attempt": event(
        "progression", {"status": "complete", "level": "w1", "score": -5, "attempt": 1}
    ),
    "progression fail with a 128-character level": event("progression", {"status": "fail", "level": "x" * 128}),
    "resource source": event("resource", {"flow": "source", "resource": "gems", "amount": "25"}),
    "resource sink with item": event(
        "resource",
        {"flow": "sink", "resource": "g" * 64, "amount": 0.5, "item_type": "boost", "item_id": "i" * 128},
    ),
    "ad_impression without revenue": event("ad_impression", {"ad_network": "admob", "ad_format": "banner"}),
    "ad_impression with zero revenue": event(
        "ad_impression", {"ad_network": "admob", "ad_format": "rewarded", "revenue": "0", "currency": "USD"}
    ),
    "ad_impression of sub-yen revenue": event(
        "ad_impression", {"ad_network": "admob", "ad_format": "banner", "revenue": "0.5", "currency": "JPY"}
    ),
    "ad_impression with revenue and unit": event(
        "ad_impression",
        {"ad_network": "x" * 64, "ad_format": "app_open", "ad_unit": "u" * 128, "revenue": "0.0125", "currency": "EUR"},
    ),
    "identify with traits": event("identify", {"email_verified": True, "plan": "vip"}),
    "page": event("page", {"url": "https://example.com/shop"}),
    "screen": event("screen", {"name": "Shop"}),
    "group": event("group", {"guild": "wolves"}),
    "alias": event("alias", {"previous_id": "anon-1"}),
}

# (event, the path of the error it must name)
REJECTED = {
    "session_start without session_id": (event("session_start"), ("session_id",)),
    "session_end without session_id": (event("session_end", {"duration_ms": 5}), ("session_id",)),
    "session_end without duration": (event("session_end", **SESSION), ("properties", "duration_ms")),
    "session_end of negative duration": (
        event("session_end", {"duration_ms": -1}, **SESSION),
        ("properties", "duration_ms"),
    ),
    "session_end over 7 days": (
        event("session_end", {"duration_ms": 604_800_001}, **SESSION),
        ("properties", "duration_ms"),
    ),
    "session_end with text duration": (
        event("session_end", {"duration_ms": "long"}, **SESSION),
        ("properties", "duration_ms"),
    ),
    "progression without status": (event("progression", {"level": "w1"}), ("properties", "status")),
    "progression of unknown status": (
        event("progression", {"status": "paused", "level": "w1"}),
        ("properties", "status"),
    ),
    "progression without level": (event("progression", {"status": "start"}), ("properties", "level")),
    "progression of empty level": (event("progression", {"status": "start", "level": ""}), ("properties", "level")),
    "progression of 129-character level": (
        event("progression", {"status": "start", "level": "x" * 129}),
        ("properties", "level"),
    ),
    "progression of text score": (
        event("progression", {"status": "start", "level": "w1", "score": "high"}),
        ("properties", "score"),
    ),
    "progression of attempt 0": (
        event("progression", {"status": "start", "level": "w1", "attempt": 0}),
        ("properties", "attempt"),
    ),
    "resource without flow": (event("resource", {"resource": "gems", "amount": "1"}), ("properties", "flow")),
    "resource of unknown flow": (
        event("resource", {"flow": "gift", "resource": "gems", "amount": "1"}),
        ("properties", "flow"),
    ),
    "resource without resource": (event("resource", {"flow": "sink", "amount": "1"}), ("properties", "resource")),
    "resource of 65-character name": (
        event("resource", {"flow": "sink", "resource": "g" * 65, "amount": "1"}),
        ("properties", "resource"),
    ),
    "resource without amount": (event("resource", {"flow": "sink", "resource": "gems"}), ("properties", "amount")),
    "resource of zero amount": (
        event("resource", {"flow": "sink", "resource": "gems", "amount": "0"}),
        ("properties", "amount"),
    ),
    "resource of negative amount": (
        event("resource", {"flow": "sink", "resource": "gems", "amount": -3}),
        ("properties", "amount"),
    ),
    "resource of non-decimal amount": (
        event("resource", {"flow": "sink", "resource": "gems", "amount": "lots"}),
        ("properties", "amount"),
    ),
    "resource of 65-character item_type": (
        event("resource", {"flow": "sink", "resource": "gems", "amount": "1", "item_type": "t" * 65}),
        ("properties", "item_type"),
    ),
    "resource of 129-character item_id": (
        event("resource", {"flow": "sink", "resource": "gems", "amount": "1", "item_id": "i" * 129}),
        ("properties", "item_id"),
    ),
    "ad_impression without network": (event("ad_impression", {"ad_format": "banner"}), ("properties", "ad_network")),
    "ad_impression of 65-character network": (
        event("ad_impression", {"ad_network": "n" * 65, "ad_format": "banner"}),
        ("properties", "ad_network"),
    ),
    "ad_impression without format": (event("ad_impression", {"ad_network": "admob"}), ("properties", "ad_format")),
    "ad_impression of unknown format": (
        event("ad_impression", {"ad_network": "admob", "ad_format": "popup"}),
        ("properties", "ad_format"),
    ),
    "ad_impression of empty unit": (
        event("ad_impression", {"ad_network": "admob", "ad_format": "banner", "ad_unit": ""}),
        ("properties", "ad_unit"),
    ),
    "ad_impression of negative revenue": (
        event("ad_impression", {"ad_network": "admob", "ad_format": "banner", "revenue": "-0.01", "currency": "USD"}),
        ("properties", "revenue"),
    ),
    "ad_impression of revenue without currency": (
        event("ad_impression", {"ad_network": "admob", "ad_format": "banner", "revenue": "0.01"}),
        ("properties", "currency"),
    ),
    "ad_impression of unknown currency": (
        event("ad_impression", {"ad_network": "admob", "ad_format": "banner", "revenue": "0.01", "currency": "ZZZ"}),
        ("properties", "currency"),
    ),
    "ad_impression of more than 6 decimals": (
        event(
            "ad_impression", {"ad_network": "admob", "ad_format": "banner", "revenue": "0.0000001", "currency": "USD"}
        ),
        ("properties", "revenue"),
    ),
    "identify with properties that are no object": (event("identify", ["vip"]), ("properties",)),
}


@pytest.mark.parametrize("body", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_valid_events_of_each_built_in_type_are_accepted_and_stored(api, body):
    response = api.post(EVENTS, body, format="json")

    assert response.status_code == 202, response.json()
    assert response.json() == {"event_id": body["event_id"], "status": "accepted"}
    stored = Event.objects.get(event_id=body["event_id"])
    assert stored.event_type == body["event_type"]
    # Unknown properties are kept as sent; declared ones as validated.
    assert set(stored.payload["properties"]) == set(body["properties"]) | (
        {"quantity"} if body["event_type"] == "purchase" else set()
    )


@pytest.mark.parametrize(("body", "path"), REJECTED.values(), ids=REJECTED.keys())
def test_each_rule_of_each_built_in_type_rejects_and_names_the_bad_field(api, body, path):
    response = api.post(EVENTS, body, format="json")

    assert response.status_code == 400
    errors = response.json()
    for part in path:
        assert part in errors, errors
        errors = errors[part]
    assert isinstance(errors, list) and errors and all(isinstance(message, str) for message in errors)
    assert not Event.objects.exists()


def test_one_answer_names_every_bad_field_of_a_new_type(api):
    body = event("resource", {"flow": "gift", "amount": "0"}, player_id="")

    errors = api.post(EVENTS, body, format="json").json()

    assert set(errors) == {"player_id", "properties"}
    assert set(errors["properties"]) == {"flow", "resource", "amount"}


def test_every_built_in_type_of_the_contract_is_registered_once_on_the_server():
    assert list(REGISTRY) == list(BUILTIN_TYPES)
    assert {"session_start", "session_end", "progression", "resource", "ad_impression"} <= set(REGISTRY)
    assert {"identify", "page", "screen", "group", "alias"} <= set(REGISTRY)


def s3_lines(s3) -> list[dict]:
    lines = []
    for item in s3.list_objects_v2(Bucket="game-events").get("Contents", []):
        body = s3.get_object(Bucket="game-events", Key=item["Key"])["Body"].read()
        assert body.endswith(b"\n")
        lines.extend(orjson.loads(line) for line in body.splitlines())
    return lines


def test_each_new_type_reaches_s3_as_one_ndjson_line_with_its_properties(api, moto_firehose):
    bodies = [body for name, body in ACCEPTED.items() if not name.startswith("identify with")]
    ExchangeRate.objects.create(date=datetime.now(UTC).date(), currency="EUR", base_currency="USD", rate=Decimal("0.8"))

    assert api.post("/v1/events/batch", {"events": bodies}, format="json").json()["accepted"] == len(bodies)
    assert engine.deliver_due().delivered == len(bodies)

    lines = {line["event_id"]: line for line in s3_lines(moto_firehose)}
    assert set(lines) == {body["event_id"] for body in bodies}
    for body in bodies:
        line = lines[body["event_id"]]
        assert line["event_type"] == body["event_type"]
        assert line["game"] == "space-raiders"
        assert "event_schema_version" not in line  # built-in types have no schema version
    session_end = lines[ACCEPTED["session_end of 7 days"]["event_id"]]
    assert session_end["session_id"] == "s-1"
    assert session_end["properties"] == {"duration_ms": 604_800_000}
    progression = lines[ACCEPTED["progression complete with score and attempt"]["event_id"]]
    assert progression["properties"] == {"status": "complete", "level": "w1", "score": -5, "attempt": 1}
    # Decimals go out as plain decimal strings, never floats.
    resource = lines[ACCEPTED["resource sink with item"]["event_id"]]
    assert resource["properties"]["amount"] == "0.5"
    assert "revenue" not in resource


def test_ad_revenue_is_converted_to_the_base_currency_like_purchase_revenue(api, moto_firehose):
    ExchangeRate.objects.create(date=datetime.now(UTC).date(), currency="EUR", base_currency="USD", rate=Decimal("0.8"))
    body = ACCEPTED["ad_impression with revenue and unit"]

    api.post(EVENTS, body, format="json")
    engine.deliver_due()

    (line,) = s3_lines(moto_firehose)
    assert line["properties"]["revenue"] == "0.0125"
    assert (line["revenue"], line["currency"]) == ("0.0125", "EUR")
    # 0.0125 EUR / 0.8 EUR per USD = 0.015625 USD: the same rate and half-even rounding as purchases, but to
    # 6 places, not the cent (a million such impressions must not sum to 20,000 USD, nor to 10,000).
    assert (line["revenue_base"], line["base_currency"], line["fx_date"]) == (
        "0.015625",
        "USD",
        datetime.now(UTC).date().isoformat(),
    )
    assert "price" not in line and "quantity" not in line
    stored = Event.objects.get()
    assert (stored.revenue, stored.revenue_base, stored.currency) == (Decimal("0.0125"), Decimal("0.015625"), "EUR")


def test_ad_revenue_without_a_rate_is_filled_by_reconvert_once_rates_arrive(api):
    body = event(
        "ad_impression",
        {"ad_network": "admob", "ad_format": "interstitial", "revenue": "0.0015", "currency": "EUR"},
        occurred_at="2026-11-30T10:00:00Z",
        sent_at="2026-11-30T10:00:00Z",
    )
    api.post(EVENTS, body, format="json")
    stored = Event.objects.get()
    assert stored.revenue_base is None and stored.payload["revenue_base"] is None

    ExchangeRate.objects.create(
        date=datetime.now(UTC).date(), currency="EUR", base_currency="USD", rate=Decimal("0.75")
    )
    counts = reconvert_missing()

    stored.refresh_from_db()
    assert counts.converted == 1
    assert stored.revenue_base == Decimal("0.002")  # 0.0015 / 0.75, kept below the cent
    assert stored.payload["revenue_base"] == "0.002"


def test_the_openapi_schema_is_valid_and_names_every_built_in_type():
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)  # raises on an invalid OpenAPI 3 document

    event_type = schema["components"]["schemas"]["EventRequest"]["properties"]["event_type"]
    assert event_type["pattern"] == "^[a-z][a-z0-9_]{0,63}$"
    assert all(f"`{name}`" in event_type["description"] for name in REGISTRY)
