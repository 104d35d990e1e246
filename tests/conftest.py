"""Shared fixtures: a game with an API key, an authenticated API client, event builders, moto."""

import os
import uuid

import boto3
import pytest
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from hypothesis import settings as hypothesis_settings
from moto import mock_aws
from rest_framework.test import APIClient

from events_app import conf, sharedcache
from events_app.api import authentication
from events_app.api.keys import issue_api_key
from events_app.delivery import heartbeat
from events_app.delivery.destinations import firehose
from events_app.event_types import custom
from events_app.money import currency
from tests.support.deployments import (  # noqa: F401  (real-process fixtures)
    database_url,
    deployment,
    idle_moto_servers,
    migrated_templates,
    moto_process,
)
from tests.support.events import now_rfc3339
from tests.support.partitions import add_default_partitions

# Hypothesis: in CI the same examples every run, and no example database written
# (a red build must be reproducible, not luck); locally new examples each run, and
# HYPOTHESIS_PROFILE=hunt tries many more. Tests that give max_examples keep theirs.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True, max_examples=150)
hypothesis_settings.register_profile("dev", max_examples=150)
hypothesis_settings.register_profile("hunt", max_examples=1000)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(autouse=True)
def _no_inline_delivery_by_default(settings):
    """Keep API tests off the network; forwarding tests turn inline delivery back on."""
    settings.EVENTS_INLINE_DELIVERY = False
    settings.AWS_ENDPOINT_URL = None
    firehose._client.cache_clear()
    yield
    firehose._client.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Forget compiled schemas, looked-up rates, heartbeat write times and what the process knows of the shared cache.

    Schemas and rates are cached per process by game id or day, and ids come back
    after a test's rollback, so one test's schema or rate would otherwise answer in
    the next; so would its rate-limit counts (by key id, by address) and a simulated
    cache outage; a heartbeat written in one test would hold
    back the next test's first write.
    """

    def forget():
        custom.clear_cache()
        currency.clear_rate_cache()
        heartbeat.forget()
        sharedcache.forget_failures()
        authentication.forget_failures()
        if isinstance(caches["default"], LocMemCache):  # never a Redis others may share
            caches["default"].clear()

    forget()
    yield
    forget()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database as migrated, plus (PostgreSQL) a DEFAULT partition: tests store events of any date."""
    with django_db_blocker.unblock():
        add_default_partitions()


@pytest.fixture
def game_key(db):
    """Return (ApiKey, plaintext) for the game `space-raiders`."""
    return issue_api_key(game_slug="space-raiders", name="tests")


@pytest.fixture
def api(game_key):
    """Return an API client that sends the game's key."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {game_key[1]}")
    return client


@pytest.fixture
def make_install():
    """Return a builder of valid install events; keyword arguments override fields."""

    def build(**overrides):
        event = {
            "event_id": str(uuid.uuid4()),
            "event_type": "install",
            "player_id": "player-1",
            "occurred_at": now_rfc3339(),
            "platform": "ios",
            "properties": {"store": "app_store", "country": "FR"},
        }
        event.update(overrides)
        return event

    return build


@pytest.fixture
def make_purchase():
    """Return a builder of valid purchase events; keyword arguments override fields."""

    def build(**overrides):
        event = {
            "event_id": str(uuid.uuid4()),
            "event_type": "purchase",
            "player_id": "player-1",
            "occurred_at": now_rfc3339(),
            "platform": "android",
            "properties": {
                "transaction_id": f"txn-{uuid.uuid4()}",
                "product_id": "gem_pack_small",
                "price": "4.99",
                "currency": "EUR",
            },
        }
        event.update(overrides)
        return event

    return build


@pytest.fixture
def moto_firehose(settings):
    """Run moto in-process with the bucket and delivery stream created; yield an S3 client."""
    with mock_aws():
        firehose._client.cache_clear()
        firehose.ensure_stream(stream=conf.stream_name(), bucket=conf.s3_bucket(), prefix=conf.s3_prefix())
        yield boto3.client("s3", region_name=conf.aws_region())
    firehose._client.cache_clear()


DATABASE_FIXTURES = frozenset({"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback"})


def pytest_addoption(parser):
    parser.addoption(
        "--database-tests-only",
        action="store_true",
        help="run only the tests that use the test database (the second database's pass: the others ran already)",
    )


def pytest_collection_modifyitems(config, items):
    """Run the real-process tests first; with --database-tests-only, keep only the tests that use the database.

    The real-process tests take seconds each: started first, parallel workers share
    them out early instead of waiting on one at the end. A test without database
    access (pytest-django refuses it any) gives the same result on either database.
    """
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)  # stable: the order is kept otherwise
    if not config.getoption("--database-tests-only"):
        return
    kept, dropped = [], []
    for item in items:
        uses_database = item.get_closest_marker("django_db") or DATABASE_FIXTURES & set(item.fixturenames)
        (kept if uses_database else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
