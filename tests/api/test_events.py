"""API tests of POST /v1/events and /v1/events/batch: answers, and what reaches the database."""

import gzip
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
import time_machine
from rest_framework.test import APIClient

from events_app.api.keys import issue_api_key, revoke_api_key
from events_app.delivery.records import encode_line
from events_app.delivery.status import delivery_state
from events_app.models import DeliveryIssue, DeliveryState, Event, RejectedEvent

pytestmark = pytest.mark.django_db

EVENTS = "/v1/events"
BATCH = "/v1/events/batch"
MIB = 1024 * 1024
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def parse_utc(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value)


def post_json(client: APIClient, path: str, data: object):
    return client.post(path, data, format="json")


def post_raw(client: APIClient, path: str, body: bytes, *, content_type="application/json", encoding=None):
    extra = {"HTTP_CONTENT_ENCODING": encoding} if encoding else {}
    return client.post(path, data=body, content_type=content_type, **extra)


def purchase_properties(**changes) -> dict:
    properties = {
        "transaction_id": f"txn-{uuid.uuid4()}",
        "product_id": "gem_pack_small",
        "price": "4.99",
        "currency": "EUR",
    }
    properties.update(changes)
    return properties


# POST /v1/events: accepted, duplicates, the game


def test_valid_install_is_accepted_and_stored(api, make_install):
    event = make_install()

    response = post_json(api, EVENTS, event)

    assert response.status_code == 202
    assert response.json() == {"event_id": event["event_id"], "status": "accepted"}
    row = Event.objects.get()
    assert str(row.event_id) == event["event_id"]
    assert row.game.slug == "space-raiders"
    assert (row.event_type, row.player_id, row.platform) == ("install", "player-1", "ios")
    assert row.transaction_id is None
    assert delivery_state(row) == DeliveryState.PENDING  # until a relay passes it


def test_valid_purchase_is_accepted_and_stored(api, make_purchase):
    event = make_purchase()

    response = post_json(api, EVENTS, event)

    assert response.status_code == 202
    assert response.json() == {"event_id": event["event_id"], "status": "accepted"}
    row = Event.objects.get()
    assert row.transaction_id == event["properties"]["transaction_id"]
    assert row.currency == "EUR"
    assert row.revenue == Decimal("4.99")


def test_server_makes_an_event_id_when_absent(api, make_install):
    event = make_install()
    del event["event_id"]

    response = post_json(api, EVENTS, event)

    assert response.status_code == 202
    event_id = uuid.UUID(response.json()["event_id"])
    row = Event.objects.get()
    assert row.event_id == event_id
    assert row.payload["event_id"] == str(event_id)


def test_same_event_id_again_is_a_duplicate_stored_once(api, make_install):
    event = make_install()
    post_json(api, EVENTS, event)

    response = post_json(api, EVENTS, {**event, "occurred_at": "2026-11-25T10:00:00Z"})  # a client's retry

    assert response.status_code == 202
    assert response.json() == {"event_id": event["event_id"], "status": "duplicate"}
    assert Event.objects.get().player_id == "player-1"


def test_same_event_id_for_another_player_is_rejected_and_the_first_kept(api, make_install):
    event = make_install()
    post_json(api, EVENTS, event)

    response = post_json(api, EVENTS, {**event, "player_id": "someone-else"})

    assert response.status_code == 400
    assert response.json() == {
        "event_id": ["Conflicts with an event already stored: same event_id, another player_id."]
    }
    assert Event.objects.get().player_id == "player-1"
    assert RejectedEvent.objects.get().player_id == "someone-else"


def test_same_transaction_id_from_another_player_or_at_another_price_is_rejected(api, make_purchase):
    first = make_purchase(player_id="victim")
    post_json(api, EVENTS, first)
    properties = first["properties"]

    other_player = post_json(api, EVENTS, make_purchase(player_id="attacker", properties=properties))
    other_price = post_json(api, EVENTS, make_purchase(player_id="victim", properties={**properties, "price": "0.01"}))

    assert other_player.status_code == other_price.status_code == 400
    assert other_player.json() == {
        "properties": {
            "transaction_id": ["Conflicts with an event already stored: same transaction_id, another player_id."]
        }
    }
    assert other_price.json() == {
        "properties": {
            "transaction_id": ["Conflicts with an event already stored: same transaction_id, another price."]
        }
    }
    assert list(Event.objects.values_list("event_id", "player_id")) == [(uuid.UUID(first["event_id"]), "victim")]
    assert RejectedEvent.objects.count() == 2


def test_purchase_with_a_stored_transaction_id_is_a_duplicate_stored_once(api, make_purchase):
    first = make_purchase()
    replay = make_purchase(properties=first["properties"])
    post_json(api, EVENTS, first)

    response = post_json(api, EVENTS, replay)

    assert response.status_code == 202
    # The id the tracker holds, not the replay's own, which exists nowhere.
    assert response.json() == {"event_id": first["event_id"], "status": "duplicate"}
    assert str(Event.objects.get().event_id) == first["event_id"]


def test_a_purchase_repeated_without_event_id_answers_with_the_stored_events_id(api, make_purchase):
    purchase = make_purchase()
    del purchase["event_id"]
    stored_id = post_json(api, EVENTS, purchase).json()["event_id"]

    single = post_json(api, EVENTS, purchase)
    batch = post_json(api, BATCH, {"events": [purchase, purchase]})

    assert single.json() == {"event_id": stored_id, "status": "duplicate"}
    assert [(r["event_id"], r["status"]) for r in batch.json()["results"]] == [(stored_id, "duplicate")] * 2
    # The answered id is one the API can be asked about: it is the stored row's.
    assert [str(event_id) for event_id in Event.objects.values_list("event_id", flat=True)] == [stored_id]


def test_same_event_id_in_another_game_is_accepted(api, make_install):
    event = make_install()
    post_json(api, EVENTS, event)
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_api_key(game_slug='moon-miners')[1]}")

    response = post_json(other, EVENTS, event)

    assert response.json()["status"] == "accepted"
    assert sorted(Event.objects.values_list("game__slug", flat=True)) == ["moon-miners", "space-raiders"]


def test_game_comes_from_the_key_not_the_body(api, make_install):
    response = post_json(api, EVENTS, make_install(game="someone-elses-game"))

    assert response.status_code == 202
    row = Event.objects.get()
    assert row.game.slug == "space-raiders"
    assert row.payload["game"] == "space-raiders"


# Authentication


def unauthenticated() -> APIClient:
    return APIClient()


def unknown_key() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer pet_not-a-key-of-anyone")
    return client


def malformed_header() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer two parts")
    return client


@pytest.mark.parametrize("path", [EVENTS, BATCH])
@pytest.mark.parametrize("make_client", [unauthenticated, unknown_key, malformed_header])
def test_request_without_a_valid_key_is_refused_with_401(db, path, make_client, make_install):
    response = post_json(make_client(), path, {"events": [make_install()]} if path == BATCH else make_install())

    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"]
    assert response["WWW-Authenticate"] == "Bearer"
    assert Event.objects.count() == 0


@pytest.mark.parametrize("path", [EVENTS, BATCH])
def test_request_with_a_revoked_key_is_refused_with_401(api, game_key, path, make_install):
    revoke_api_key(api_key=game_key[0])

    response = post_json(api, path, {"events": [make_install()]} if path == BATCH else make_install())

    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"]
    assert response["WWW-Authenticate"] == "Bearer"
    assert Event.objects.count() == 0


# Body: media type, encoding, size, JSON


@pytest.mark.parametrize("path", [EVENTS, BATCH])
def test_body_that_is_not_json_is_refused_with_415(api, path, make_install):
    response = post_raw(api, path, json.dumps(make_install()).encode(), content_type="text/plain")

    assert response.status_code == 415
    assert Event.objects.count() == 0


@pytest.mark.parametrize("encoding", ["br", "deflate", "compress"])
def test_unknown_content_encoding_is_refused_with_415(api, make_install, encoding):
    response = post_raw(api, EVENTS, json.dumps(make_install()).encode(), encoding=encoding)

    assert response.status_code == 415
    assert encoding in response.json()["detail"]
    assert Event.objects.count() == 0


@pytest.mark.parametrize("path", [EVENTS, BATCH])
def test_gzip_body_is_accepted(api, make_install, path):
    event = make_install()
    data = {"events": [event]} if path == BATCH else event

    response = post_raw(api, path, gzip.compress(json.dumps(data).encode()), encoding="gzip")

    assert response.status_code in (200, 202)
    assert str(Event.objects.get().event_id) == event["event_id"]


def test_body_that_is_not_gzip_despite_its_encoding_is_refused_with_400(api, make_install):
    response = post_raw(api, EVENTS, json.dumps(make_install()).encode(), encoding="gzip")

    assert response.status_code == 400
    assert Event.objects.count() == 0


@pytest.mark.parametrize("path", [EVENTS, BATCH])
@pytest.mark.parametrize(
    "body",
    [
        b'{"event_type": "install", "player_id": ',
        b'{"event_type": "install", "player_id": "p", "occurred_at": "2026-03-01T11:00:00Z"}}',
        b"",
        b'{"event_type": "purchase", "player_id": "p", "occurred_at": "2026-03-01T11:00:00Z", '
        b'"properties": {"transaction_id": "t", "product_id": "x", "price": NaN, "currency": "EUR"}}',
        b'{"event_type": "install", "player_id": "\xff\xfe", "occurred_at": "2026-03-01T11:00:00Z"}',
    ],
    ids=["truncated", "trailing-brace", "empty", "nan-literal", "invalid-utf8"],
)
def test_body_that_is_not_valid_json_is_refused_with_400(api, path, body):
    response = post_raw(api, path, body)

    assert response.status_code == 400
    assert Event.objects.count() == 0


def test_body_over_1_mib_is_refused_with_413(api, make_install):
    body = json.dumps(make_install(context={"pad": "x" * MIB})).encode()

    response = post_raw(api, EVENTS, body)

    assert response.status_code == 413
    assert Event.objects.count() == 0


def test_batch_body_over_1_mib_is_refused_with_413(api, make_install):
    events = [make_install(context={"pad": "x" * 4000}) for _ in range(300)]

    response = post_json(api, BATCH, {"events": events})

    assert response.status_code == 413
    assert Event.objects.count() == 0


@pytest.mark.parametrize(("path", "limit"), [(EVENTS, 64 * 1024), (BATCH, MIB)], ids=["single-64-kib", "batch-1-mib"])
def test_body_of_exactly_the_endpoints_limit_is_accepted(api, make_install, path, limit):
    body = json.dumps(make_install() if path == EVENTS else {"events": [make_install()]}).encode()
    body += b" " * (limit - len(body))

    response = post_raw(api, path, body)

    assert response.status_code in (200, 202)
    assert Event.objects.count() == 1


@pytest.mark.parametrize("path", [EVENTS, BATCH])
def test_gzip_bomb_is_refused_with_413(api, path):
    bomb = gzip.compress(b" " * (20 * MIB))
    assert len(bomb) < 64 * 1024

    response = post_raw(api, path, bomb, encoding="gzip")

    assert response.status_code == 413
    assert Event.objects.count() == 0


def test_gzip_body_over_1_mib_once_decompressed_is_refused_with_413(api, make_install):
    body = gzip.compress(json.dumps(make_install(context={"pad": " " * MIB})).encode())

    response = post_raw(api, EVENTS, body, encoding="gzip")

    assert response.status_code == 413
    assert Event.objects.count() == 0


@pytest.mark.parametrize("body", [[], "install", 42, None], ids=["list", "string", "number", "null"])
def test_single_event_body_that_is_not_an_object_is_refused_with_400(api, make_install, body):
    if body == []:
        body = [make_install()]

    response = post_raw(api, EVENTS, json.dumps(body).encode())

    assert response.status_code == 400
    assert Event.objects.count() == 0


# Validation through the API: 400 naming the field, nothing stored


def install_with(**overrides):
    return lambda make_install, make_purchase: make_install(**overrides)


def purchase_with(**overrides):
    return lambda make_install, make_purchase: make_purchase(**overrides)


@pytest.mark.parametrize(
    ("build", "field", "property_name"),
    [
        (install_with(event_id="not-a-uuid"), "event_id", None),
        (install_with(event_type="login"), "event_type", None),
        (install_with(player_id=""), "player_id", None),
        (install_with(player_id="x" * 129), "player_id", None),
        (install_with(occurred_at="2026-03-01T11:00:00"), "occurred_at", None),
        (install_with(occurred_at="2026-03-01"), "occurred_at", None),
        (install_with(sent_at="later"), "sent_at", None),
        (install_with(platform="nintendo"), "platform", None),
        (install_with(app_version="v" * 65), "app_version", None),
        (install_with(session_id="s" * 129), "session_id", None),
        (install_with(properties=["store"]), "properties", None),
        (install_with(context="x"), "context", None),
        (install_with(context={"pad": "x" * 8 * 1024}), "context", None),
        (install_with(properties={"blob": "x" * 32 * 1024}), "non_field_errors", None),
        (install_with(properties={"country": "XX"}), "properties", "country"),
        (purchase_with(properties={}), "properties", "transaction_id"),
        (purchase_with(properties=purchase_properties(price=0)), "properties", "price"),
        (purchase_with(properties=purchase_properties(price="abc")), "properties", "price"),
        (purchase_with(properties=purchase_properties(currency="XYZ")), "properties", "currency"),
        (purchase_with(properties=purchase_properties(quantity=0)), "properties", "quantity"),
        (install_with(occurred_at=rfc3339(NOW + timedelta(days=2))), "occurred_at", None),
    ],
    ids=[
        "event_id",
        "event_type",
        "player_id-empty",
        "player_id-129",
        "occurred_at-naive",
        "occurred_at-date",
        "sent_at",
        "platform",
        "app_version",
        "session_id",
        "properties-list",
        "context-string",
        "context-over-8-kib",
        "event-over-32-kib",
        "country",
        "purchase-no-properties",
        "price-zero",
        "price-abc",
        "currency",
        "quantity",
        "two-days-ahead",
    ],
)
def test_invalid_event_is_refused_with_400_naming_the_field(
    api, make_install, make_purchase, build, field, property_name
):
    with time_machine.travel(NOW, tick=False):
        response = post_json(api, EVENTS, build(make_install, make_purchase))

    assert response.status_code == 400
    errors = response.json()
    assert field in errors
    if property_name:
        assert property_name in errors[field]
    assert Event.objects.count() == 0


def test_400_names_every_bad_field(api, make_install):
    response = post_json(api, EVENTS, make_install(player_id="", platform="nintendo", occurred_at="today"))

    assert response.status_code == 400
    assert set(response.json()) == {"player_id", "platform", "occurred_at"}
    assert Event.objects.count() == 0


def test_purchase_without_properties_names_all_required_properties(api, make_purchase):
    event = make_purchase()
    del event["properties"]

    response = post_json(api, EVENTS, event)

    assert response.status_code == 400
    assert set(response.json()["properties"]) == {"transaction_id", "product_id", "price", "currency"}
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"occurred_at": "0001-01-01T00:00:00+01:00"},
        {"occurred_at": "9999-12-31T23:59:59-01:00", "sent_at": "9999-12-31T23:59:59-01:00"},
    ],
    ids=["year-1-east-of-utc", "year-9999-west-of-utc"],
)
def test_timestamp_outside_the_utc_range_is_refused_with_400(api, make_install, overrides):
    response = post_json(api, EVENTS, make_install(**overrides))

    assert response.status_code == 400
    assert "occurred_at" in response.json() or "sent_at" in response.json()
    assert Event.objects.count() == 0


def test_absurd_timestamps_are_refused_with_400(api, make_install):
    response = post_json(api, EVENTS, make_install(occurred_at="0001-01-01T00:00:00Z", sent_at="9999-12-31T23:59:59Z"))

    assert response.status_code == 400
    assert "occurred_at" in response.json()
    assert Event.objects.count() == 0


# The stored record


def test_stored_install_payload_has_the_record_fields(api, make_install):
    event = make_install(
        occurred_at="2026-03-04T13:00:00+02:00",
        sent_at="2026-03-04T13:00:05+02:00",
        app_version="1.2.3",
        session_id="session-9",
        properties={"store": "app_store", "country": "fr", "level": 7},
        context={"locale": "fr_FR"},
    )

    with time_machine.travel(NOW, tick=False):
        response = post_json(api, EVENTS, event)

    assert response.status_code == 202
    row = Event.objects.get()
    payload = row.payload
    # The line sent to Firehose is this payload plus emitted_at, in the contract's order.
    line = orjson.loads(encode_line(payload, emitted_at=NOW))
    assert list(line) == [
        "schema_version",
        "event_id",
        "event_type",
        "game",
        "player_id",
        "occurred_at",
        "sent_at",
        "received_at",
        "derived_at",
        "emitted_at",
        "platform",
        "app_version",
        "session_id",
        "properties",
        "context",
    ]
    assert payload["schema_version"] == 1
    assert payload["event_id"] == event["event_id"]
    assert (payload["event_type"], payload["game"], payload["player_id"]) == ("install", "space-raiders", "player-1")
    assert parse_utc(payload["occurred_at"]) == datetime(2026, 3, 4, 11, 0, tzinfo=UTC)
    assert parse_utc(payload["sent_at"]) == datetime(2026, 3, 4, 11, 0, 5, tzinfo=UTC)
    assert parse_utc(payload["received_at"]) == NOW
    assert parse_utc(payload["derived_at"]) == NOW - timedelta(seconds=5)
    assert (payload["platform"], payload["app_version"], payload["session_id"]) == ("ios", "1.2.3", "session-9")
    assert payload["properties"] == {"store": "app_store", "country": "FR", "level": 7}
    assert payload["context"] == {"locale": "fr_FR"}
    assert (row.received_at, row.derived_at) == (NOW, NOW - timedelta(seconds=5))
    # Written once, pending for the relay: no delivery row of its own unless its delivery fails.
    assert delivery_state(row) == DeliveryState.PENDING
    assert not DeliveryIssue.objects.exists()


def test_stored_payload_without_sent_at_derives_from_occurred_at(api, make_install):
    with time_machine.travel(NOW, tick=False):
        post_json(api, EVENTS, make_install(occurred_at="2026-03-01T11:30:00Z"))

    payload = Event.objects.get().payload
    assert payload["sent_at"] is None
    assert parse_utc(payload["derived_at"]) == datetime(2026, 3, 1, 11, 30, tzinfo=UTC)
    assert payload["context"] == {}


@pytest.mark.parametrize(
    ("price", "quantity", "revenue"),
    [("2.50", 3, "7.5"), ("4.99", None, "4.99"), (10, 2, "20"), (0.1, 3, "0.3"), ("0.01", 1_000_000, "10000")],
    ids=["string-price", "default-quantity", "integer-price", "float-price", "tiny-price"],
)
def test_stored_purchase_payload_carries_price_quantity_currency_and_revenue(
    api, make_purchase, price, quantity, revenue
):
    properties = purchase_properties(price=price, currency="eur", promo="spring")
    if quantity is not None:
        properties["quantity"] = quantity

    response = post_json(api, EVENTS, make_purchase(properties=properties))

    assert response.status_code == 202
    row = Event.objects.get()
    payload = row.payload
    assert list(orjson.loads(encode_line(payload, emitted_at=NOW)))[-8:] == [
        "price",
        "quantity",
        "currency",
        "revenue",
        "revenue_base",
        "base_currency",
        "fx_rate",
        "fx_date",
    ]
    assert Decimal(payload["price"]) == Decimal(str(price))
    assert payload["quantity"] == (quantity or 1)
    assert payload["currency"] == "EUR"
    assert payload["revenue"] == revenue
    assert payload["properties"]["promo"] == "spring"
    assert payload["properties"]["transaction_id"] == properties["transaction_id"]
    assert row.revenue == Decimal(revenue)
    assert row.currency == "EUR"


# POST /v1/events/batch


def test_batch_answers_each_event_in_order_and_keeps_the_valid_ones(api, make_install, make_purchase):
    events = [make_install(), make_install(player_id=""), make_purchase(), {"event_type": "install"}]

    response = post_json(api, BATCH, {"events": events})

    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 0, 2)
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3]
    assert [r["status"] for r in body["results"]] == ["accepted", "rejected", "accepted", "rejected"]
    assert body["results"][0]["event_id"] == events[0]["event_id"]
    assert body["results"][2]["event_id"] == events[2]["event_id"]
    assert set(body["results"][1]["errors"]) == {"player_id"}
    assert set(body["results"][3]["errors"]) == {"player_id", "occurred_at"}
    assert "event_id" not in body["results"][1]
    stored = {str(event_id) for event_id in Event.objects.values_list("event_id", flat=True)}
    assert stored == {events[0]["event_id"], events[2]["event_id"]}


def test_batch_rejects_events_that_are_not_objects_one_by_one(api, make_install):
    events = [make_install(), "install", [1, 2], 7, True]

    response = post_json(api, BATCH, {"events": events})

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "rejected", "rejected", "rejected"]
    assert all("non_field_errors" in r["errors"] for r in results[1:])
    assert Event.objects.count() == 1


def test_null_event_in_a_batch_is_rejected_alone(api, make_install):
    event = make_install()

    response = post_json(api, BATCH, {"events": [event, None]})

    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "rejected"]
    assert str(Event.objects.get().event_id) == event["event_id"]


def test_batch_counts_events_already_stored_as_duplicates(api, make_install, make_purchase):
    known_install, known_purchase = make_install(), make_purchase()
    post_json(api, EVENTS, known_install)
    post_json(api, EVENTS, known_purchase)
    replayed_receipt = make_purchase(properties=known_purchase["properties"])
    fresh = make_install()

    response = post_json(api, BATCH, {"events": [known_install, replayed_receipt, fresh]})

    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 2, 0)
    assert [r["status"] for r in body["results"]] == ["duplicate", "duplicate", "accepted"]
    # Each duplicate answers with the stored event's id (the receipt's original, not the replay's).
    assert [r["event_id"] for r in body["results"][:2]] == [known_install["event_id"], known_purchase["event_id"]]
    assert Event.objects.count() == 3


def test_same_event_id_twice_in_one_batch_is_stored_once(api, make_install):
    event = make_install()

    response = post_json(api, BATCH, {"events": [event, event, {**event, "player_id": "copy"}]})

    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 1, 1)
    assert [r["status"] for r in body["results"]] == ["accepted", "duplicate", "rejected"]
    assert [r["event_id"] for r in body["results"][:2]] == [event["event_id"]] * 2
    assert body["results"][2]["errors"] == {
        "event_id": ["Conflicts with an event already stored: same event_id, another player_id."]
    }
    assert Event.objects.get().player_id == "player-1"


def test_same_transaction_id_twice_in_one_batch_is_stored_once(api, make_purchase):
    first = make_purchase()
    second = make_purchase(properties=first["properties"])

    response = post_json(api, BATCH, {"events": [first, second]})

    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 1, 0)
    assert [(r["event_id"], r["status"]) for r in body["results"]] == [
        (first["event_id"], "accepted"),
        (first["event_id"], "duplicate"),
    ]
    assert str(Event.objects.get().event_id) == first["event_id"]


def test_batch_of_500_events_is_accepted(api, make_install):
    events = [make_install() for _ in range(500)]

    response = post_json(api, BATCH, {"events": events})

    assert response.status_code == 200
    assert response.json()["accepted"] == 500
    assert len(response.json()["results"]) == 500
    assert Event.objects.count() == 500


def many_installs(count: int) -> list:
    return [{"event_type": "install", "player_id": f"p{i}", "occurred_at": rfc3339(NOW)} for i in range(count)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "events"),
        ({"sent_at": "2026-03-01T12:00:00Z"}, "events"),
        ({"events": None}, "events"),
        ({"events": "install"}, "events"),
        ({"events": {"event_type": "install"}}, "events"),
        ({"events": []}, "events"),
        ({"events": many_installs(501)}, "events"),
        ({"sent_at": "2026-03-01T12:00:00", "events": many_installs(1)}, "sent_at"),
        (many_installs(1), "non_field_errors"),
        ("events", "non_field_errors"),
    ],
    ids=[
        "no-events",
        "only-sent_at",
        "events-null",
        "events-string",
        "events-object",
        "events-empty",
        "501-events",
        "naive-batch-sent_at",
        "body-is-a-list",
        "body-is-a-string",
    ],
)
def test_invalid_batch_envelope_is_refused_with_400_and_stores_nothing(api, body, field):
    response = post_json(api, BATCH, body)

    assert response.status_code == 400
    assert field in response.json()
    assert Event.objects.count() == 0


def test_batch_sent_at_applies_to_events_without_their_own(api, make_install):
    # The device clock runs two days ahead; the batch left the device at its 14:00.
    client_sent_at = NOW + timedelta(days=2)
    relies_on_batch = make_install(occurred_at=rfc3339(client_sent_at - timedelta(minutes=30)))
    has_its_own = make_install(
        occurred_at=rfc3339(client_sent_at - timedelta(hours=2)),
        sent_at=rfc3339(client_sent_at - timedelta(hours=1)),
    )
    body = {"sent_at": rfc3339(client_sent_at), "events": [relies_on_batch, has_its_own]}

    with time_machine.travel(NOW, tick=False):
        response = post_json(api, BATCH, body)

    assert response.json()["accepted"] == 2
    first = Event.objects.get(event_id=relies_on_batch["event_id"])
    assert first.derived_at == NOW - timedelta(minutes=30)
    assert first.sent_at == client_sent_at
    assert parse_utc(first.payload["derived_at"]) == NOW - timedelta(minutes=30)
    assert parse_utc(first.payload["sent_at"]) == client_sent_at
    assert parse_utc(first.payload["received_at"]) == NOW
    second = Event.objects.get(event_id=has_its_own["event_id"])
    assert second.derived_at == NOW - timedelta(hours=1)
    assert second.sent_at == client_sent_at - timedelta(hours=1)
    assert parse_utc(second.payload["derived_at"]) == NOW - timedelta(hours=1)


def test_batch_event_too_far_ahead_is_rejected_alone(api, make_install):
    ahead = make_install(occurred_at=rfc3339(NOW + timedelta(hours=25)))
    on_time = make_install(occurred_at=rfc3339(NOW - timedelta(minutes=1)))

    with time_machine.travel(NOW, tick=False):
        response = post_json(api, BATCH, {"events": [ahead, on_time]})

    body = response.json()
    assert [r["status"] for r in body["results"]] == ["rejected", "accepted"]
    assert set(body["results"][0]["errors"]) == {"occurred_at"}
    assert str(Event.objects.get().event_id) == on_time["event_id"]


# Other endpoints


def test_healthz_answers_200(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readyz_answers_200_when_the_database_answers(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_openapi_schema_describes_both_event_endpoints(client):
    response = client.get("/api/schema/")

    assert response.status_code == 200
    content = response.content.decode()
    assert "openapi: 3" in content
    assert "/v1/events/batch" in content
    assert "/v1/events:" in content


def test_api_docs_load_no_asset_from_another_host(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert assets
    assert all(asset.startswith("/") and not asset.startswith("//") for asset in assets), assets
    assert not re.search(r"https?://", html)
