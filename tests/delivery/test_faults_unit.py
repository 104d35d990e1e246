"""Failure handling in-process: permanent errors, outages, rate limits, hostile bodies."""

import gzip
import json
from datetime import timedelta

import pytest
import time_machine
from botocore.stub import Stubber
from django.core.cache import cache
from django.utils import timezone

from events_app import conf
from events_app.delivery import engine
from events_app.delivery.destinations import firehose
from events_app.delivery.policies import worker_policy
from events_app.models import CallOutcome, DeliveryCall, DeliveryIssue, DeliveryState, Event, IssueState
from tests.support.delivery import delivery_state, issue_of, store, stub_put_record_batch


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def test_a_record_firehose_refuses_for_good_goes_dead_at_once_while_throttled_ones_retry(
    game_key, settings, moto_firehose, make_install
):
    settings.EVENTS_RECORD_TARGET_BYTES = 1
    store(game_key, [make_install(player_id=f"p{i}") for i in range(3)])
    client = firehose.get_client(policy=worker_policy())
    throttled = "ServiceUnavailableException"

    # Only the throttled record is sent again in place; the refused one never is.
    with stub_put_record_batch(client, [None, "InvalidArgumentException", throttled], [throttled], [throttled]) as stub:
        counts = engine.deliver_due()
        stub.assert_no_pending_responses()

    assert (counts.delivered, counts.dead, counts.failed) == (1, 1, 1)
    dead = issue_of(player_id="p1")
    assert (dead.state, dead.attempts, dead.next_attempt_at) == (IssueState.DEAD, 1, None)
    assert "InvalidArgumentException" in dead.last_error
    assert delivery_state(dead.event) == DeliveryState.DEAD
    assert issue_of(player_id="p2").state == IssueState.FAILED
    assert delivery_state(Event.objects.get(player_id="p0")) == DeliveryState.DELIVERED
    with time_machine.travel(timezone.now() + timedelta(days=1)):
        assert engine.deliver_due().delivered == 1  # the throttled one; the dead one stays dead
    assert issue_of(player_id="p1").state == IssueState.DEAD


def test_a_call_refused_as_invalid_is_permanent_but_a_missing_stream_is_retried(
    game_key, settings, moto_firehose, make_install
):
    store(game_key, [make_install()])
    client = firehose.get_client(policy=worker_policy())
    stubber = Stubber(client)
    stubber.add_client_error("put_record_batch", service_error_code="ResourceNotFoundException", http_status_code=400)
    with stubber:
        counts = engine.deliver_due()
    assert (counts.deferred, counts.failed, counts.dead) == (1, 0, 0)  # an outage: the batch waits
    assert DeliveryIssue.objects.count() == 0
    with Stubber(client) as stubber:
        stubber.add_client_error("put_record_batch", service_error_code="InvalidArgumentException")
        assert engine.deliver_due().dead == 1

    issue = DeliveryIssue.objects.get()
    assert (issue.state, issue.attempts) == (IssueState.DEAD, 1)
    assert "InvalidArgumentException" in issue.last_error
    assert list(DeliveryCall.objects.order_by("id").values_list("sender", "outcome")) == [
        ("relay", CallOutcome.FAILED),
        ("relay", CallOutcome.FAILED),
    ]
    assert engine.deliver_due().claimed == 0  # the cursor moved past it


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


def test_an_unknown_per_record_error_is_retried_not_given_up(game_key, settings, moto_firehose, make_install):
    settings.EVENTS_RECORD_TARGET_BYTES = 1
    store(game_key, [make_install(player_id="fine"), make_install(player_id="kms")])
    client = firehose.get_client(policy=worker_policy())
    kms = "KMS.ThrottlingException"

    with stub_put_record_batch(client, [None, kms], [kms], [kms]):
        counts = engine.deliver_due()

    assert (counts.failed, counts.dead) == (1, 0)
    issue = issue_of(player_id="kms")
    assert issue.state == IssueState.FAILED
    assert issue.next_attempt_at > timezone.now()
    assert delivery_state(issue.event) == DeliveryState.FAILED


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
