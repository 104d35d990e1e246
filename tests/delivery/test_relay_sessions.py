"""The relay against concurrent PostgreSQL sessions: late commits are never skipped, a shard has one holder.

Each test commits for real (transaction=True): the point is what other sessions see.
On SQLite every writer is queued, ids are commit order and shards are leased (see
test_relay.py), so these are PostgreSQL's.
"""

import threading
import time

import psycopg
import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from events_app import logstore
from events_app.api.keys import issue_api_key
from events_app.delivery import engine
from events_app.ingest.service import ingest_events
from events_app.models import Event
from tests.delivery.test_relay import FakeDestination
from tests.support.deployments import POSTGRES_ADMIN_URL

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite queues writers, so ids are commit order: nothing commits late behind a higher id")


def install(player: str) -> dict:
    return {
        "event_type": "install",
        "player_id": player,
        "occurred_at": timezone.now().isoformat(),
        "properties": {"store": "app_store"},
    }


def ingest(key, player: str) -> None:
    ingest_events(api_key=key, raw_events=[install(player)], received_at=timezone.now())


class Session(threading.Thread):
    """Another server process: its own database session, running the steps it is given, in order."""

    def __init__(self):
        super().__init__(daemon=True)
        self.steps: list = []
        self.results: list = []
        self.wake = threading.Event()
        self.done = threading.Event()
        self.start()

    def run(self):
        while True:
            self.wake.wait()
            self.wake.clear()
            step = self.steps.pop(0)
            if step is None:
                connections.close_all()
                self.done.set()
                return
            self.results.append(step())
            self.done.set()

    def do(self, step, *, wait: bool = True):
        self.done.clear()
        self.steps.append(step)
        self.wake.set()
        if wait:
            assert self.done.wait(20), "the other session did not finish its step"
            return self.results[-1]
        return None

    def close(self):
        self.do(None)


def test_an_event_committed_late_behind_a_higher_id_is_held_back_then_sent_never_skipped():
    key = issue_api_key(game_slug="late", name="t")[0]
    destination = FakeDestination()
    other = Session()
    inside = threading.Event()
    release = threading.Event()

    def slow_request():
        with transaction.atomic():
            ingest(key, "slow")  # takes the lower id and holds its transaction open
            inside.set()
            release.wait(20)

    other.do(slow_request, wait=False)
    assert inside.wait(20)
    ingest(key, "fast")  # a higher id, committed first
    ids = dict(Event.objects.values_list("player_id", "pk"))
    assert set(ids) == {"fast"}  # the slow one is not visible yet

    held = engine.deliver_due(destination=destination)
    assert held.delivered == 0  # "fast" waits: something older may still commit before it
    release.set()
    assert other.done.wait(20)
    delivered = engine.deliver_due(destination=destination)

    assert delivered.delivered == 2
    assert [line["player_id"] for line in destination.lines] == ["slow", "fast"]  # commit order
    assert engine.deliver_due(destination=destination).claimed == 0
    other.close()


def test_a_long_transaction_in_another_database_does_not_hold_the_relay_back():
    key = issue_api_key(game_slug="neighbour", name="t")[0]
    destination = FakeDestination()
    with psycopg.connect(POSTGRES_ADMIN_URL) as neighbour:
        neighbour.execute("SELECT pg_current_xact_id()")  # an open transaction with an id, elsewhere on the server
        ingest(key, "p1")
        assert engine.deliver_due(destination=destination).delivered == 1


def test_a_shard_has_one_holder_and_a_standby_takes_it_when_the_holder_dies():
    key = issue_api_key(game_slug="standby", name="t")[0]
    destination = FakeDestination()
    for player in ("a", "b", "c"):
        ingest(key, player)
    engine.release_shards()  # this session may hold the shard since an earlier test (a lock outlives transactions)
    holder = Session()
    assert holder.do(lambda: logstore.hold_shard(shard=0, holder=engine.PROCESS_HOLDER)) is True

    standby = engine.deliver_due(destination=destination)
    assert (standby.delivered, standby.standby) == (0, {0})

    holder.close()  # the process dies: its session ends, the server frees its lock
    holder.join(20)
    _wait_until_no_relay_lock()
    assert engine.deliver_due(destination=destination).delivered == 3
    engine.release_shards()


def _wait_until_no_relay_lock() -> None:
    """Wait (bounded) for the server to end a closed session: its backend frees its locks as it exits."""
    deadline = time.monotonic() + 10
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid <> pg_backend_pid() "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            if cursor.fetchone()[0] == 0:
                return
            threading.Event().wait(0.05)
    raise AssertionError("the closed session's lock is still held")
