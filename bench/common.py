"""Helpers shared by the benchmark scripts: PostgreSQL databases, S3 readers, wrk; processes are devtools.processes.

Importing this module puts the project folder on sys.path (a script run as
`python bench/NAME.py` has only bench/ there), so the scripts reach devtools and the app.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.processes import ROOT


def ensure_postgres_database(url: str) -> None:
    """Create the database `url` names if it does not exist yet."""
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def put_record_batch_calls(endpoint_url: str, bucket: str = "game-events") -> int:
    """Return how many PutRecordBatch calls reached moto (it writes one S3 object per call)."""
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return sum(len(page.get("Contents", [])) for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket))


def s3_client(endpoint_url: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def s3_objects(endpoint_url: str, bucket: str) -> list[dict]:
    """Return the listing (Key, LastModified, ...) of every object in `bucket`."""
    s3 = s3_client(endpoint_url)
    return [
        item
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", [])
    ]


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
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{round(duration)}s",
            "--timeout",
            "30s",
            "-s",
            str(ROOT / "bench" / "wrk_e2e.lua"),
            url,
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
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
