"""Ingest and delivery benchmark: gunicorn on loopback driven by wrk, then the worker into moto.

Usage: .venv/bin/python bench/ingest.py [--duration 15] [--workers 3] [--database-url URL]

Prints events/s for single-event requests and for batches of 100 (forwarding deferred
to the worker, fresh event ids in every request), then the worker's delivery rate into
moto's Firehose and the PutRecordBatch calls per 10,000 events (moto writes one S3
object per call). Needs wrk (Debian package `wrk`).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ensure_postgres_database, free_port, moto_server, put_record_batch_calls, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MANAGE = [sys.executable, str(ROOT / "manage.py")]


def run_wrk(url: str, *, key: str, batch: int, duration: int, connections: int) -> dict:
    env = {**os.environ, "API_KEY": key, "BATCH": str(batch)}
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s", "--latency",
         "-s", str(ROOT / "bench" / "wrk_events.lua"), url],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    requests_done = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": requests_done,
        "errors": int(errors.group(1)) if errors else 0,
        "p50": re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1),
        "p99": re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1),
    }


def count_rows(env: dict) -> int:
    code = "from events_app.models import Event; print(Event.objects.count())"
    out = subprocess.run([*MANAGE, "shell", "-c", code], env=env, check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class (gthread: keep-alive)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    moto_port, app_port = free_port(), free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tracking_project.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "benchmark-only",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}",
        "EVENTS_INLINE_DELIVERY": "0",
        "EVENTS_LOG_LEVEL": "WARNING",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    if args.database_url.startswith("postgres"):
        ensure_postgres_database(args.database_url)
    if args.database_url:
        subprocess.run([*MANAGE, "flush", "--noinput"], env=env, check=False, capture_output=True)
    subprocess.run([*MANAGE, "migrate", "-v", "0"], env=env, check=True)
    key = subprocess.run(
        [*MANAGE, "create_api_key", "bench-game"], env=env, check=True, capture_output=True, text=True
    ).stdout.split()[-1]

    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "tracking_project.wsgi", "-w", str(args.workers), "-b", f"127.0.0.1:{app_port}",
         "--backlog", "2048", "--threads", str(args.threads), "-k", args.worker_class, "--no-control-socket"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{app_port}"
    try:
        wait_until_up(f"{url}/healthz")
        single = run_wrk(url, key=key, batch=0, duration=args.duration, connections=args.connections)
        batched = run_wrk(url, key=key, batch=100, duration=args.duration, connections=args.connections)
    finally:
        server.terminate()
        server.wait()
    acknowledged = (single["requests"] - single["errors"]) + 100 * (batched["requests"] - batched["errors"])
    stored = count_rows(env)

    with moto_server(moto_port):
        subprocess.run([*MANAGE, "ensure_firehose"], env=env, check=True, capture_output=True)
        started = time.perf_counter()
        subprocess.run([*MANAGE, "deliver_events", "--once"], env=env, check=True, capture_output=True)
        delivery_seconds = time.perf_counter() - started
        calls = put_record_batch_calls(env["AWS_ENDPOINT_URL"])
    shutil.rmtree(workdir, ignore_errors=True)

    print(f"database: {env['DATABASE_URL'].split(':')[0]}, gunicorn: {args.workers} {args.worker_class} workers "
          f"x {args.threads} threads, "
          f"wrk: 1 thread, {args.connections} connections, {args.duration} s per run")  # fmt: skip
    print(f"single events : {single['rps']:8.0f} requests/s = events/s  (p50 {single['p50']}, "
          f"p99 {single['p99']}, non-2xx {single['errors']})")  # fmt: skip
    print(f"batches of 100: {batched['rps'] * 100:8.0f} events/s ({batched['rps']:.0f} requests/s, "
          f"p50 {batched['p50']}, p99 {batched['p99']}, non-2xx {batched['errors']})")  # fmt: skip
    print(f"stored rows   : {stored} (acknowledged {acknowledged})")
    print(f"delivery      : {stored / delivery_seconds:8.0f} events/s into moto (one worker, "
          f"{delivery_seconds:.1f} s incl. start-up), {calls} PutRecordBatch calls, "
          f"{calls * 10_000 / max(stored, 1):.1f} calls per 10,000 events")  # fmt: skip
    if stored < acknowledged:
        sys.exit("LOST EVENTS: fewer rows than acknowledged events")


if __name__ == "__main__":
    main()
