"""The Segment mapping field by field: one Segment message onto one native event, or the errors that refuse it."""

import contextlib
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from events_app.ingest.serializers import EventSerializer
from events_app.segment import mapping
from events_app.segment.mapping import (
    CALL_TYPES,
    CONTEXT_TRUNCATED_KEY,
    MAX_MESSAGE_BYTES,
    MESSAGE_ID_NAMESPACE,
    Envelope,
    map_message,
    snake_case,
)
from sdk.contract import MAX_CONTEXT_BYTES

RECEIVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def track(**changes) -> dict:
    message = {
        "type": "track",
        "event": "Level Up",
        "userId": "player-1",
        "messageId": str(uuid.uuid4()),
        "timestamp": "2026-03-01T11:59:00.000Z",
        "properties": {"level": 3},
    }
    message.update(changes)
    return {key: value for key, value in message.items() if value is not None}


def event_of(message: object, **kwargs) -> dict:
    mapped = map_message(message, received_at=RECEIVED, **kwargs)
    assert mapped.errors is None, mapped.errors
    return mapped.event


def errors_of(message: object, **kwargs) -> dict:
    mapped = map_message(message, received_at=RECEIVED, **kwargs)
    assert mapped.event is None
    return mapped.errors


# messageId -> event_id


def test_a_uuid_message_id_is_the_event_id_in_canonical_form():
    message_id = str(uuid.uuid4()).upper()  # analytics-swift sends them upper-case

    assert event_of(track(messageId=message_id))["event_id"] == message_id.lower()


def test_a_non_uuid_message_id_maps_to_the_same_uuid5_every_time():
    message_id = "ajs-next-1712345678901-8f0b6c1e-6d3a-4c1b-9a55-2f7c3f0a1b2c"

    first = event_of(track(messageId=message_id))["event_id"]
    again = event_of(track(messageId=message_id, event="Other"))["event_id"]

    assert first == again == str(uuid.uuid5(MESSAGE_ID_NAMESPACE, message_id))
    assert event_of(track(messageId=message_id + "x"))["event_id"] != first


def test_a_message_without_a_message_id_leaves_the_event_id_to_the_server():
    assert "event_id" not in event_of(track(messageId=None))


def test_a_message_id_that_is_not_a_string_is_refused():
    assert set(errors_of(track(messageId={"id": 1}))) == {"messageId"}


# userId / anonymousId -> player_id


def test_the_user_id_is_the_player_id_before_the_anonymous_id():
    assert event_of(track(userId="u-1", anonymousId="a-1"))["player_id"] == "u-1"


@pytest.mark.parametrize("user_id", [None, "", "   "])
def test_without_a_user_id_the_anonymous_id_is_the_player_id(user_id):
    assert event_of(track(userId=user_id, anonymousId="a-1"))["player_id"] == "a-1"


def test_an_integer_user_id_is_taken_as_text():
    assert event_of(track(userId=1234))["player_id"] == "1234"


def test_a_message_without_any_id_is_refused_naming_user_id():
    assert set(errors_of(track(userId=None))) == {"userId"}


def test_a_user_id_over_128_characters_is_refused_never_cut():
    errors = errors_of(track(userId="u" * 129))

    assert set(errors) == {"userId"}
    assert "129 characters" in errors["userId"][0]


# timestamp / originalTimestamp / sentAt -> occurred_at, sent_at


def test_the_timestamp_is_occurred_at_and_sent_at_is_sent_at():
    event = event_of(track(timestamp="2026-03-01T11:00:00.123Z", sentAt="2026-03-01T11:00:05Z"))

    assert (event["occurred_at"], event["sent_at"]) == ("2026-03-01T11:00:00.123Z", "2026-03-01T11:00:05Z")


def test_without_a_timestamp_the_original_timestamp_is_occurred_at():
    event = event_of(track(timestamp=None, originalTimestamp="2026-03-01T10:00:00Z"))

    assert event["occurred_at"] == "2026-03-01T10:00:00Z"


def test_without_any_timestamp_the_sent_at_then_the_arrival_is_occurred_at():
    # Either way derived_at comes out as the arrival, as Segment stamps such calls.
    assert event_of(track(timestamp=None, sentAt="2026-03-01T11:00:05Z"))["occurred_at"] == "2026-03-01T11:00:05Z"
    assert event_of(track(timestamp=None))["occurred_at"] == RECEIVED.isoformat()


def test_the_message_sent_at_wins_over_the_batch_sent_at():
    envelope = Envelope(sent_at="2026-03-01T11:30:00Z")

    assert event_of(track(), envelope=envelope)["sent_at"] == "2026-03-01T11:30:00Z"
    assert event_of(track(sentAt="2026-03-01T11:31:00Z"), envelope=envelope)["sent_at"] == "2026-03-01T11:31:00Z"


@pytest.mark.parametrize(
    ("sent", "read"),
    [
        ("2026-03-01T11:00:00.123+0000", "2026-03-01T11:00:00.123+00:00"),  # Java's and Objective-C's "Z" pattern
        ("2021-04-30T22:06:11.1234567Z", "2021-04-30T22:06:11.1234567Z"),  # analytics-csharp's "o" format
        ("2023-04-19T04:03:46.5Z", "2023-04-19T04:03:46.5Z"),  # analytics-kotlin's unpadded milliseconds
    ],
)
def test_timestamps_as_segments_sdks_write_them_are_read(sent, read):
    assert event_of(track(timestamp=sent))["occurred_at"] == read


@pytest.mark.parametrize("field", ["timestamp", "originalTimestamp", "sentAt"])
def test_a_timestamp_without_an_offset_is_refused_naming_it(field):
    message = {**track(timestamp=None), field: "2026-03-01T11:00:00"}

    errors = errors_of(message)

    assert set(errors) == {field}
    assert "offset" in errors[field][0]


@pytest.mark.parametrize("value", ["yesterday", "2015-2-02T00:30:08.276Z", 1712345678901, ""])
def test_a_timestamp_that_is_no_timestamp_is_refused(value):
    assert set(errors_of(track(timestamp=value))) == {"timestamp"}


def test_a_batch_sent_at_that_is_no_timestamp_is_refused_naming_sent_at():
    assert set(errors_of(track(), envelope=Envelope(sent_at="soon"))) == {"sentAt"}


# context -> context, app_version, platform


def test_context_app_version_is_the_app_version():
    assert event_of(track(context={"app": {"version": "2.3.1", "build": "231"}}))["app_version"] == "2.3.1"
    assert event_of(track(context={"app": {"version": 2.3}}))["app_version"] == "2.3"
    assert "app_version" not in event_of(track(context={"app": {"name": "Raiders"}}))


def test_an_app_version_over_64_characters_is_cut_to_64_with_a_note():
    mapped = map_message(track(context={"app": {"version": "1." + "9" * 80}}), received_at=RECEIVED)

    assert mapped.event["app_version"] == ("1." + "9" * 80)[:64]
    assert mapped.event["context"]["app"]["version"] == "1." + "9" * 80  # the context keeps it whole
    assert "app.version" in mapped.notes[0]


@pytest.mark.parametrize(
    ("os_name", "platform"),
    [
        ("iOS", "ios"),
        ("iPadOS", "ios"),
        ("iPhone OS", "ios"),
        ("Android", "android"),
        ("macOS", "macos"),
        ("Mac OS X", "macos"),
        ("Windows", "windows"),
        ("Microsoft Windows 10.0.19045", "windows"),
        ("Linux", "linux"),
        ("PS5", "playstation"),
        ("XboxOne", "xbox"),
        ("Switch", "switch"),
        ("WebGLPlayer", "web"),
        ("tvOS", "other"),
        ("BeOS", "other"),
    ],
)
def test_context_os_name_gives_the_platform(os_name, platform):
    assert event_of(track(context={"os": {"name": os_name, "version": "17.2"}}))["platform"] == platform


def test_analytics_js_without_an_os_is_the_web_platform_and_others_have_none():
    assert event_of(track(context={"library": {"name": "analytics.js", "version": "next-1.70.0"}}))["platform"] == "web"
    assert "platform" not in event_of(track(context={"library": {"name": "analytics-python"}}))


# RudderStack's JS SDK 3.x: its own name in context.app and context.library, an empty OS.
RUDDERSTACK_JS_CONTEXT = {
    "app": {
        "name": "RudderLabs JavaScript SDK",
        "namespace": "com.rudderlabs.javascript",
        "version": "3.34.1",
        "installType": "npm",
    },
    "library": {"name": "RudderLabs JavaScript SDK", "version": "3.34.1"},
    "os": {"name": "", "version": ""},
    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/140.0.0.0",
}


def test_rudderstacks_js_sdk_is_the_web_platform_without_the_sdks_version_as_app_version():
    event = event_of(track(context=RUDDERSTACK_JS_CONTEXT))

    assert event["platform"] == "web"
    assert "app_version" not in event
    assert event["context"]["app"]["version"] == "3.34.1"  # kept in the context, as sent


@pytest.mark.parametrize(
    "app",
    [
        {"name": "com.rudderlabs.javascript", "version": "3.0.0"},
        {"namespace": "com.rudderlabs.javascript", "version": "3.0.0"},
        {"name": "my-sdk", "version": "9.9.9"},  # named as context.library: the SDK filled it with itself
    ],
)
def test_an_app_that_names_the_sdk_gives_no_app_version(app):
    event = event_of(track(context={"app": app, "library": {"name": "my-sdk", "version": "9.9.9"}}))

    assert "app_version" not in event


def test_the_games_own_app_beside_a_mobile_sdks_library_gives_the_app_version():
    context = {
        "app": {"name": "Space Raiders", "namespace": "com.example.raiders", "version": "2.3.1", "build": "231"},
        "library": {"name": "com.rudderstack.android.sdk.core", "version": "1.25.0"},
        "os": {"name": "Android", "version": "14"},
    }

    event = event_of(track(context=context))

    assert (event["app_version"], event["platform"]) == ("2.3.1", "android")


def test_the_context_is_kept_over_the_batch_context_with_the_segment_ids():
    envelope = Envelope(context={"device": {"type": "phone", "model": "old"}, "locale": "fr-FR"})
    message = track(
        messageId="m-1", anonymousId="a-1", context={"device": {"model": "iPhone15,2"}, "ip": "203.0.113.9"}
    )

    context = event_of(message, envelope=envelope)["context"]

    assert context == {
        "device": {"type": "phone", "model": "iPhone15,2"},
        "locale": "fr-FR",
        "ip": "203.0.113.9",
        "segment": {"messageId": "m-1", "userId": "player-1", "anonymousId": "a-1"},
    }


def test_integrations_and_the_write_key_are_not_kept():
    message = track(integrations={"All": False, "Mixpanel": True}, writeKey="secret-key", _metadata={"bundled": []})

    mapped = map_message(message, received_at=RECEIVED)

    assert "writeKey" not in mapped.original
    assert "secret-key" not in orjson.dumps(mapped.event).decode()
    assert "Mixpanel" not in orjson.dumps(mapped.event).decode()


def test_a_context_over_8_kib_drops_its_largest_keys_and_names_them():
    context = {
        "traits": {"bio": "x" * 9000},
        "page": {"url": "https://example.com/" + "p" * 3000},
        "os": {"name": "iOS"},
    }

    mapped = map_message(track(context=context), received_at=RECEIVED)

    kept = mapped.event["context"]
    assert kept[CONTEXT_TRUNCATED_KEY] == ["traits"]
    assert kept["page"] == context["page"] and kept["os"] == {"name": "iOS"}
    assert len(orjson.dumps(kept)) <= MAX_CONTEXT_BYTES
    assert mapped.event["platform"] == "ios"
    assert "dropped 1 of its keys" in mapped.notes[0] and "traits" not in mapped.notes[0]


def test_a_context_that_is_not_an_object_is_refused():
    assert set(errors_of(track(context="iOS"))) == {"context"}


# track -> install, purchase, built-in or custom type


def test_application_installed_is_an_install_with_its_properties():
    event = event_of(track(event="Application Installed", properties={"version": "1.0", "build": "100"}))

    assert (event["event_type"], event["properties"]) == ("install", {"version": "1.0", "build": "100"})


def test_order_completed_is_a_purchase_with_the_contracts_fields():
    properties = {
        "order_id": "ord-1",
        "revenue": 12.99,
        "total": 14.99,
        "currency": "EUR",
        "products": [{"product_id": "gem_pack", "sku": "GEM-1", "price": 12.99, "quantity": 2}],
    }

    event = event_of(track(event="Order Completed", properties=properties))

    assert event["event_type"] == "purchase"
    assert event["properties"] == {
        **properties,
        "transaction_id": "ord-1",
        "product_id": "gem_pack",
        "price": "12.99",
        "quantity": 1,
    }


@pytest.mark.parametrize(
    ("properties", "price", "product_id"),
    [
        ({"order_id": "o", "total": "9.99", "products": [{"sku": "GEM-1"}]}, "9.99", "GEM-1"),
        ({"order_id": "o", "revenue": 5, "products": []}, 5, "o"),
        ({"order_id": 42, "revenue": 5}, 5, "42"),
        ({"order_id": "o", "revenue": 5, "products": [{"product_id": 7}]}, 5, "7"),
    ],
)
def test_order_completed_falls_back_to_total_sku_and_order_id(properties, price, product_id):
    mapped = event_of(track(event="Order Completed", properties={**properties, "currency": "USD"}))["properties"]

    assert (mapped["price"], mapped["product_id"]) == (price, product_id)
    assert mapped["transaction_id"] == str(properties["order_id"])


@pytest.mark.parametrize(
    ("revenue", "price"),
    [
        (3 * 4.33, "12.99"),
        (12.99, "12.99"),
        (0.1 + 0.2, "0.3"),
        (12.995, "12.995"),
        ("4.99", "4.99"),
        (5, 5),
        (1e300, 1e300),
    ],
)
def test_order_completed_drops_float_noise_past_six_decimals_from_the_price(revenue, price):
    properties = {"order_id": "o", "revenue": revenue, "currency": "EUR"}

    assert event_of(track(event="Order Completed", properties=properties))["properties"]["price"] == price


def test_order_completed_without_order_id_or_revenue_is_refused_naming_both():
    errors = errors_of(track(event="Order Completed", properties={"currency": "EUR"}))

    assert set(errors["properties"]) == {"order_id", "revenue"}


@pytest.mark.parametrize("name", ["Order Completed", "order_completed", "orderCompleted", "ORDER COMPLETED"])
def test_semantic_events_are_known_by_their_snake_case(name):
    properties = {"order_id": "o", "revenue": 1, "currency": "EUR"}

    assert event_of(track(event=name, properties=properties))["event_type"] == "purchase"


@pytest.mark.parametrize(
    ("name", "event_type"),
    [
        ("Level Up", "level_up"),
        ("levelUp", "level_up"),
        ("Boss Killed!", "boss_killed"),
        ("Niveau Réussi", "niveau_reussi"),
        ("HTTPRequest Sent", "http_request_sent"),
        ("Level 10 Reached", "level_10_reached"),
        ("  chest--opened  ", "chest_opened"),
    ],
)
def test_other_track_events_are_the_custom_type_of_their_snake_case(name, event_type):
    assert snake_case(name) == event_type
    assert event_of(track(event=name))["event_type"] == event_type


def test_a_track_named_like_a_built_in_type_is_that_type():
    event = event_of(track(event="Progression", properties={"status": "complete", "level": "w1"}))

    assert event["event_type"] == "progression"


@pytest.mark.parametrize("name", ["🎮", "1st Win", "x" * 65])
def test_an_event_name_that_gives_no_valid_type_name_is_refused(name):
    errors = errors_of(track(event=name))

    assert set(errors) == {"event"}
    assert "not a valid type name" in errors["event"][0]


@pytest.mark.parametrize("name", [None, "", " ", 42])
def test_a_track_without_an_event_name_is_refused(name):
    assert set(errors_of(track(event=name))) == {"event"}


def test_track_properties_that_are_not_an_object_are_refused():
    assert set(errors_of(track(properties=["level", 3]))) == {"properties"}


# identify, page, screen, group, alias -> their built-in types


def test_identify_keeps_its_traits_as_properties():
    message = {"type": "identify", "userId": "u-1", "anonymousId": "a-1", "traits": {"email": "p@example.com"}}

    event = event_of(message)

    assert (event["event_type"], event["properties"]) == ("identify", {"email": "p@example.com"})
    assert event["context"]["segment"] == {"userId": "u-1", "anonymousId": "a-1"}


def test_identify_without_traits_takes_the_context_traits_as_rudderstacks_js_sdk_sends_them():
    context = {"traits": {"name": "Ada", "guild": "Knights"}, "library": {"name": "RudderLabs JavaScript SDK"}}

    for traits in (None, {}):
        event = event_of({"type": "identify", "userId": "u-1", "traits": traits, "context": context})

        assert event["properties"] == {"name": "Ada", "guild": "Knights"}


def test_identify_traits_win_over_the_context_traits():
    message = {"type": "identify", "userId": "u-1", "traits": {"name": "Ada"}, "context": {"traits": {"name": "Bob"}}}

    assert event_of(message)["properties"] == {"name": "Ada"}


def test_identify_traits_that_are_no_object_are_refused_naming_traits():
    message = {"type": "identify", "userId": "u-1", "traits": "Ada", "context": {"traits": {"name": "Ada"}}}

    assert set(errors_of(message)) == {"traits"}


def test_group_keeps_its_traits_and_group_id():
    event = event_of({"type": "group", "userId": "u-1", "groupId": "guild-9", "traits": {"name": "Knights"}})

    assert (event["event_type"], event["properties"]) == ("group", {"name": "Knights", "groupId": "guild-9"})


def test_alias_keeps_the_previous_id():
    event = event_of({"type": "alias", "userId": "u-1", "previousId": "a-1"})

    assert (event["event_type"], event["player_id"], event["properties"]) == ("alias", "u-1", {"previousId": "a-1"})


@pytest.mark.parametrize("kind", ["page", "screen"])
def test_page_and_screen_keep_their_properties_name_and_category(kind):
    message = {"type": kind, "userId": "u-1", "name": "Shop", "category": "Store", "properties": {"tab": "gems"}}

    event = event_of(message)

    assert (event["event_type"], event["properties"]) == (kind, {"tab": "gems", "name": "Shop", "category": "Store"})


# The message itself


def test_a_single_call_endpoint_gives_the_type():
    assert event_of({"userId": "u-1", "traits": {}}, call_type="identify")["event_type"] == "identify"


@pytest.mark.parametrize("kind", [None, "Track", "screenview", 3])
def test_a_message_of_no_known_type_is_refused_naming_type(kind):
    assert set(errors_of({"type": kind, "userId": "u-1", "event": "X"})) == {"type"}


@pytest.mark.parametrize("message", [None, "track", 7, ["type", "track"]])
def test_a_message_that_is_not_an_object_is_refused(message):
    assert set(errors_of(message)) == {"non_field_errors"}


def test_a_message_over_32_kib_is_refused():
    errors = errors_of(track(properties={"blob": "x" * MAX_MESSAGE_BYTES}))

    assert "32 KB" in errors["non_field_errors"][0]


def test_every_bad_field_is_named_at_once():
    message = {"type": "track", "timestamp": "noon", "sentAt": "2026-03-01T11:00:00", "context": []}

    assert set(errors_of(message)) == {"userId", "timestamp", "sentAt", "context", "event"}


# Whatever a client sends


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
timestamps = st.datetimes(timezones=st.timezones()).map(lambda dt: dt.isoformat()) | st.text(max_size=40)
hostile_messages = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(CALL_TYPES) | json_values,
        "event": st.sampled_from(["Order Completed", "Application Installed", "Level Up", "Progression"]) | json_values,
        "messageId": st.uuids().map(str) | json_values,
        "userId": st.text(max_size=200) | json_values,
        "anonymousId": st.text(max_size=20) | json_values,
        "timestamp": timestamps | json_values,
        "originalTimestamp": timestamps,
        "sentAt": timestamps | json_values,
        "properties": st.dictionaries(
            st.sampled_from(["order_id", "revenue", "total", "currency", "products"]), json_values
        )
        | json_values,
        "traits": json_values,
        "context": st.fixed_dictionaries({}, optional={"os": json_values, "app": json_values}) | json_values,
        "groupId": json_values,
        "previousId": json_values,
        "name": json_values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=hostile_messages | json_values, sent_at=st.none() | timestamps | json_values)
def test_any_message_maps_to_an_event_the_serializer_judges_or_is_refused_never_raising(message, sent_at):
    mapped = map_message(message, received_at=RECEIVED, envelope=Envelope(sent_at=sent_at))

    assert (mapped.event is None) != (mapped.errors is None)
    if mapped.event is not None:
        # Refused by the native rules, naming fields, is as good an outcome as accepted.
        with contextlib.suppress(serializers.ValidationError):
            EventSerializer(context={"received_at": RECEIVED}).run_validation(mapped.event)


def test_fitting_a_context_of_thousands_of_keys_encodes_it_a_bounded_number_of_times(monkeypatch):
    context = {f"k{index:05}": "v" * 20 for index in range(8000)}  # about 250 KB as JSON
    encoded = []
    json_size = mapping.json_size
    monkeypatch.setattr(mapping, "json_size", lambda value: encoded.append(json_size(value) or 0) or encoded[-1])

    fitted = mapping._fit_context(context, notes := [])

    assert len(orjson.dumps(fitted)) <= MAX_CONTEXT_BYTES
    assert sum(encoded) <= 3 * len(orjson.dumps(context))  # quadratic before: each dropped key re-encoded the rest
    dropped = len(context) - (len(fitted) - 1)  # every key kept, but _truncated
    assert notes == [
        f"context was {len(orjson.dumps(context))} bytes as JSON, over 8192: dropped {dropped} of its keys"
    ]
    names = fitted[mapping.CONTEXT_TRUNCATED_KEY]
    assert names[-1] == f"+{dropped - (len(names) - 1)} more"  # as many names as fit, then how many more
