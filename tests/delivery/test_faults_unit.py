"""Failure handling in-process: permanent errors, the circuit breaker, rate limits, hostile bodies."""

import gzip
import json
from datetime import timedelta

import pytest
import time_machine
from botocore.stub import Stubber
from django.core.cache import cache
from django.utils import timezone

from events_app import conf
from events_app.delivery import breaker, engine
from events_app.delivery.destinations import firehose
from events_app.delivery.policies import forwarder_policy, worker_policy
from events_app.models import AttemptOutcome, DeliveryState, Event
from tests.support.delivery import read_s3_lines, store
from tests.support.forwarding import forwarder_fixture  # noqa: F401 (the forwarder fixture)


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def _stub_record_errors(client, codes: list[str | None]) -> Stubber:
    stubber = Stubber(client)
    responses = [{"ErrorCode": code, "ErrorMessage": "nope"} if code else {"RecordId": "r"} for code in codes]
    stubber.add_response(
        "put_record_batch", {"FailedPutCount": sum(1 for c in codes if c), "RequestResponses": responses}
    )
    return stubber


def test_a_record_firehose_refuses_for_good_goes_dead_at_once_while_throttled_ones_retry(
    game_key, settings, moto_firehose, make_install
):
    settings.EVENTS_RECORD_TARGET_BYTES = 1
    store(game_key, [make_install(player_id=f"p{i}") for i in range(3)])
    client = firehose.get_client(policy=worker_policy())

    with _stub_record_errors(client, [None, "InvalidArgumentException", "ServiceUnavailableException"]):
        counts = engine.deliver_due()

    assert (counts.delivered, counts.dead, counts.failed) == (1, 1, 1)
    dead = Event.objects.get(player_id="p1")
    assert dead.delivery_state == DeliveryState.DEAD
    assert dead.next_attempt_at is None
    assert "InvalidArgumentException" in dead.last_error
    assert Event.objects.get(player_id="p2").delivery_state == DeliveryState.FAILED


def test_a_call_refused_as_invalid_is_permanent_but_a_missing_stream_is_retried(
    game_key, settings, moto_firehose, make_install
):
    store(game_key, [make_install()])
    client = firehose.get_client(policy=worker_policy())
    stubber = Stubber(client)
    stubber.add_client_error("put_record_batch", service_error_code="ResourceNotFoundException", http_status_code=400)
    with stubber:
        assert engine.deliver_due().failed == 1
    with time_machine.travel(timezone.now() + timedelta(hours=2)), Stubber(client) as stubber:
        stubber.add_client_error("put_record_batch", service_error_code="InvalidArgumentException")
        assert engine.deliver_due().dead == 1

    assert list(Event.objects.get().attempts_log.values_list("outcome", flat=True)) == [
        AttemptOutcome.DEAD,
        AttemptOutcome.FAILED,
    ]


def test_the_breaker_opens_after_repeated_forwarder_failures_and_requests_then_only_store(
    api, forwarder, settings, make_install
):
    settings.EVENTS_BREAKER_FAILURES = 2
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens: every send fails
    spy_calls = []
    client = firehose.get_client(policy=forwarder_policy())
    client.meta.events.register("before-call.firehose.PutRecordBatch", lambda **kw: spy_calls.append(1))

    for _ in range(2):
        assert forwarder.post(api, "/v1/events", make_install()).status_code == 202
    assert not breaker.forwarding_allowed()
    assert forwarder.post(api, "/v1/events", make_install()).status_code == 202

    assert len(spy_calls) == 2  # the third request's event never went to the forwarder
    third = Event.objects.order_by("-id").first()
    assert third.delivery_state == DeliveryState.PENDING
    assert third.claim_token is None  # left for the worker at once, no lease to wait out
    assert Event.objects.filter(delivery_state=DeliveryState.FAILED).count() == 2


def test_events_queued_when_the_breaker_opens_are_released_to_the_worker_unsent(
    api, forwarder, moto_firehose, settings, make_install
):
    settings.EVENTS_BREAKER_FAILURES = 1
    forwarder.post(api, "/v1/events", make_install(), flush=False)
    breaker.record_failure()

    assert forwarder.queue.flush().calls == 0

    event = Event.objects.get()
    assert (event.delivery_state, event.claim_token, event.attempts) == (DeliveryState.PENDING, None, 0)
    assert engine.deliver_due().delivered == 1


def test_the_breaker_half_opens_after_its_cooldown_and_a_success_closes_it(
    api, forwarder, settings, moto_firehose, make_install
):
    settings.EVENTS_BREAKER_FAILURES = 1
    breaker.record_failure()
    assert not breaker.forwarding_allowed()

    with time_machine.travel(timezone.now() + timedelta(seconds=settings.EVENTS_BREAKER_COOLDOWN_SECONDS + 1)):
        assert breaker.forwarding_allowed()
        assert forwarder.post(api, "/v1/events", make_install()).status_code == 202

    assert breaker.forwarding_allowed()
    assert Event.objects.get().delivery_state == DeliveryState.DELIVERED
    assert len(read_s3_lines(moto_firehose)) == 1


def test_a_worker_delivery_closes_an_open_breaker(game_key, settings, moto_firehose, make_install):
    settings.EVENTS_BREAKER_FAILURES = 1
    breaker.record_failure()
    store(game_key, [make_install()])

    assert engine.deliver_due().delivered == 1

    assert breaker.forwarding_allowed()


def test_requests_over_the_rate_limit_get_429_with_retry_after(api, settings, make_install):
    settings.EVENTS_RATE_LIMIT = "3/m"

    statuses = [api.post("/v1/events", make_install(), format="json") for _ in range(4)]

    assert [r.status_code for r in statuses] == [202, 202, 202, 429]
    assert 0 < int(statuses[-1]["Retry-After"]) <= 60
    assert Event.objects.count() == 3


def test_the_rate_limit_is_per_key_and_resets_with_the_window(api, settings, make_install):
    from rest_framework.test import APIClient

    from events_app.api.keys import issue_api_key

    settings.EVENTS_RATE_LIMIT = "1/m"
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_api_key(game_slug='other-game')[1]}")

    assert api.post("/v1/events", make_install(), format="json").status_code == 202
    assert api.post("/v1/events", make_install(), format="json").status_code == 429
    assert other.post("/v1/events", make_install(), format="json").status_code == 202
    with time_machine.travel(timezone.now() + timedelta(minutes=1)):
        assert api.post("/v1/events", make_install(), format="json").status_code == 202


def post_raw(api, body: bytes, **headers):
    return api.generic("POST", "/v1/events", body, content_type="application/json", **headers)


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        pytest.param(b"x" * (conf.MAX_BODY_BYTES + 1), {}, 413, id="over-the-limit"),
        pytest.param(
            gzip.compress(b"[" + b"1," * 2_000_000 + b"1]"), {"HTTP_CONTENT_ENCODING": "gzip"}, 413, id="gzip-bomb"
        ),
        pytest.param(b"[" * 5000 + b"]" * 5000, {}, 400, id="deeply-nested"),
        pytest.param(b'{"event_type": "install", "player_id": NaN}', {}, 400, id="nan"),
        pytest.param(b'{"event_type": "install", "player_id": Infinity}', {}, 400, id="infinity"),
        pytest.param(b'{"a": 1e999}', {}, 400, id="overflowing-float"),
        pytest.param(b'{"event_type": "install", "player_id": "\xff\xfe"}', {}, 400, id="invalid-utf8"),
        pytest.param(b'{"event_type": "install", "player_id": "\\ud800"}', {}, 400, id="lone-surrogate"),
        pytest.param(b'{"event_type": "install", "event_type": "purchase"}', {}, 400, id="duplicate-keys"),
        pytest.param(b"\x1f\x8b\x08\x00garbage", {"HTTP_CONTENT_ENCODING": "gzip"}, 400, id="broken-gzip"),
        pytest.param(b"{}", {"HTTP_CONTENT_ENCODING": "br"}, 415, id="unknown-encoding"),
    ],
)
def test_hostile_bodies_get_a_clear_4xx_and_store_nothing(api, body, headers, status):
    response = post_raw(api, body, **headers)

    assert response.status_code == status
    assert "detail" in response.json()
    assert Event.objects.count() == 0


def test_duplicate_keys_inside_properties_are_refused(api, make_purchase):
    event = make_purchase()
    text = json.dumps(event).replace('"price": "4.99"', '"price": "4.99", "price": "0.01"')

    response = post_raw(api, text.encode())

    assert response.status_code == 400
    assert "duplicate key" in response.json()["detail"]
    assert Event.objects.count() == 0


@pytest.mark.parametrize("value", [10**30, -(10**30), 1e308, 123456789012345678901234567890.5])
def test_huge_numbers_are_rejected_by_field_not_by_crash(api, make_purchase, value):
    event = make_purchase()
    event["properties"]["price"] = value
    event["properties"]["quantity"] = value

    response = api.post("/v1/events", event, format="json")

    assert response.status_code == 400
    assert set(response.json()["properties"]) >= {"price", "quantity"}
    assert Event.objects.count() == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_wrong_content_types_get_415(api, content_type):
    response = api.generic("POST", "/v1/events", b"{}", content_type=content_type)

    assert response.status_code == 415
    assert Event.objects.count() == 0


def test_a_failure_after_the_commit_never_fails_the_request(api, forwarder, make_install, monkeypatch):
    def broken(items):
        raise RuntimeError("forwarder gone after the commit")

    monkeypatch.setattr(forwarder.queue, "submit", broken)
    response = forwarder.post(api, "/v1/events", make_install())

    assert response.status_code == 202
    event = Event.objects.get()
    assert event.delivery_state == DeliveryState.PENDING
    assert event.claimed_until is not None  # the worker takes it when the lease runs out


def test_an_unknown_per_record_error_is_retried_not_given_up(game_key, moto_firehose, make_install):
    store(game_key, [make_install()])
    client = firehose.get_client(policy=worker_policy())

    with _stub_record_errors(client, ["KMS.ThrottlingException"]):
        counts = engine.deliver_due()

    assert (counts.failed, counts.dead) == (1, 0)
    assert Event.objects.get().delivery_state == DeliveryState.FAILED


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "x:y", "b": {"c": "2026-01-01T00:00:00Z"}}',
        b'{"a\\u003a": 1, "b": "\\u003A"}',
        b'[{"k": 1}, {"k": 1}]',
        b'{"t": "\\\\u003a", "x": 1}',
        b'{"t": "\\\\\\u003a and \\u003A", "x": {"y": "\\\\\\\\u003a"}}',
    ],
)
def test_bodies_without_repeated_keys_pass_the_colon_count_even_with_escaped_colons(body):
    from events_app.api import parsers

    assert parsers.repeats_a_key(body, json.loads(body)) is False


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1, "a": 2}',
        b'{"a": {"b": 1, "b": "x:y"}}',
        b'{"a\\u003ab": 1, "a:b": 2}',
        b'[{"k":1,"k":1}]',
        b'{"t": "\\\\u003a", "t": 1}',
        b'{"t\\\\\\u003a": 1, "t\\\\:": 2}',
    ],
)
def test_every_repeated_key_is_caught_by_the_colon_count(body):
    from events_app.api import parsers

    assert parsers.repeats_a_key(body, json.loads(body))
