"""Faults with real processes: Firehose down, the server or a relay worker killed, many workers at once.

Each test runs on SQLite and on PostgreSQL, against moto's server, the app under
gunicorn and `manage.py deliver_events` (the relay: the web processes never send),
and appends its figures (sent, acknowledged, delivered, delivered twice) to
tests/artifacts/fault_report.jsonl.
"""

import signal
import socket
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import requests

from devtools.processes import stop, wait_for
from tests.support.deployments import App

pytestmark = pytest.mark.e2e

REPORT = Path(__file__).parents[1] / "artifacts" / "fault_report.jsonl"


def report(name: str, database_url: str, **figures) -> None:
    REPORT.parent.mkdir(exist_ok=True)
    kind = database_url.split(":", 1)[0]
    with REPORT.open("a") as out:
        out.write(orjson.dumps({"test": name, "database": kind, **figures}).decode() + "\n")


def install(player: str) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "install",
        "player_id": player,
        "occurred_at": datetime.now(UTC).isoformat(),
        "properties": {"store": "app_store", "country": "FR"},
    }


class Sender:
    """Posts batches with one session, remembering which event ids were acknowledged."""

    def __init__(self, url: str, key: str):
        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"
        self.acknowledged: set[str] = set()
        self.sent = 0
        self.slowest = 0.0

    def post_batch(self, events: list[dict]) -> requests.Response:
        self.sent += len(events)
        started = time.monotonic()
        response = self.session.post(f"{self.url}/v1/events/batch", json={"events": events}, timeout=30)
        self.slowest = max(self.slowest, time.monotonic() - started)
        if response.status_code == 200:
            self.acknowledged.update(r["event_id"] for r in response.json()["results"] if r["status"] == "accepted")
        return response


def passed_by_relay(deployment: App) -> str:
    """Return the SQL condition "event e is at or before its shard's cursor c" of the deployment's database."""
    if deployment.env["DATABASE_URL"].startswith("sqlite"):
        return "e.id <= c.last_event"
    # PostgreSQL relays in (inserting transaction, id) order: txid is the inserting transaction (xid8).
    return "(e.txid, e.id) <= (c.last_txid::text::xid8, c.last_event)"


def delivered_count(deployment: App) -> int:
    """Return how many stored events are delivered, derived as the admin does.

    Delivered: passed by its shard's relay with no delivery issue, or its issue delivered.
    """
    return deployment.query(
        "SELECT COUNT(*) FROM events_app_event e "
        "LEFT JOIN events_app_deliveryissue i ON i.event_id = e.id "
        "LEFT JOIN events_app_deliverycursor c ON c.shard = e.shard "
        f"WHERE i.state = 'delivered' OR (i.id IS NULL AND c.shard IS NOT NULL AND {passed_by_relay(deployment)})"
    )[0][0]


def count(deployment: App, table: str, where: str = "1 = 1") -> int:
    return deployment.query(f"SELECT COUNT(*) FROM events_app_{table} WHERE {where}")[0][0]


def run_worker_until_delivered(deployment: App, expected: int, timeout: float = 120, **env) -> None:
    worker = deployment.worker(**env)
    try:
        wait_for(lambda: delivered_count(deployment) >= expected, timeout=timeout, what=f"{expected} delivered")
    finally:
        stop(worker)


class Blackhole:
    """A port that takes connections and never answers: Firehose hanging, the worst kind of outage."""

    def __init__(self, port: int):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(4096)

    def close(self) -> None:
        self.sock.close()


def test_firehose_down_requests_still_answer_fast_and_everything_arrives_once_after_it_recovers(
    deployment, moto_process
):
    moto_process.stop()
    blackhole = Blackhole(moto_process.port)
    key = deployment.create_key()
    url = deployment.serve()
    quick_retries = {"EVENTS_RETRY_BASE_SECONDS": "0.05", "EVENTS_RETRY_MAX_SECONDS": "0.2"}
    worker = deployment.worker(**quick_retries)  # relays as events arrive: its first call hangs in the blackhole
    sender = Sender(url, key)
    try:
        statuses = Counter(sender.post_batch([install(f"p{i}-{j}") for j in range(10)]).status_code for i in range(200))
    finally:
        blackhole.close()  # the hanging call is reset; Firehose now refuses connections

    assert statuses == {200: 200}
    assert sender.slowest < 1.0, f"slowest request took {sender.slowest:.2f} s"
    assert len(sender.acknowledged) == 2000
    assert deployment.stored_event_ids() == sender.acknowledged
    # The relay saw the outage: it records the failed call and keeps the batch, writing nothing per event.
    wait_for(lambda: count(deployment, "deliverycall", "outcome = 'failed'"), timeout=90, what="a failed call")
    assert count(deployment, "deliveryissue") == 0
    assert delivered_count(deployment) == 0

    moto_process.start()  # the emulator comes back empty: recreate the bucket and stream
    deployment.manage("ensure_firehose")
    try:
        wait_for(lambda: delivered_count(deployment) >= 2000, timeout=120, what="2000 delivered")
    finally:
        stop(worker)

    in_s3 = Counter(deployment.s3_event_ids())
    assert set(in_s3) == sender.acknowledged
    twice = sum(1 for n in in_s3.values() if n > 1)
    assert twice == 0
    assert count(deployment, "deliveryissue") == 0
    report(
        "firehose_down",
        deployment.env["DATABASE_URL"],
        sent=sender.sent,
        acknowledged=len(sender.acknowledged),
        delivered=len(in_s3),
        delivered_twice=twice,
        slowest_request_s=round(sender.slowest, 3),
        failed_calls=count(deployment, "deliverycall", "outcome = 'failed'"),
    )


def test_server_killed_mid_load_loses_no_acknowledged_event_and_sends_each_once(deployment):
    key = deployment.create_key()
    url = deployment.serve()
    worker = deployment.worker()  # relays throughout, the kill included
    sender = Sender(url, key)
    stop_sending = threading.Event()

    def load():
        i = 0
        while not stop_sending.is_set():
            try:
                sender.post_batch([install(f"p{i}-{j}") for j in range(20)])
            except requests.RequestException:
                return
            i += 1

    thread = threading.Thread(target=load)
    thread.start()
    wait_for(lambda: len(sender.acknowledged) >= 1000, timeout=60, what="1,000 acknowledged events")
    stop(deployment.server, signal.SIGKILL)
    stop_sending.set()
    thread.join(timeout=60)

    stored = deployment.stored_event_ids()
    assert sender.acknowledged <= stored
    try:
        wait_for(lambda: delivered_count(deployment) >= len(stored), timeout=120, what=f"{len(stored)} delivered")
    finally:
        stop(worker)
    in_s3 = Counter(deployment.s3_event_ids())
    assert sender.acknowledged <= set(in_s3)
    assert set(in_s3) == stored
    # The relay reads only committed rows, once each: a request cut short leaves nothing to repeat.
    assert max(in_s3.values()) == 1
    report(
        "server_sigkill",
        deployment.env["DATABASE_URL"],
        sent=sender.sent,
        acknowledged=len(sender.acknowledged),
        stored=len(stored),
        delivered=len(in_s3),
        delivered_twice=sum(1 for n in in_s3.values() if n > 1),
    )


def test_server_killed_with_no_worker_running_loses_nothing_and_the_worker_sends_each_once_later(deployment):
    key = deployment.create_key()
    url = deployment.serve()
    sender = Sender(url, key)
    for i in range(10):
        assert sender.post_batch([install(f"p{i}-{j}") for j in range(20)]).status_code == 200
    for i in range(20):
        response = sender.session.post(f"{url}/v1/events", json=install(f"single-{i}"), timeout=30)
        assert response.status_code == 202
        sender.acknowledged.add(response.json()["event_id"])
    stop(deployment.server, signal.SIGKILL)

    assert len(sender.acknowledged) == 220
    assert deployment.s3_lines() == [], "the web process sent events: only the relay may"
    assert deployment.stored_event_ids() == sender.acknowledged
    assert delivered_count(deployment) == 0
    run_worker_until_delivered(deployment, 220, timeout=90)

    in_s3 = Counter(deployment.s3_event_ids())
    assert set(in_s3) == sender.acknowledged
    assert max(in_s3.values()) == 1
    report(
        "server_sigkill_no_worker",
        deployment.env["DATABASE_URL"],
        sent=220,
        acknowledged=220,
        delivered=len(in_s3),
        delivered_twice=0,
    )


def seed(deployment: App, count: int, **env) -> set[str]:
    """Store `count` events through the API (no worker running: nothing is sent); return their ids."""
    url = deployment.serve(workers=2, **env)
    sender = Sender(url, deployment.create_key())
    for start_at in range(0, count, 500):
        assert sender.post_batch([install(f"p{start_at + j}") for j in range(min(500, count - start_at))]).ok
    stop(deployment.server)
    assert len(sender.acknowledged) == count
    return sender.acknowledged


def test_worker_killed_mid_batch_then_another_delivers_everything(deployment):
    ids = seed(deployment, 5000)
    first = deployment.worker(EVENTS_DELIVERY_BATCH_SIZE="250")
    wait_for(lambda: delivered_count(deployment) > 0, timeout=60, what="the first delivered batch")
    stop(first, signal.SIGKILL)
    delivered_before_kill = delivered_count(deployment)
    assert delivered_before_kill < 5000, "the worker finished before it could be killed"

    # The dead worker's shard is free at once: PostgreSQL ended its session and its lock,
    # the kernel freed its lock file on SQLite. The next worker takes it over.
    run_worker_until_delivered(deployment, 5000, EVENTS_DELIVERY_BATCH_SIZE="250")

    in_s3 = Counter(deployment.s3_event_ids())
    assert set(in_s3) == ids
    twice = sum(1 for n in in_s3.values() if n > 1)
    # At least once: only a batch sent but not yet recorded when the worker died can repeat.
    assert twice <= 250
    report(
        "worker_sigkill",
        deployment.env["DATABASE_URL"],
        sent=5000,
        acknowledged=5000,
        delivered=len(in_s3),
        delivered_twice=twice,
        delivered_before_kill=delivered_before_kill,
    )


def test_four_workers_draining_20000_events_deliver_each_exactly_once(deployment):
    shards = {"EVENTS_RELAY_SHARDS": "4"}
    ids = seed(deployment, 20_000, **shards)

    # Each shard has one relay at a time; a worker holding none stands by until all are drained.
    workers = [deployment.worker("--once", EVENTS_DELIVERY_BATCH_SIZE="500", **shards) for _ in range(4)]
    wait_for(lambda: all(w.poll() is not None for w in workers), timeout=300, what="four workers done")

    assert [w.returncode for w in workers] == [0, 0, 0, 0]
    in_s3 = Counter(deployment.s3_event_ids())
    assert set(in_s3) == ids
    assert max(in_s3.values()) == 1
    assert delivered_count(deployment) == 20_000
    assert count(deployment, "deliverycursor") == 4
    report(
        "four_workers",
        deployment.env["DATABASE_URL"],
        sent=20_000,
        acknowledged=20_000,
        delivered=len(in_s3),
        delivered_twice=0,
    )
