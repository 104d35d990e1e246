"""Helpers shared by the benchmark scripts: ports, readiness, moto's server, PostgreSQL databases."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import requests

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, timeout: float = 60.0) -> None:
    """Poll `url` until it answers, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
    raise TimeoutError(url)


def ensure_postgres_database(url: str) -> None:
    """Create the database `url` names if it does not exist yet."""
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


@contextlib.contextmanager
def moto_server(port: int) -> Iterator[str]:
    """Run moto's AWS emulator on a loopback port; yield its URL."""
    process = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url)
        yield url
    finally:
        process.terminate()
        process.wait()


def put_record_batch_calls(endpoint_url: str, bucket: str = "game-events") -> int:
    """Return how many PutRecordBatch calls reached moto (it writes one S3 object per call)."""
    s3 = boto3.client(
        "s3", endpoint_url=endpoint_url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    return sum(len(page.get("Contents", [])) for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket))


ROOT = Path(__file__).resolve().parent.parent


def start(args: list[str], *, env: dict, log: Path | None = None) -> subprocess.Popen:
    """Start a process in the project folder (so gunicorn reads gunicorn.conf.py), output to `log` or nowhere."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM `process` and wait (SIGKILL after 20 s)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def precise_moto_server(port: int) -> Iterator[str]:
    """Run moto with S3 LastModified to the microsecond (bench/moto_precise.py); yield its URL."""
    process = start([sys.executable, str(ROOT / "bench" / "moto_precise.py"), "-H", "127.0.0.1", "-p", str(port)],
                    env=dict(os.environ))  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url)
        yield url
    finally:
        stop(process)


def s3_client(endpoint_url: str):
    return boto3.client(
        "s3", endpoint_url=endpoint_url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


def s3_objects(endpoint_url: str, bucket: str) -> list[dict]:
    """Return the listing (Key, LastModified, ...) of every object in `bucket`."""
    s3 = s3_client(endpoint_url)
    return [item for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", [])]  # fmt: skip


def s3_line_count(endpoint_url: str, bucket: str, objects: list[dict]) -> int:
    """Return how many NDJSON lines `objects` hold (read 8 at a time)."""
    from concurrent.futures import ThreadPoolExecutor

    s3 = s3_client(endpoint_url)

    def lines(item: dict) -> int:
        return s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().count(b"\n")

    with ThreadPoolExecutor(8) as pool:
        return sum(pool.map(lines, objects))


def run_wrk(url: str, *, key: str, batch: int, duration: float, connections: int) -> dict:
    """Run wrk with bench/wrk_e2e.lua; return requests, non-2xx, p50/p95/p99 (ms), and when it started."""
    env = {**os.environ, "API_KEY": key, "BATCH": str(batch)}
    started = time.time()
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{round(duration)}s", "--timeout", "30s",
         "-s", str(ROOT / "bench" / "wrk_e2e.lua"), url],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    line = next(line for line in out.splitlines() if line.startswith("E2E "))
    figures = dict(part.split("=") for part in line.split()[1:])
    return {
        "started": started,
        "seconds": duration,
        "requests": int(figures["requests"]),
        "errors": int(figures["non2xx"]),
        "p50": float(figures["p50_ms"]),
        "p95": float(figures["p95_ms"]),
        "p99": float(figures["p99_ms"]),
    }
