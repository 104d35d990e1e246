"""Unit tests of EventSerializer: every rule of the design's event table, valid and invalid."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from rest_framework.serializers import ValidationError

from events_app.ingest.serializers import EventSerializer
from sdk.contract import PLATFORMS

RECEIVED_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OCCURRED_AT = "2026-03-01T11:00:00Z"
PURCHASE_FIELDS = {"transaction_id", "product_id", "price", "currency"}


def rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def compact_json_size(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def install(**overrides) -> dict:
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "install",
        "player_id": "player-1",
        "occurred_at": OCCURRED_AT,
        "properties": {"store": "app_store", "country": "FR"},
    }
    event.update(overrides)
    return event


def purchase_properties(**changes) -> dict:
    properties = {"transaction_id": "txn-1", "product_id": "gem_pack_small", "price": "4.99", "currency": "EUR"}
    properties.update(changes)
    return properties


def purchase(**overrides) -> dict:
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "purchase",
        "player_id": "player-1",
        "occurred_at": OCCURRED_AT,
        "properties": purchase_properties(),
    }
    event.update(overrides)
    return event


def without(event: dict, key: str) -> dict:
    return {k: v for k, v in event.items() if k != key}


def validate(data: object, *, received_at: datetime = RECEIVED_AT, batch_sent_at: datetime | None = None) -> dict:
    serializer = EventSerializer(context={"received_at": received_at, "batch_sent_at": batch_sent_at})
    return serializer.run_validation(data)


def errors_of(data: object, **context) -> dict:
    with pytest.raises(ValidationError) as excinfo:
        validate(data, **context)
    return excinfo.value.detail


def property_errors_of(data: object) -> dict:
    errors = errors_of(data)
    assert set(errors) == {"properties"}
    return errors["properties"]


# event_id


def test_event_id_may_be_omitted():
    validated = validate(without(install(), "event_id"))

    assert "event_id" not in validated


def test_event_id_given_as_uuid_string_is_kept():
    event_id = uuid.uuid4()

    assert validate(install(event_id=str(event_id)))["event_id"] == event_id


@pytest.mark.parametrize("event_id", ["abc", "", "1234", "not-a-uuid-at-all-0000-000000000000", {}, []])
def test_event_id_that_is_not_a_uuid_is_rejected(event_id):
    assert set(errors_of(install(event_id=event_id))) == {"event_id"}


@pytest.mark.parametrize("event_id", [42, True])
def test_event_id_given_as_a_number_is_rejected(event_id):
    assert set(errors_of(install(event_id=event_id))) == {"event_id"}


# event_type


@pytest.mark.parametrize("event_type", ["install", "purchase"])
def test_known_event_types_are_accepted(event_type):
    event = install() if event_type == "install" else purchase()

    assert validate(event)["event_type"] == event_type


def test_event_type_is_required():
    assert set(errors_of(without(install(), "event_type"))) == {"event_type"}


@pytest.mark.parametrize("event_type", ["login", "", "INSTALL", "Purchase", None, 1])
def test_unknown_or_malformed_event_type_is_rejected_when_no_schema_applies(event_type):
    assert set(errors_of(install(event_type=event_type))) == {"event_type"}


# player_id


@pytest.mark.parametrize("player_id", ["p", "x" * 128, " spaced player "])
def test_player_id_of_1_to_128_characters_is_accepted(player_id):
    assert validate(install(player_id=player_id))["player_id"] == player_id


def test_player_id_is_required():
    assert set(errors_of(without(install(), "player_id"))) == {"player_id"}


@pytest.mark.parametrize("player_id", ["", "x" * 129, None, ["p"]], ids=["empty", "129-chars", "null", "list"])
def test_player_id_that_is_empty_too_long_or_not_a_string_is_rejected(player_id):
    assert set(errors_of(install(player_id=player_id))) == {"player_id"}


# occurred_at


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2026-03-01T11:00:00Z",
        "2026-03-01T13:00:00+02:00",
        "2026-03-01T06:30:00-04:30",
        "2026-03-01t11:00:00z",
        "2026-03-01 11:00:00Z",
    ],
)
def test_occurred_at_in_rfc3339_with_offset_is_accepted(occurred_at):
    validated = validate(install(occurred_at=occurred_at))

    assert validated["occurred_at"] == datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
    assert validated["occurred_at"].tzinfo is not None


def test_occurred_at_keeps_its_offset():
    validated = validate(install(occurred_at="2026-03-01T13:00:00+02:00"))

    assert validated["occurred_at"].utcoffset() == timedelta(hours=2)


def test_occurred_at_with_nanoseconds_is_truncated_to_microseconds():
    validated = validate(install(occurred_at="2026-03-01T11:00:00.123456789Z"))

    assert validated["occurred_at"] == datetime(2026, 3, 1, 11, 0, 0, 123456, tzinfo=UTC)


def test_occurred_at_is_required():
    assert set(errors_of(without(install(), "occurred_at"))) == {"occurred_at"}


@pytest.mark.parametrize(
    "occurred_at",
    [
        "2026-03-01T11:00:00",
        "2026-03-01",
        "2026-03-01T11:00Z",
        "2026-03-01T11:00:00+0200",
        "2026-13-01T11:00:00Z",
        "2026-03-01T25:00:00Z",
        "01/03/2026 11:00",
        "yesterday",
        "",
        1772362800,
        None,
    ],
    ids=[
        "naive",
        "date-only",
        "no-seconds",
        "offset-without-colon",
        "month-13",
        "hour-25",
        "locale-format",
        "words",
        "empty",
        "unix-number",
        "null",
    ],
)
def test_occurred_at_that_is_not_rfc3339_with_offset_is_rejected(occurred_at):
    assert set(errors_of(install(occurred_at=occurred_at))) == {"occurred_at"}


# sent_at


def test_sent_at_may_be_omitted():
    assert validate(install())["sent_at"] is None


@pytest.mark.parametrize("sent_at", ["2026-03-01T11:00:05Z", "2026-03-01T13:00:05+02:00", None])
def test_sent_at_in_rfc3339_or_null_is_accepted(sent_at):
    validate(install(sent_at=sent_at))


@pytest.mark.parametrize("sent_at", ["2026-03-01T11:00:05", "2026-03-01", "soon", 1772362805])
def test_sent_at_that_is_not_rfc3339_with_offset_is_rejected(sent_at):
    assert set(errors_of(install(sent_at=sent_at))) == {"sent_at"}


# platform, app_version, session_id


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_listed_platform_is_accepted(platform):
    assert validate(install(platform=platform))["platform"] == platform


def test_the_platform_list_is_the_designs():
    assert set(PLATFORMS) == {
        "ios",
        "android",
        "windows",
        "macos",
        "linux",
        "web",
        "playstation",
        "xbox",
        "switch",
        "other",
    }


def test_platform_may_be_omitted():
    assert "platform" not in validate(install())


@pytest.mark.parametrize("platform", ["nintendo", "iOS", "", 3])
def test_unlisted_platform_is_rejected(platform):
    assert set(errors_of(install(platform=platform))) == {"platform"}


@pytest.mark.parametrize(("field", "limit"), [("app_version", 64), ("session_id", 128)])
def test_optional_string_at_its_length_limit_is_accepted(field, limit):
    assert validate(install(**{field: "v" * limit}))[field] == "v" * limit


@pytest.mark.parametrize(("field", "limit"), [("app_version", 64), ("session_id", 128)])
def test_optional_string_over_its_length_limit_is_rejected(field, limit):
    assert set(errors_of(install(**{field: "v" * (limit + 1)}))) == {field}


# properties and context


@pytest.mark.parametrize("make", [install, purchase])
@pytest.mark.parametrize("properties", [[], "store=x", 1, None], ids=["list", "string", "number", "null"])
def test_properties_that_are_not_an_object_are_rejected(make, properties):
    assert set(errors_of(make(properties=properties))) == {"properties"}


def test_install_without_properties_is_accepted():
    assert validate(without(install(), "properties"))["properties"] == {}


@pytest.mark.parametrize(
    ("make", "properties"),
    [
        (install, {"store": "app_store", "level": 3, "tags": ["a", "b"]}),
        (purchase, purchase_properties(promo={"code": "SPRING"}, bundle=True)),
    ],
    ids=["install", "purchase"],
)
def test_unknown_property_keys_are_kept(make, properties):
    validated = validate(make(properties=properties))

    extra = {key: value for key, value in properties.items() if key not in {"store", *PURCHASE_FIELDS}}
    assert extra
    assert validated["properties"].items() >= extra.items()


def test_context_may_be_omitted():
    assert "context" not in validate(install())


@pytest.mark.parametrize("context", [{}, {"locale": "fr_FR", "screen": {"w": 1170, "h": 2532}}, None])
def test_context_object_or_null_is_accepted(context):
    validate(install(context=context))


@pytest.mark.parametrize("context", [["a"], "locale=fr", 5], ids=["list", "string", "number"])
def test_context_that_is_not_an_object_is_rejected(context):
    assert set(errors_of(install(context=context))) == {"context"}


def context_of_size(size: int) -> dict:
    context = {"k": "x" * (size - compact_json_size({"k": ""}))}
    assert compact_json_size(context) == size
    return context


def test_context_of_exactly_8_kib_is_accepted():
    validate(install(context=context_of_size(8 * 1024)))


def test_context_over_8_kib_is_rejected():
    assert set(errors_of(install(context=context_of_size(8 * 1024 + 1)))) == {"context"}


def event_of_size(size: int) -> dict:
    event = install(properties={"blob": ""})
    event["properties"]["blob"] = "x" * (size - compact_json_size(event))
    assert compact_json_size(event) == size
    return event


def test_event_of_exactly_32_kib_is_accepted():
    validate(event_of_size(32 * 1024))


def test_event_over_32_kib_is_rejected_as_a_whole():
    assert set(errors_of(event_of_size(32 * 1024 + 1))) == {"non_field_errors"}


@pytest.mark.parametrize("data", [[], "install", 42, None], ids=["list", "string", "number", "null"])
def test_event_that_is_not_an_object_is_rejected(data):
    with pytest.raises(ValidationError):
        validate(data)


# install properties


@pytest.mark.parametrize(("country", "stored"), [("FR", "FR"), ("fr", "FR"), ("JP", "JP")])
def test_install_country_in_iso_3166_alpha_2_is_accepted(country, stored):
    assert validate(install(properties={"country": country}))["properties"]["country"] == stored


@pytest.mark.parametrize("country", ["XX", "FRA", "F", "", None])
def test_install_country_not_in_iso_3166_alpha_2_is_rejected(country):
    assert set(property_errors_of(install(properties={"country": country}))) == {"country"}


def test_install_properties_of_the_design_are_kept():
    properties = {
        "store": "google_play",
        "campaign": "spring-2026",
        "country": "DE",
        "device_model": "Pixel 9",
        "os_version": "15",
    }

    assert validate(install(properties=properties))["properties"] == properties


# purchase properties


def test_purchase_without_properties_names_every_required_property():
    assert set(property_errors_of(without(purchase(), "properties"))) == PURCHASE_FIELDS


@pytest.mark.parametrize("field", sorted(PURCHASE_FIELDS))
def test_purchase_missing_a_required_property_is_rejected(field):
    properties = {k: v for k, v in purchase_properties().items() if k != field}

    assert set(property_errors_of(purchase(properties=properties))) == {field}


@pytest.mark.parametrize("field", ["transaction_id", "product_id"])
def test_purchase_with_blank_identifier_is_rejected(field):
    assert set(property_errors_of(purchase(properties=purchase_properties(**{field: ""})))) == {field}


@pytest.mark.parametrize(
    ("price", "expected"),
    [("4.99", Decimal("4.99")), (4.99, Decimal("4.99")), (10, Decimal("10")), ("0.01", Decimal("0.01"))],
    ids=["string", "float", "integer", "smallest"],
)
def test_positive_price_as_string_or_number_is_accepted(price, expected):
    assert validate(purchase(properties=purchase_properties(price=price)))["properties"]["price"] == expected


@pytest.mark.parametrize(
    "price",
    [0, "0", "0.00", -1, "-4.99", "abc", "", "NaN", "Infinity", "-Infinity", True, False, None, [4.99]],
)
def test_price_that_is_not_a_positive_decimal_is_rejected(price):
    assert set(property_errors_of(purchase(properties=purchase_properties(price=price)))) == {"price"}


@pytest.mark.parametrize(("currency", "stored"), [("EUR", "EUR"), ("JPY", "JPY"), ("eur", "EUR")])
def test_currency_in_iso_4217_is_accepted_upper_cased(currency, stored):
    properties = purchase_properties(currency=currency, price="1200")  # whole: JPY has no minor units
    assert validate(purchase(properties=properties))["properties"]["currency"] == stored


@pytest.mark.parametrize("currency", ["EURO", "XYZ", "EU", "", "€", None])
def test_currency_not_in_iso_4217_is_rejected(currency):
    assert set(property_errors_of(purchase(properties=purchase_properties(currency=currency)))) == {"currency"}


def test_quantity_defaults_to_1():
    assert validate(purchase())["properties"]["quantity"] == 1


@pytest.mark.parametrize("quantity", [1, 3, 1000])
def test_quantity_of_1_or_more_is_accepted(quantity):
    assert validate(purchase(properties=purchase_properties(quantity=quantity)))["properties"]["quantity"] == quantity


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "x", None, True])
def test_quantity_that_is_not_an_integer_of_1_or_more_is_rejected(quantity):
    assert set(property_errors_of(purchase(properties=purchase_properties(quantity=quantity)))) == {"quantity"}


def test_purchase_store_is_optional_and_kept():
    validated = validate(purchase(properties=purchase_properties(store="app_store")))

    assert validated["properties"]["store"] == "app_store"


def test_several_bad_properties_are_all_named():
    properties = purchase_properties(price="0", currency="XYZ", quantity=0)

    assert set(property_errors_of(purchase(properties=properties))) == {"price", "currency", "quantity"}


def test_several_bad_fields_are_all_named():
    errors = errors_of(install(player_id="", platform="nintendo", occurred_at="2026-03-01"))

    assert set(errors) == {"player_id", "platform", "occurred_at"}


def test_bad_field_and_bad_properties_are_named_together():
    errors = errors_of(purchase(player_id="", properties=purchase_properties(price="0")))

    assert set(errors) == {"player_id", "properties"}


# clock skew


def test_derived_at_is_occurred_at_without_sent_at():
    validated = validate(install(occurred_at="2026-03-01T10:00:00Z"))

    assert validated["derived_at"] == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert validated["sent_at"] is None
    assert validated["received_at"] == RECEIVED_AT


def test_derived_at_corrects_the_client_clock_by_its_own_sent_at():
    # The client's clock is three days ahead; it sent the event an hour after it happened.
    validated = validate(install(occurred_at="2026-03-04T11:00:00Z", sent_at="2026-03-04T12:00:00Z"))

    assert validated["derived_at"] == RECEIVED_AT - timedelta(hours=1)
    assert validated["sent_at"] == datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def test_derived_at_uses_the_batch_sent_at_when_the_event_has_none():
    batch_sent_at = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)

    validated = validate(install(occurred_at="2026-03-04T11:30:00Z"), batch_sent_at=batch_sent_at)

    assert validated["derived_at"] == RECEIVED_AT - timedelta(minutes=30)
    assert validated["sent_at"] == batch_sent_at


def test_event_sent_at_wins_over_the_batch_sent_at():
    event = install(occurred_at="2026-03-04T11:00:00Z", sent_at="2026-03-04T11:10:00Z")

    validated = validate(event, batch_sent_at=datetime(2026, 3, 4, 13, 0, tzinfo=UTC))

    assert validated["derived_at"] == RECEIVED_AT - timedelta(minutes=10)
    assert validated["sent_at"] == datetime(2026, 3, 4, 11, 10, tzinfo=UTC)


@pytest.mark.parametrize("ahead", [timedelta(hours=24), timedelta(hours=23, minutes=59)], ids=["24h", "23h59"])
def test_derived_at_up_to_24_hours_after_received_at_is_accepted(ahead):
    validated = validate(install(occurred_at=rfc3339(RECEIVED_AT + ahead)))

    assert validated["derived_at"] == RECEIVED_AT + ahead


@pytest.mark.parametrize(
    ("occurred_at", "sent_at"),
    [
        (RECEIVED_AT + timedelta(hours=24, microseconds=1), None),
        (RECEIVED_AT + timedelta(days=30), None),
        # Sent 25 hours before it happened, by the client's own clock.
        (RECEIVED_AT + timedelta(hours=25), RECEIVED_AT),
    ],
    ids=["24h-and-1us", "30-days", "sent-before-occurred"],
)
def test_derived_at_more_than_24_hours_after_received_at_is_rejected(occurred_at, sent_at):
    event = install(occurred_at=rfc3339(occurred_at))
    if sent_at is not None:
        event["sent_at"] = rfc3339(sent_at)

    assert set(errors_of(event)) == {"occurred_at"}


def test_derived_at_more_than_24_hours_ahead_by_the_batch_sent_at_is_rejected():
    event = install(occurred_at=rfc3339(RECEIVED_AT + timedelta(hours=25)))

    assert set(errors_of(event, batch_sent_at=RECEIVED_AT)) == {"occurred_at"}


@pytest.mark.parametrize(
    ("occurred_at", "sent_at"),
    [("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"), ("9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z")],
    ids=["occurred-year-1", "occurred-year-9999"],
)
def test_absurd_timestamps_are_a_validation_error_not_a_crash(occurred_at, sent_at):
    assert set(errors_of(install(occurred_at=occurred_at, sent_at=sent_at))) == {"occurred_at"}
