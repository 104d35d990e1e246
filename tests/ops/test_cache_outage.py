"""A lost Redis is no ingest outage: the cache fails open, counted, logged once a minute; ingest costs <= 2 round trips.

Both run Django's real RedisCache backend, as REDIS_URL configures it: the outage
against a closed port, the round trips against the Redis on 127.0.0.1:6379 (skipped
when there is none), counted where redis-py writes each command (or pipeline) to
its socket.
"""

import base64
import logging
import socket
import time
import uuid

import pytest
import time_machine
from prometheus_client import REGISTRY
from redis.connection import AbstractConnection
from rest_framework.test import APIClient

from events_app import sharedcache
from events_app.api import authentication
from events_app.delivery import engine
from events_app.models import Event

pytestmark = pytest.mark.django_db

REDIS_BACKEND = "django.core.cache.backends.redis.RedisCache"
UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1: every call fails at once
LIVE = "redis://127.0.0.1:6379/0"


def use_redis(settings, url: str) -> None:
    # A prefix of its own: the Redis on this machine may be shared with other runs.
    settings.CACHES = {"default": {"BACKEND": REDIS_BACKEND, "LOCATION": url, "KEY_PREFIX": f"t-{uuid.uuid4().hex}"}}


def cache_errors(operation: str) -> float:
    return REGISTRY.get_sample_value("events_cache_errors_total", {"operation": operation}) or 0.0


def segment_basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def segment_track() -> dict:
    return {"type": "track", "event": "Application Installed", "userId": "p-1", "messageId": str(uuid.uuid4())}


@pytest.fixture
def redis_down(settings):
    use_redis(settings, UNREACHABLE)
    settings.EVENTS_RATE_LIMIT = "1/m"  # would refuse the second request, if it could count


def test_with_redis_unreachable_every_endpoint_still_answers_and_stores(
    api, redis_down, moto_firehose, make_install, game_key, client, caplog
):
    caplog.set_level(logging.WARNING, logger="events_app.sharedcache")
    before = cache_errors("count")

    single = [api.post("/v1/events", make_install(), format="json") for _ in range(3)]
    batch = api.post("/v1/events/batch", {"events": [make_install(), make_install()]}, format="json")
    segment = client.post(
        "/v1/track",
        segment_track(),
        content_type="application/json",
        HTTP_AUTHORIZATION=segment_basic(game_key[1]),
    )
    unknown = APIClient().post("/v1/events", make_install(), format="json", HTTP_AUTHORIZATION="Bearer pet_unknown")
    scrape = client.get("/metrics")

    assert [r.status_code for r in single] == [202, 202, 202]  # no rate limit to enforce: let through
    assert batch.json()["accepted"] == 2
    assert segment.status_code == 200
    assert unknown.status_code == 401
    assert scrape.status_code == 200
    assert Event.objects.count() == 6
    assert cache_errors("count") > before
    assert len([r for r in caplog.records if "shared cache unavailable" in r.getMessage()]) == 1
    assert engine.deliver_due().delivered == 6  # delivery never needs the cache


def test_cache_failures_are_counted_by_operation_and_logged_at_most_once_a_minute(
    api, redis_down, make_install, caplog
):
    caplog.set_level(logging.WARNING, logger="events_app.sharedcache")
    before = cache_errors("count")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if "shared cache unavailable" in r.getMessage()]

    with time_machine.travel(time.time() + 3600, tick=False) as clock:
        for _ in range(10):  # each past the pause after a failure, so each tries Redis again
            clock.shift(2 * sharedcache.RETRY_SECONDS)
            assert api.post("/v1/events", make_install(), format="json").status_code == 202
        assert len(lines()) == 1
        clock.shift(60)
        assert api.post("/v1/events", make_install(), format="json").status_code == 202

    assert cache_errors("count") - before == 11
    assert len(lines()) == 2
    assert "(9 more failures since the last line)" in lines()[1]


def test_after_a_failure_the_cache_is_left_alone_for_a_moment(api, redis_down, make_install):
    before = cache_errors("count")

    with time_machine.travel(time.time() + 3600, tick=False):
        statuses = [api.post("/v1/events", make_install(), format="json").status_code for _ in range(20)]

    assert statuses == [202] * 20
    assert cache_errors("count") - before == 1  # one timeout per process per second at most, not one per request


# --- Round trips with a live Redis ----------------------------------------------------


def redis_is_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def round_trips(settings, monkeypatch):
    """Use the live Redis; yield a list that grows by one per command or pipeline sent to it."""
    if not redis_is_up():
        pytest.skip("no Redis on 127.0.0.1:6379")
    use_redis(settings, LIVE)
    sent = []
    real_send = AbstractConnection.send_packed_command

    def send_packed_command(self, command, check_health=True):
        sent.append(1)
        return real_send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", send_packed_command)
    return sent


def test_ingest_costs_at_most_two_redis_round_trips_per_request(api, round_trips, make_install, game_key, client):
    segment_auth = segment_basic(game_key[1])
    requests = [
        lambda: api.post("/v1/events", make_install(), format="json"),
        lambda: api.post("/v1/events/batch", {"events": [make_install() for _ in range(10)]}, format="json"),
        lambda: client.post(
            "/v1/batch",
            {"batch": [segment_track() for _ in range(10)]},
            content_type="application/json",
            HTTP_AUTHORIZATION=segment_auth,
        ),
    ]
    per_request = []

    with time_machine.travel(time.time() + 3600, tick=False) as clock:
        requests[0]()  # connects (and says hello to Redis) first
        for send in requests * 3:
            clock.shift(authentication.KEY_CACHE_SECONDS)  # the worst case: nothing remembered from the last request
            round_trips.clear()
            assert send().status_code in (200, 202)
            per_request.append(len(round_trips))

    assert Event.objects.count() == 1 + 3 * 21
    assert max(per_request) <= 2, per_request
    assert min(per_request) >= 1  # the rate limit is counted in Redis, on every request
