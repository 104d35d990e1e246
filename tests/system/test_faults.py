"""Faults with real processes: Firehose down, the server or a worker killed, many workers at once.

Each test runs on SQLite and on PostgreSQL, against moto's server and the app under
gunicorn, and appends its figures (sent, acknowledged, delivered, delivered twice) to
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


def delivered_count(deployment: App) -> int:
    return deployment.query("SELECT COUNT(*) FROM events_app_event WHERE delivery_state = 'delivered'")[0][0]


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


def test_firehose_down_requests_still_answer_fast_and_the_worker_delivers_everything_later(deployment, moto_process):
    moto_process.stop()
    blackhole = Blackhole(moto_process.port)
    key = deployment.create_key()
    url = deployment.serve(EVENTS_INLINE_DELIVERY="1", EVENTS_RETRY_BASE_SECONDS="0.05", EVENTS_RETRY_MAX_SECONDS="0.2")
    sender = Sender(url, key)
    try:
        statuses = Counter(sender.post_batch([install(f"p{i}-{j}") for j in range(10)]).status_code for i in range(200))
    finally:
        blackhole.close()

    assert statuses == {200: 200}
    assert sender.slowest < 1.0, f"slowest request took {sender.slowest:.2f} s"
    assert len(sender.acknowledged) == 2000
    assert deployment.stored_event_ids() == sender.acknowledged

    moto_process.start()  # the emulator comes back empty: recreate the bucket and stream
    deployment.manage("ensure_firehose")
    run_worker_until_delivered(deployment, 2000, EVENTS_RETRY_BASE_SECONDS="0.05", EVENTS_RETRY_MAX_SECONDS="0.2")

    in_s3 = Counter(deployment.s3_event_ids())
    assert set(in_s3) == sender.acknowledged
    twice = sum(1 for count in in_s3.values() if count > 1)
    report(
        "firehose_down",
        deployment.env["DATABASE_URL"],
        sent=sender.sent,
        acknowledged=len(sender.acknowledged),
        delivered=len(in_s3),
        delivered_twice=twice,
        slowest_request_s=round(sender.slowest, 3),
    )


def test_server_killed_mid_load_loses_no_acknowledged_event(deployment):
    key = deployment.create_key()
    url = deployment.serve(EVENTS_INLINE_DELIVERY="1", EVENTS_CLAIM_LEASE_SECONDS="1")
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
    run_worker_until_delivered(deployment, len(stored))
    in_s3 = Counter(deployment.s3_event_ids())
    assert sender.acknowledged <= set(in_s3)
    assert set(in_s3) == stored
    report(
        "server_sigkill",
        deployment.env["DATABASE_URL"],
        sent=sender.sent,
        acknowledged=len(sender.acknowledged),
        stored=len(stored),
        delivered=len(in_s3),
        delivered_twice=sum(1 for count in in_s3.values() if count > 1),
    )


def test_server_killed_while_its_forwarder_holds_unsent_events_loses_none_and_sends_each_once(deployment):
    key = deployment.create_key()
    # A long batching delay (capped at a quarter of the lease) keeps the events in the
    # forwarder's memory when the process dies; the worker must send them after the lease.
    url = deployment.serve(
        EVENTS_INLINE_DELIVERY="1", EVENTS_FORWARD_MAX_DELAY_MS="600000", EVENTS_CLAIM_LEASE_SECONDS="16"
    )
    sender = Sender(url, key)
    for i in range(10):
        assert sender.post_batch([install(f"p{i}-{j}") for j in range(20)]).status_code == 200
    for i in range(20):
        response = sender.session.post(f"{url}/v1/events", json=install(f"single-{i}"), timeout=30)
        assert response.status_code == 202
        sender.acknowledged.add(response.json()["event_id"])
    held = deployment.query(
        "SELECT COUNT(*) FROM events_app_event WHERE delivery_state = 'pending' AND claim_token IS NOT NULL"
    )[0][0]
    stop(deployment.server, signal.SIGKILL)

    assert len(sender.acknowledged) == held == 220
    assert deployment.s3_lines() == [], "the forwarder sent before the kill: nothing was held"
    assert deployment.stored_event_ids() == sender.acknowledged
    run_worker_until_delivered(deployment, 220, timeout=90)

    in_s3 = Counter(deployment.s3_event_ids())
    assert set(in_s3) == sender.acknowledged
    assert max(in_s3.values()) == 1
    report(
        "server_sigkill_forwarder_holding",
        deployment.env["DATABASE_URL"],
        sent=220,
        acknowledged=220,
        held_at_kill=held,
        delivered=len(in_s3),
        delivered_twice=0,
    )


def seed(deployment: App, count: int) -> set[str]:
    """Store `count` events through the API with forwarding deferred; return their ids."""
    url = deployment.serve(EVENTS_INLINE_DELIVERY="0", workers=2)
    sender = Sender(url, deployment.create_key())
    for start_at in range(0, count, 500):
        assert sender.post_batch([install(f"p{start_at + j}") for j in range(min(500, count - start_at))]).ok
    stop(deployment.server)
    assert len(sender.acknowledged) == count
    return sender.acknowledged


def test_worker_killed_mid_batch_then_another_delivers_everything(deployment):
    ids = seed(deployment, 5000)
    first = deployment.worker(EVENTS_DELIVERY_BATCH_SIZE="250", EVENTS_CLAIM_LEASE_SECONDS="2")
    wait_for(lambda: delivered_count(deployment) > 0, timeout=60, what="the first delivered batch")
    stop(first, signal.SIGKILL)
    delivered_before_kill = delivered_count(deployment)
    assert delivered_before_kill < 5000, "the worker finished before it could be killed"

    run_worker_until_delivered(deployment, 5000, EVENTS_DELIVERY_BATCH_SIZE="250", EVENTS_CLAIM_LEASE_SECONDS="2")

    in_s3 = Counter(deployment.s3_event_ids())
    assert set(in_s3) == ids
    twice = sum(1 for count in in_s3.values() if count > 1)
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
    ids = seed(deployment, 20_000)

    workers = [deployment.worker("--once", EVENTS_DELIVERY_BATCH_SIZE="500") for _ in range(4)]
    wait_for(lambda: all(w.poll() is not None for w in workers), timeout=300, what="four workers done")

    assert [w.returncode for w in workers] == [0, 0, 0, 0]
    in_s3 = Counter(deployment.s3_event_ids())
    assert set(in_s3) == ids
    assert max(in_s3.values()) == 1
    assert delivered_count(deployment) == 20_000
    report(
        "four_workers",
        deployment.env["DATABASE_URL"],
        sent=20_000,
        acknowledged=20_000,
        delivered=len(in_s3),
        delivered_twice=0,
    )
