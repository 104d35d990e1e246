"""Unknown API keys: a repeat costs no query, an address failing too often gets 429, one log line a minute."""

import base64
import logging
import secrets
import time

import pytest
import time_machine
from django.test import Client
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from events_app.api import authentication
from events_app.api.keys import issue_api_key, revoke_api_key
from events_app.models import Event

pytestmark = pytest.mark.django_db

ATTACKER = "203.0.113.7"


def random_key() -> str:
    return f"pet_{secrets.token_urlsafe(32)}"


def post(make_install, key: str, *, address: str = ATTACKER):
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client.post("/v1/events", make_install(), format="json")


def auth_failures(status: int) -> float:
    return REGISTRY.get_sample_value("events_auth_failures_total", {"status": str(status)}) or 0.0


@pytest.fixture
def clock():
    """Stop the clock one second into an hour (and so into a minute's window)."""
    with time_machine.travel((int(time.time()) // 3600 + 1) * 3600 + 1, tick=False) as traveller:
        yield traveller


def test_a_repeated_unknown_key_costs_no_query_until_it_is_forgotten(
    make_install, django_assert_num_queries, clock, db
):
    key = random_key()

    with django_assert_num_queries(1):  # the lookup
        assert post(make_install, key).status_code == 401
    with django_assert_num_queries(0):
        for _ in range(20):
            assert post(make_install, key).status_code == 401
    clock.shift(authentication.UNKNOWN_KEY_CACHE_SECONDS + 1)
    with django_assert_num_queries(1):
        assert post(make_install, key).status_code == 401


def test_a_key_revoked_after_it_was_seen_unknown_elsewhere_is_still_refused(make_install, game_key, clock):
    api_key, plaintext = issue_api_key(game_slug="space-raiders", name="old build")
    assert post(make_install, plaintext).status_code == 202
    revoke_api_key(api_key=api_key)

    assert post(make_install, plaintext).status_code == 401
    assert post(make_install, plaintext).status_code == 401  # now answered from memory


def test_an_address_over_its_failure_budget_gets_429_with_retry_after_and_costs_no_query(
    make_install, settings, django_assert_num_queries, clock
):
    settings.EVENTS_AUTH_FAILURE_RATE = "3/m"
    before = auth_failures(429)

    statuses = [post(make_install, random_key()).status_code for _ in range(3)]
    refused = post(make_install, random_key())
    with django_assert_num_queries(1):  # the active keys' digests, read once while the address is blocked
        post(make_install, random_key())
    with django_assert_num_queries(0):
        again = post(make_install, random_key())
    elsewhere = post(make_install, random_key(), address="198.51.100.1")

    assert statuses == [401, 401, 401]
    assert (refused.status_code, again.status_code) == (429, 429)
    assert 0 < int(refused["Retry-After"]) <= 60
    assert "unknown API keys" in refused.json()["detail"]
    assert elsewhere.status_code == 401  # the budget is the address's
    assert auth_failures(429) - before == 3
    clock.shift(61)
    assert post(make_install, random_key()).status_code == 401  # a new window


def test_keys_that_work_keep_working_from_a_blocked_address(make_install, settings, game_key, clock):
    settings.EVENTS_AUTH_FAILURE_RATE = "3/m"
    valid = game_key[1]
    assert post(make_install, valid).status_code == 202  # seen valid by this process
    for _ in range(4):
        post(make_install, random_key())
    assert post(make_install, random_key()).status_code == 429

    clock.shift(authentication.KEY_CACHE_SECONDS + 1)  # its cached lookup has expired: looked up again

    assert post(make_install, valid).status_code == 202
    # A key this process never saw (another process's, a fresh worker's) works too: it is
    # among the active keys' digests, read once while the address is blocked.
    unseen = issue_api_key(game_slug="another-game")[1]
    clock.shift(authentication.ACTIVE_DIGESTS_SECONDS + 1)
    assert post(make_install, unseen).status_code == 202
    assert Event.objects.count() == 3


def test_random_keys_from_a_blocked_address_cost_no_query_each(
    make_install, settings, game_key, clock, django_assert_max_num_queries
):
    settings.EVENTS_AUTH_FAILURE_RATE = "3/m"
    for _ in range(5):
        post(make_install, random_key())
    assert post(make_install, random_key()).status_code == 429  # the active digests are read now, once

    with django_assert_max_num_queries(0):
        statuses = {post(make_install, random_key()).status_code for _ in range(20)}

    assert statuses == {429}


def test_a_repeated_unknown_key_is_not_counted_against_its_address(make_install, settings, clock):
    settings.EVENTS_AUTH_FAILURE_RATE = "3/m"
    revoked = random_key()  # an old client build's key, sent by many players behind one address

    statuses = {post(make_install, revoked).status_code for _ in range(50)}

    assert statuses == {401}


def test_the_limit_can_be_turned_off(make_install, settings, clock):
    settings.EVENTS_AUTH_FAILURE_RATE = "0"

    assert {post(make_install, random_key()).status_code for _ in range(30)} == {401}


def test_unknown_keys_are_logged_at_most_once_a_minute(make_install, caplog, clock):
    caplog.set_level(logging.INFO, logger="events_app.api.authentication")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if "unknown or revoked API key" in r.getMessage()]

    for _ in range(20):
        post(make_install, random_key(), address=f"198.51.100.{_}")
    assert len(lines()) == 1
    clock.shift(61)
    post(make_install, random_key())

    assert len(lines()) == 2
    assert "(19 more since the last such line)" in lines()[1]
    assert all("pet_" not in line for line in lines())


def test_the_segment_endpoints_share_the_budget_and_answer_429_in_segments_shape(settings, clock):
    settings.EVENTS_AUTH_FAILURE_RATE = "2/m"
    client = Client(REMOTE_ADDR=ATTACKER)

    def track(key: str):
        credentials = base64.b64encode(f"{key}:".encode()).decode()
        message = {"type": "track", "event": "Application Installed", "userId": "p-1"}
        return client.post(
            "/v1/track", message, content_type="application/json", HTTP_AUTHORIZATION=f"Basic {credentials}"
        )

    answers = [track(random_key()) for _ in range(3)]

    assert [a.status_code for a in answers] == [401, 401, 429]
    assert answers[-1].json()["success"] is False
    assert answers[-1].json()["code"] == "throttled"
    assert answers[-1]["Retry-After"] == answers[-1]["X-RateLimit-Reset"]


def test_many_blocked_addresses_make_one_warning_a_minute(make_install, settings, caplog, clock):
    settings.EVENTS_AUTH_FAILURE_RATE = "1/m"
    caplog.set_level(logging.WARNING, logger="events_app.api.authentication")
    addresses = [f"198.51.100.{n}" for n in range(10)]

    answers = [
        [post(make_install, random_key(), address=address).status_code for _ in range(2)] for address in addresses
    ]

    assert answers == [[401, 429]] * 10
    warnings = [r.getMessage() for r in caplog.records if "failed authentication" in r.getMessage()]
    assert len(warnings) == 1
