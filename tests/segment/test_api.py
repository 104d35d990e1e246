"""The Segment endpoints over HTTP: each endpoint and auth style, duplicates, invalid messages, bodies, limits."""

import base64
import gzip
import io
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from django.test import Client
from django.urls import resolve
from prometheus_client import REGISTRY

from events_app import conf
from events_app.api.keys import revoke_api_key
from events_app.event_types import custom
from events_app.models import Event, RejectedEvent
from events_app.segment import mapping, service
from events_app.segment.views import SegmentBatchView
from tests.support.events import now_rfc3339

pytestmark = pytest.mark.django_db

LEVEL_UP = {"type": "object", "properties": {"level": {"type": "integer"}}, "required": ["level"]}


@pytest.fixture
def key(game_key) -> str:
    return game_key[1]


def basic(key: str, *, colon: bool = True) -> str:
    return "Basic " + base64.b64encode(f"{key}{':' if colon else ''}".encode()).decode()


def post(client: Client, path: str, body: object, *, key: str | None = None, content_type="application/json", **extra):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    if key is not None:
        extra["HTTP_AUTHORIZATION"] = basic(key)
    return client.post(path, data, content_type=content_type, **extra)


def track(**changes) -> dict:
    message = {
        "type": "track",
        "event": "Application Installed",
        "userId": "player-1",
        "messageId": str(uuid.uuid4()),
        "timestamp": now_rfc3339(),
        "properties": {"version": "1.0"},
        "context": {"os": {"name": "Android"}, "app": {"version": "3.1.0"}},
    }
    message.update(changes)
    return message


def order_completed(**properties) -> dict:
    return track(
        event="Order Completed",
        properties={"order_id": f"ord-{uuid.uuid4()}", "revenue": 12.99, "currency": "EUR", **properties},
    )


# Endpoints


CALLS = [
    ("/v1/track", {"event": "Application Installed"}, "install"),
    ("/v1/identify", {"traits": {"name": "Ada"}}, "identify"),
    ("/v1/page", {"name": "Home"}, "page"),
    ("/v1/screen", {"name": "Main Menu"}, "screen"),
    ("/v1/group", {"groupId": "guild-1", "traits": {}}, "group"),
    ("/v1/alias", {"previousId": "anon-1"}, "alias"),
]
SHORT_PATHS = {
    "/v1/track": "/v1/t",
    "/v1/identify": "/v1/i",
    "/v1/page": "/v1/p",
    "/v1/screen": "/v1/s",
    "/v1/group": "/v1/g",
    "/v1/alias": "/v1/a",
}


@pytest.mark.parametrize(("path", "fields", "event_type"), CALLS + [(SHORT_PATHS[p], f, t) for p, f, t in CALLS])
def test_each_call_endpoint_stores_the_event_of_its_type(client, key, path, fields, event_type):
    response = post(client, path, {"userId": "player-1", "timestamp": now_rfc3339(), **fields}, key=key)

    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert Event.objects.get().event_type == event_type


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/b", "/v1/import"])
def test_each_batch_endpoint_stores_every_message(client, key, path):
    batch = [track(), {"type": "screen", "userId": "player-1", "name": "Shop"}, order_completed()]

    response = post(client, path, {"batch": batch, "sentAt": now_rfc3339()}, key=key)

    assert (response.status_code, response.json()) == (200, {"success": True})
    assert sorted(Event.objects.values_list("event_type", flat=True)) == ["install", "purchase", "screen"]


def test_put_is_taken_like_post_as_unitys_sample_client_sends_it(client, key):
    response = client.put(
        "/v1/b", orjson.dumps({"batch": [track()]}), content_type="text/plain", HTTP_AUTHORIZATION=basic(key)
    )

    assert response.status_code == 200
    assert Event.objects.count() == 1


# Auth


@pytest.mark.parametrize("colon", [True, False])
def test_http_basic_with_the_key_as_user_name_authenticates(client, key, colon):
    response = post(client, "/v1/track", track(), HTTP_AUTHORIZATION=basic(key, colon=colon))

    assert response.status_code == 200
    assert Event.objects.count() == 1


@pytest.mark.parametrize(("path", "body"), [("/v1/track", None), ("/v1/batch", "batch")])
def test_write_key_in_the_body_authenticates(client, key, path, body):
    message = track()
    data = {"batch": [message], "writeKey": key} if body == "batch" else {**message, "writeKey": key}

    response = post(client, path, data, content_type="text/plain")

    assert response.status_code == 200
    assert Event.objects.count() == 1


def test_bearer_key_authenticates_as_on_every_v1_endpoint(client, key):
    response = post(client, "/v1/track", track(), HTTP_AUTHORIZATION=f"Bearer {key}")

    assert response.status_code == 200


def test_a_bearer_oauth_token_gives_way_to_the_write_key_in_the_body(client, key):
    # analytics-python with OAuth sends its access token so, and the writeKey in the body.
    response = post(client, "/v1/batch", {"batch": [track()], "writeKey": key}, HTTP_AUTHORIZATION="Bearer eyJ.token")

    assert response.status_code == 200


@pytest.mark.parametrize(
    "auth",
    [
        {},
        {"HTTP_AUTHORIZATION": basic("pet_unknown")},
        {"HTTP_AUTHORIZATION": "Basic not-base64!"},
        {"HTTP_AUTHORIZATION": basic("")},
        {"writeKey": "pet_unknown"},
        {"writeKey": "pet with spaces é"},
    ],
)
def test_a_missing_unknown_or_malformed_key_is_refused_with_401(client, db, auth):
    body = {**track(), **({"writeKey": auth.pop("writeKey")} if "writeKey" in auth else {})}

    response = post(client, "/v1/track", body, **auth)

    assert response.status_code == 401
    assert response.json()["success"] is False
    assert response["WWW-Authenticate"].startswith("Basic")
    assert Event.objects.count() == 0


def test_a_revoked_key_is_refused_with_401(client, game_key):
    revoke_api_key(api_key=game_key[0])

    assert post(client, "/v1/track", track(), key=game_key[1]).status_code == 401


# Duplicates


@pytest.mark.parametrize("message_id", ["0b7e1c52-3a8f-4d2e-9c61-5f0a7d3e8b14", "ajs-next-1712345678901-4a7c"])
def test_a_message_id_sent_again_is_a_duplicate_stored_once(client, key, message_id):
    first = post(client, "/v1/track", track(messageId=message_id), key=key)
    again = post(client, "/v1/batch", {"batch": [track(messageId=message_id, timestamp=now_rfc3339())]}, key=key)

    assert (first.status_code, again.status_code) == (200, 200)
    assert Event.objects.count() == 1
    assert str(Event.objects.get().event_id) == mapping.event_id_for(message_id)


def test_the_same_message_id_twice_in_one_batch_is_stored_once(client, key):
    message = track(messageId="retry-1")

    post(client, "/v1/batch", {"batch": [message, {**message}]}, key=key)

    assert Event.objects.count() == 1


# Invalid messages among valid ones


def test_a_message_id_sent_again_for_another_user_is_listed_as_rejected_and_the_first_kept(client, key):
    first = post(client, "/v1/track", track(messageId="msg-conflict"), key=key)
    other = post(client, "/v1/track", track(messageId="msg-conflict", userId="someone-else"), key=key)

    assert (first.status_code, other.status_code) == (200, 200)  # Segment's clients are told `success` only
    assert list(Event.objects.values_list("player_id", flat=True)) == [track()["userId"]]
    rejection = RejectedEvent.objects.get()
    assert rejection.player_id == "someone-else"
    assert rejection.errors == {
        "event_id": ["Conflicts with an event already stored: same event_id, another player_id."]
    }


def test_a_batch_keeps_its_valid_messages_and_lists_the_invalid_ones_with_the_message(client, key):
    batch = [
        track(),
        track(userId=None),  # no id at all: refused by the mapping
        order_completed(currency=None),  # no currency: refused by the purchase rules
        track(event="Level Up", properties={"level": 2}),  # custom type, no schema, the game rejects those
        order_completed(),
    ]

    response = post(client, "/v1/batch", {"batch": batch, "writeKey": key})

    assert (response.status_code, response.json()) == (200, {"success": True})
    assert sorted(Event.objects.values_list("event_type", flat=True)) == ["install", "purchase"]
    rejections = {orjson.loads(row.body)["messageId"]: row for row in RejectedEvent.objects.all()}
    assert set(rejections) == {batch[1]["messageId"], batch[2]["messageId"], batch[3]["messageId"]}
    assert set(rejections[batch[1]["messageId"]].errors) == {"userId"}
    assert set(rejections[batch[2]["messageId"]].errors["properties"]) == {"currency"}
    assert set(rejections[batch[3]["messageId"]].errors) == {"event_type"}
    assert orjson.loads(rejections[batch[1]["messageId"]].body) == batch[1]  # the Segment message as sent
    assert all(row.game.slug == "space-raiders" for row in rejections.values())


def test_a_rejected_message_is_kept_without_its_write_key(client, key):
    # analytics.js puts the write key in every message.
    post(client, "/v1/t", {**track(userId=None), "writeKey": key}, content_type="text/plain")

    (rejection,) = RejectedEvent.objects.all()
    assert key not in rejection.body
    assert "writeKey" not in orjson.loads(rejection.body)


def received(event_type: str, status: str) -> float:
    return REGISTRY.get_sample_value("events_received_total", {"event_type": event_type, "status": status}) or 0.0


def test_messages_refused_before_ingest_are_counted_as_rejected_with_the_others(client, key):
    before = {
        label: received(*label)
        for label in [
            ("identify", "rejected"),
            ("purchase", "rejected"),
            ("invalid", "rejected"),
            ("install", "accepted"),
        ]
    }
    batch = [
        {"type": "identify", "traits": {}},  # no id
        order_completed(order_id=None),  # no order_id
        {"type": "unknown", "userId": "u-1"},
        track(),
    ]

    post(client, "/v1/batch", {"batch": batch}, key=key)

    assert {label: received(*label) - count for label, count in before.items()} == {
        ("identify", "rejected"): 1,
        ("purchase", "rejected"): 1,
        ("invalid", "rejected"): 1,
        ("install", "accepted"): 1,
    }


def test_an_invalid_single_call_is_answered_success_and_listed(client, key):
    # Segment answers 200 to a call it drops: a 4xx would only make the SDK drop the batch.
    response = post(client, "/v1/track", track(timestamp="2026-03-01T11:00:00"), key=key)

    assert response.status_code == 200
    assert set(RejectedEvent.objects.get().errors) == {"timestamp"}
    assert Event.objects.count() == 0


# What is stored


def test_an_order_completed_is_stored_as_a_purchase_with_its_revenue(client, key):
    message = order_completed(products=[{"product_id": "gem_pack_small", "price": 12.99}])

    post(client, "/v1/track", message, key=key)

    event = Event.objects.get()
    assert (event.event_type, event.transaction_id, event.revenue, event.currency, event.platform) == (
        "purchase",
        message["properties"]["order_id"],
        Decimal("12.99"),
        "EUR",
        "android",
    )
    assert event.payload["properties"]["product_id"] == "gem_pack_small"
    assert (event.payload["price"], event.payload["quantity"], event.payload["revenue"]) == ("12.99", 1, "12.99")
    assert event.payload["app_version"] == "3.1.0"


def test_an_order_id_sent_again_under_a_new_message_id_is_a_duplicate_receipt(client, key):
    message = order_completed()

    post(client, "/v1/track", message, key=key)
    post(client, "/v1/track", {**message, "messageId": str(uuid.uuid4())}, key=key)

    assert Event.objects.count() == 1


def test_a_level_up_follows_the_games_schema(client, key, game_key):
    custom.register_schema(game=game_key[0].game, event_type="level_up", schema=LEVEL_UP)
    good = track(event="Level Up", properties={"level": 3})
    bad = track(event="Level Up", properties={"level": "three"})

    post(client, "/v1/batch", {"batch": [good, bad]}, key=key)

    event = Event.objects.get()
    assert (event.event_type, event.payload["event_schema_version"]) == ("level_up", 1)
    assert set(RejectedEvent.objects.get().errors["properties"]) == {"level"}


def test_the_clock_of_the_device_is_corrected_by_sent_at(client, key):
    # The device's clock is two hours behind: its timestamp and its sentAt alike.
    behind = datetime.now(UTC) - timedelta(hours=2)
    message = track(timestamp=(behind - timedelta(seconds=30)).isoformat(), sentAt=behind.isoformat())

    post(client, "/v1/track", message, key=key)

    event = Event.objects.get()
    assert abs((event.derived_at - (event.received_at - timedelta(seconds=30))).total_seconds()) < 1


def test_the_batch_context_is_kept_under_each_messages_context(client, key):
    body = {"batch": [track(context={"app": {"version": "3"}})], "context": {"device": {"model": "Pixel 8"}}}

    post(client, "/v1/batch", body, key=key)

    assert Event.objects.get().payload["context"]["device"] == {"model": "Pixel 8"}


# Bodies


def test_a_gzip_body_is_accepted(client, key):
    body = gzip.compress(orjson.dumps({"batch": [track()], "writeKey": key}))

    response = post(client, "/v1/b", body, content_type="text/plain", HTTP_CONTENT_ENCODING="gzip")

    assert response.status_code == 200
    assert Event.objects.count() == 1


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", ""]
)
def test_json_is_taken_whatever_its_declared_type_as_the_sdks_send_it(client, key, content_type):
    response = post(client, "/v1/batch", {"batch": [track()]}, key=key, content_type=content_type)

    assert response.status_code == 200
    assert Event.objects.count() == 1


def test_rudderstacks_node_upload_gzip_json_labelled_form_urlencoded_is_stored(client, key):
    # @rudderstack/rudder-sdk-node 3.x with its defaults: a gzip Buffer, which axios labels a form.
    body = gzip.compress(orjson.dumps({"batch": [track(), track()], "sentAt": now_rfc3339()}))

    response = post(
        client,
        "/v1/batch",
        body,
        key=key,
        content_type="application/x-www-form-urlencoded",
        HTTP_CONTENT_ENCODING="gzip",
    )

    assert (response.status_code, response.json()) == (200, {"success": True})
    assert Event.objects.count() == 2


def test_a_form_that_is_not_json_is_refused_with_400_naming_the_parse_error(client, key):
    response = post(client, "/v1/batch", b"batch=1", key=key, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_a_chunked_upload_without_content_length_is_read(client, key):
    # analytics-kotlin streams its gzip uploads chunked; gunicorn hands them over de-chunked.
    body = gzip.compress(orjson.dumps({"batch": [track()], "writeKey": key}))

    response = client.post(
        "/v1/b",
        b"",
        content_type="text/plain",
        HTTP_CONTENT_ENCODING="gzip",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
        **{"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True},
    )

    assert response.status_code == 200
    assert Event.objects.count() == 1


def test_a_chunked_upload_over_1_mib_is_refused_with_413(client, key):
    body = b'{"batch": [], "pad": "' + b"x" * conf.MAX_BODY_BYTES + b'"}'

    response = client.post(
        "/v1/b",
        b"",
        content_type="text/plain",
        HTTP_TRANSFER_ENCODING="chunked",
        HTTP_AUTHORIZATION=basic(key),
        CONTENT_LENGTH="",
        **{"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True},
    )

    assert response.status_code == 413


@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=x", "application/xml"])
def test_another_content_type_is_refused_with_415(client, key, content_type):
    response = post(client, "/v1/batch", {"batch": [track()]}, key=key, content_type=content_type)

    assert response.status_code == 415
    assert response.json()["success"] is False


def test_an_unknown_content_encoding_is_refused_with_415(client, key):
    response = post(client, "/v1/batch", {"batch": [track()]}, key=key, HTTP_CONTENT_ENCODING="br")

    assert response.status_code == 415


@pytest.mark.parametrize("body", [b"{not json", b'{"batch": [1], "batch": [2]}'])
def test_a_malformed_body_is_refused_with_400_in_segments_error_body(client, key, body):
    response = post(client, "/v1/batch", body, key=key)

    assert response.status_code == 400
    assert set(response.json()) == {"success", "code", "message"}
    assert response.json()["code"] == "parse_error"


@pytest.mark.parametrize("body", [[], {"batch": "none"}, {"events": []}, {"batch": [], "context": "ios"}, None])
def test_a_batch_that_is_no_batch_is_refused_with_400(client, key, body):
    response = post(client, "/v1/batch", body, key=key)

    assert response.status_code == 400
    assert response.json()["success"] is False


@pytest.mark.parametrize("body", [[track()], "track", None])
def test_a_single_call_that_is_no_object_is_refused_with_400(client, key, body):
    assert post(client, "/v1/track", body, key=key).status_code == 400


def test_an_empty_batch_is_answered_success(client, key):
    assert post(client, "/v1/batch", {"batch": []}, key=key).json() == {"success": True}


# Limits


def big_message(size: int) -> dict:
    message = track(event="Application Installed")
    message["properties"]["padding"] = "x" * (size - len(orjson.dumps(message)) - len(',"padding":""'))
    assert len(orjson.dumps(message)) == size
    return message


def test_a_batch_as_full_as_an_sdk_file_gets_is_accepted(client, key):
    # The mobile SDKs close a file past 475,000 bytes: one more message of up to 32 KiB fits.
    # (The last one a little under 32 KiB: its event adds context.segment and must fit 32 KiB too.)
    batch = [big_message(31_666) for _ in range(15)] + [big_message(mapping.MAX_MESSAGE_BYTES - 512)]
    assert len(orjson.dumps({"batch": batch})) > 475_000 + 32_000

    response = post(client, "/v1/batch", {"batch": batch}, key=key)

    assert response.status_code == 200
    assert Event.objects.count() == 16


def test_a_batch_over_500_kib_is_refused_with_400_and_stores_nothing(client, key):
    batch = [big_message(30_000) for _ in range(18)]

    response = post(client, "/v1/batch", {"batch": batch}, key=key)

    assert response.status_code == 400
    assert response.json()["code"] == "batch_too_large"
    assert Event.objects.count() == 0


def test_a_single_call_over_32_kib_is_refused_with_400_and_listed_with_the_message(client, key):
    message = big_message(mapping.MAX_MESSAGE_BYTES + 1)

    response = post(client, "/v1/track", message, key=key)

    assert response.status_code == 400
    assert response.json()["code"] == "message_too_large"
    (rejection,) = RejectedEvent.objects.all()
    assert rejection.body.startswith('{"type":"track"') and "32 KB" in rejection.errors["non_field_errors"][0]


def test_a_message_over_32_kib_in_a_batch_is_rejected_alone(client, key):
    batch = [track(), big_message(mapping.MAX_MESSAGE_BYTES + 1)]

    response = post(client, "/v1/batch", {"batch": batch}, key=key)

    assert response.status_code == 200
    assert Event.objects.count() == 1
    assert "32 KB" in RejectedEvent.objects.get().errors["non_field_errors"][0]


def test_a_body_over_1_mib_is_refused_with_413(client, key):
    response = post(client, "/v1/batch", b'{"batch": [], "pad": "' + b"x" * conf.MAX_BODY_BYTES + b'"}', key=key)

    assert response.status_code == 413
    assert response.json()["success"] is False


def test_messages_past_segments_batch_limit_are_rejected_the_others_kept(client, key, monkeypatch):
    monkeypatch.setattr(mapping, "MAX_BATCH_MESSAGES", 2)  # Segment's 2,500, made small

    post(client, "/v1/batch", {"batch": [track(), track(), track()]}, key=key)

    assert Event.objects.count() == 2
    assert "at most 2" in RejectedEvent.objects.get().errors["non_field_errors"][0]


def test_a_long_batch_is_ingested_in_calls_of_a_native_batch_and_deduplicated_across_them(client, key, monkeypatch):
    monkeypatch.setattr(conf, "MAX_BATCH_EVENTS", 2)
    calls = []
    ingest = service.ingest_events
    monkeypatch.setattr(service, "ingest_events", lambda **kwargs: calls.append(kwargs) or ingest(**kwargs))
    first = track()

    post(client, "/v1/batch", {"batch": [first, track(), track(), track(), {**first}]}, key=key)

    assert [len(call["raw_events"]) for call in calls] == [2, 2, 1]
    assert Event.objects.count() == 4


def test_a_rate_limited_key_is_answered_429_with_the_headers_segments_clients_read(client, key, settings):
    settings.EVENTS_RATE_LIMIT = "1/m"

    post(client, "/v1/track", track(), key=key)
    response = post(client, "/v1/track", track(), key=key)

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert response["X-RateLimit-Reset"] == response["Retry-After"]


# Browsers (analytics.js)


def test_answers_may_be_read_by_any_web_page_and_preflights_are_answered(client, key):
    answer = post(client, "/v1/t", {**track(), "writeKey": key}, content_type="text/plain")
    preflight = client.options("/v1/b", HTTP_ORIGIN="https://game.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")

    assert answer["Access-Control-Allow-Origin"] == "*"
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight["Access-Control-Allow-Headers"]


def preflight(client: Client, requested: str):
    return client.options(
        "/v1/track",
        HTTP_ORIGIN="https://game.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS=requested,
    )


def allowed(response) -> set[str]:
    return {name.strip().lower() for name in response["Access-Control-Allow-Headers"].split(",")}


def test_a_preflight_allows_the_headers_rudderstacks_js_sdk_asks_for(client, db):
    response = preflight(client, "anonymousid,authorization,content-type,sentat")

    assert response.status_code == 204
    assert {"anonymousid", "authorization", "content-type", "sentat"} <= allowed(response)
    assert "Access-Control-Request-Headers" in response["Vary"]


def test_a_preflight_allows_a_header_a_newer_sdk_adds(client, db):
    assert "x-sdk-retry-attempt" in allowed(preflight(client, "Content-Type, X-SDK-Retry-Attempt"))


@pytest.mark.parametrize(
    "requested",
    [
        "content-type, x-evil: injected",  # not a header name
        "content-type, <script>",
        ", ".join(f"x-header-{n}" for n in range(100)),  # too many
        "x-" + "a" * 2000,  # too long
    ],
)
def test_a_preflight_never_echoes_implausible_or_unbounded_header_lists(client, db, requested):
    response = preflight(client, requested)

    assert response.status_code == 204
    assert allowed(response) == {
        "authorization",
        "content-type",
        "content-encoding",
        "x-retry-count",
        "anonymousid",
        "sentat",
    }


# The settings Segment's SDKs fetch


def test_settings_point_every_segment_sdk_at_this_host(client, key):
    response = client.get(f"/v1/projects/{key}/settings")

    assert response.status_code == 200
    settings = response.json()
    segment = settings["integrations"]["Segment.io"]
    assert list(settings["integrations"]) == ["Segment.io"]  # no device-mode destination to load
    assert segment["apiKey"] == key  # analytics-kotlin's decoder requires it
    assert segment["apiHost"] == "testserver/v1"  # host and path, no scheme: the SDKs prepend https://
    # Swift, Kotlin and C# post to https://{apiHost}/b; analytics.js to {protocol}://{apiHost}/t, /i, /p...
    path = segment["apiHost"].partition("/")[2]
    assert resolve(f"/{path}/b").func.view_class is SegmentBatchView
    assert resolve(f"/{path}/t").func.view_initkwargs["call_type"] == "track"
    assert resolve(f"/{path}/projects/{key}/settings").url_name == "segment-settings"
    assert segment["protocol"] == "http"
    # analytics-kotlin decodes these into non-null objects: null would fail the whole document.
    assert all(isinstance(settings[name], dict) for name in ("plan", "edgeFunction", "middlewareSettings", "metrics"))
    assert settings["metrics"]["sampleRate"] == 0  # the SDKs' own telemetry stays off
    assert response["Access-Control-Allow-Origin"] == "*"


def test_settings_say_https_when_the_request_came_over_https(client, key, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # behind a TLS-ending proxy

    response = client.get(f"/v1/projects/{key}/settings", HTTP_X_FORWARDED_PROTO="https")

    assert response.json()["integrations"]["Segment.io"]["protocol"] == "https"


def test_settings_of_an_unknown_or_revoked_key_are_refused_with_401(client, game_key):
    unknown = client.get("/v1/projects/pet_unknown/settings")
    revoke_api_key(api_key=game_key[0])
    revoked = client.get(f"/v1/projects/{game_key[1]}/settings")

    assert (unknown.status_code, revoked.status_code) == (401, 401)
    assert unknown.json()["success"] is False


def test_the_openapi_schema_documents_the_segment_endpoints_once(client):
    paths = client.get("/api/schema/?format=json").json()["paths"]

    assert {"/v1/batch", "/v1/track", "/v1/identify", "/v1/projects/{write_key}/settings"} <= set(paths)
    assert "/v1/b" not in paths and "/v1/t" not in paths


def test_a_batch_context_over_8_kib_refuses_the_batch_naming_context(client, key):
    body = {"batch": [track()], "context": {"traits": {"bio": "x" * 9000}}}

    response = post(client, "/v1/batch", body, key=key)

    assert response.status_code == 400
    assert '"context" of the batch is' in response.json()["message"]
    assert not Event.objects.exists()


def test_messages_cut_down_make_one_log_line_per_request_naming_no_key(client, key, caplog):
    oversized = {f"secret_key_name_{index}": "x" * 3000 for index in range(4)}
    batch = [track(context={**oversized, "os": {"name": "iOS"}}) for _ in range(3)]

    with caplog.at_level("WARNING", logger="events_app.segment.service"):
        post(client, "/v1/batch", {"batch": batch}, key=key)

    lines = [record.getMessage() for record in caplog.records if record.name == "events_app.segment.service"]
    assert len(lines) == 1 and "kept 3 messages cut down" in lines[0]
    assert "secret_key_name" not in lines[0]
    assert Event.objects.count() == 3
