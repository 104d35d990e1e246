"""End to end with real processes: moto's server as AWS, the app under gunicorn, the SDK over HTTP."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import orjson
import pytest
import requests

from sdk.client import TrackerClient

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Poll `url` until it answers; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def moto_server():
    """Start moto's server on a free loopback port; yield its URL."""
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        yield url
    finally:
        stop(process)


@pytest.fixture
def app_env(tmp_path, moto_server):
    """Return the environment of an app process on its own SQLite file, pointed at the emulator."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tracking_project.settings",
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'e2e.sqlite3'}",
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "FIREHOSE_STREAM_NAME": "e2e-events",
        "FIREHOSE_S3_BUCKET": "e2e-bucket",
        "EVENTS_INLINE_DELIVERY": "1",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, cwd=ROOT)
    subprocess.run([*manage, "ensure_firehose"], env=env, check=True, cwd=ROOT, capture_output=True)
    return env


def create_key(env: dict, game: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "create_api_key", game],
        env=env, check=True, cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture
def app_server(app_env):
    """Serve the app with gunicorn on a free loopback port; yield its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "tracking_project.wsgi", "-w", "2", "-b", f"127.0.0.1:{port}"],
        env=app_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/healthz", process)
        yield url
    finally:
        stop(process)


def s3_lines(env: dict) -> list[dict]:
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    lines = []
    for item in s3.list_objects_v2(Bucket=env["FIREHOSE_S3_BUCKET"]).get("Contents", []):
        body = s3.get_object(Bucket=env["FIREHOSE_S3_BUCKET"], Key=item["Key"])["Body"].read()
        assert body.endswith(b"\n")
        lines.extend(orjson.loads(line) for line in body.splitlines())
    return lines


def test_sdk_events_travel_through_the_http_server_and_firehose_into_s3(app_env, app_server):
    key = create_key(app_env, "e2e-game")
    with TrackerClient(base_url=app_server, api_key=key) as client:
        install = client.install("player-42", store="google_play", country="DE", platform="android")
        purchase = client.purchase(
            "player-42", transaction_id="GPA.1234", product_id="coins_500", price="1200", currency="JPY", quantity=3
        )
        batch = client.send_batch([install, purchase])
        again = client.send(purchase)

    assert (batch.accepted, batch.duplicates, batch.rejected) == (2, 0, 0)
    assert again.status == "duplicate"
    lines = {line["event_id"]: line for line in s3_lines(app_env)}
    assert set(lines) == {install["event_id"], purchase["event_id"]}
    assert lines[install["event_id"]]["properties"]["country"] == "DE"
    assert lines[purchase["event_id"]]["revenue"] == "3600"
    assert lines[purchase["event_id"]]["currency"] == "JPY"
    assert all(line["game"] == "e2e-game" for line in lines.values())


def test_worker_process_delivers_events_the_server_only_stored(app_env, moto_server):
    env = {**app_env, "EVENTS_INLINE_DELIVERY": "0"}
    key = create_key(env, "e2e-worker")
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "tracking_project.wsgi", "-w", "1", "-b", f"127.0.0.1:{port}"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", server)
        with TrackerClient(base_url=f"http://127.0.0.1:{port}", api_key=key) as client:
            events = [client.install(f"player-{i}") for i in range(50)]
            assert client.send_batch(events).accepted == 50
    finally:
        stop(server)
    assert s3_lines(env) == []

    worker = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "deliver_events", "--once"],
        env=env, cwd=ROOT, check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert "delivered=50" in worker.stdout
    assert sorted(line["event_id"] for line in s3_lines(env)) == sorted(e["event_id"] for e in events)
