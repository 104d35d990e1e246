"""`make run`'s stack with real processes: the emulator killed and back with its stream, Ctrl-C a clean stop."""

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest
import requests

from devtools.processes import alive, descendants, stop, wait_for, wait_until_up
from tests.support.clones import make_clone, run

pytestmark = pytest.mark.e2e


@pytest.fixture
def clone(tmp_path):
    """Yield a fresh copy of the project and its environment (tests/support/clones.py)."""
    folder = tmp_path / "clone"
    return folder, make_clone(folder)


def send(url: str, key: str, count: int) -> list[str]:
    """Send `count` installs one by one; return their ids once each was acknowledged."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    for event_id in ids:
        answer = requests.post(
            f"{url}/v1/events",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
            json={
                "event_id": event_id,
                "event_type": "install",
                "player_id": "p1",
                "occurred_at": "2026-01-15T10:00:00Z",
            },
        )
        assert answer.status_code == 202, answer.text
    return ids


def s3_event_ids(endpoint: str) -> set[str]:
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    ids = set()
    with contextlib.suppress(s3.exceptions.NoSuchBucket):
        for item in s3.list_objects_v2(Bucket="game-events").get("Contents", []):
            body = s3.get_object(Bucket="game-events", Key=item["Key"])["Body"].read().decode()
            ids.update(re.findall(r'"event_id":"([0-9a-f-]{36})"', body))
    return ids


def delivered(folder: Path, ids: list[str]) -> int:
    """Return how many of `ids` are delivered: passed by their shard's relay with no issue, or their issue delivered."""
    with contextlib.closing(sqlite3.connect(folder / "db.sqlite3", timeout=30)) as db:
        rows = db.execute(
            "SELECT e.event_id FROM events_app_event e "
            "LEFT JOIN events_app_deliveryissue i ON i.event_id = e.id "
            "LEFT JOIN events_app_deliverycursor c ON c.shard = e.shard "
            "WHERE i.state = 'delivered' OR (i.id IS NULL AND c.shard IS NOT NULL AND e.id <= c.last_event)"
        ).fetchall()
    stored = {uuid.UUID(str(event_id)).hex for (event_id,) in rows}
    return sum(uuid.UUID(event_id).hex in stored for event_id in ids)


def test_the_stack_outlives_its_emulator_and_ctrl_c_stops_everything_with_status_0(clone):
    folder, env = clone
    # What `make run` runs after installing: .env, dev_setup, then the processes.
    run(folder, env, "-m", "devtools.localenv")
    run(folder, env, "manage.py", "dev_setup")
    log_path = folder / "stack.log"
    with log_path.open("wb") as log:
        stack = subprocess.Popen(
            [sys.executable, "-m", "devtools.stack"],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    seen: set[int] = set()
    try:

        def log_text() -> str:
            seen.update(descendants(stack.pid))
            return log_path.read_text()

        url, endpoint = f"http://127.0.0.1:{env['DEV_WEB_PORT']}", env["AWS_ENDPOINT_URL"]
        wait_until_up(f"{url}/healthz", stack, timeout=120)
        first_moto = int(
            wait_for(
                lambda: re.search(r"moto server up at \S+ \(pid (\d+)", log_text()),
                timeout=120,
                what="the emulator's stream",
            ).group(1)
        )
        key = (folder / ".local" / "dev_api_key").read_text().strip()
        before = send(url, key, 5)
        assert requests.get(f"{url}/static/admin/css/base.css", timeout=30).status_code == 200

        os.kill(first_moto, signal.SIGKILL)
        during = send(url, key, 5)  # acknowledged while the emulator is down or coming back

        wait_for(
            lambda: "moto server exited with status -9 (killed by SIGKILL); restarting" in log_text(),
            timeout=60,
            what="the supervisor noticing",
        )
        wait_for(
            lambda: "stream recreated: bucket game-events, delivery stream game-events" in log_text(),
            timeout=120,
            what="the emulator back with its stream",
        )
        wait_for(lambda: set(during) <= s3_event_ids(endpoint), timeout=120, what="the later events in S3")
        wait_for(lambda: delivered(folder, before + during) == 10, timeout=120, what="all 10 events delivered")
        assert stack.poll() is None  # nothing else went down with the emulator

        log_text()
        os.kill(stack.pid, signal.SIGINT)  # Ctrl-C
        assert stack.wait(timeout=90) == 0
    finally:
        stop(stack, signal.SIGKILL)

    output = log_path.read_text()
    assert "==> stopped emulator, worker, web; nothing left running" in output
    for name in ("emulator", "worker", "web"):
        assert f"{name} stopped (rc=0)" in output
    assert [pid for pid in seen if alive(pid)] == []
    assert first_moto in seen and len(seen) > 8  # the processes were watched: honcho's, the servers', moto's
    # The access log keeps the API's lines and drops the static files'.
    assert "POST /v1/events" in output
    assert "/static/" not in output
