"""Segment batch endpoint against the native one: gunicorn on loopback driven by wrk, both in one run.

Usage: .venv/bin/python bench/segment.py [--duration 10] [--rounds 2] [--workers 3] [--database-url URL]
                                         [--context full|minimal]

Posts batches of 100 to /v1/events/batch (bench/wrk_events.lua, classic profile: 3
installs to 1 purchase) and batches of 100 Segment messages to /v1/batch
(bench/wrk_segment.lua: 3 "Application Installed" to 1 "Order Completed", each with
the context analytics-kotlin sends, or with --context minimal only what the native
events carry: app version, OS, library), alternating for --rounds rounds against one
server, delivery left to the worker. Prints events/s of each and the ratio
Segment / native (the issue's target: at least 0.8). Needs wrk (Debian package `wrk`).
"""

import argparse
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import mean

import common  # noqa: F401 (puts the project on sys.path)
from ingest import ROOT, app_env, count_rows, prepare, run_wrk, serving

from devtools.processes import free_port

MANAGE = [sys.executable, str(ROOT / "manage.py")]
BATCH = 100


def run_segment_wrk(url: str, *, key: str, duration: int, connections: int, context: str) -> dict:
    credentials = base64.b64encode(f"{key}:".encode()).decode()
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{duration}s",
            "--latency",
            "-s",
            str(ROOT / "bench" / "wrk_segment.lua"),
            url,
        ],
        env={**os.environ, "API_KEY": credentials, "BATCH": str(BATCH), "CONTEXT": context},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "errors": int(errors.group(1)) if errors else 0,
        "p50": re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1),
        "p99": re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="native then Segment, this many times")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class (gthread: keep-alive)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    parser.add_argument("--context", choices=("full", "minimal"), default="full", help="context of each message")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="bench-segment-"))
    env = app_env(database_url=args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}", moto_port=free_port())
    key = prepare(ROOT, env, fresh=bool(args.database_url), custom_schema=False)
    native, segment = [], []
    with serving(ROOT, env, args) as url:
        for _ in range(args.rounds):
            native.append(run_wrk(url, key=key, batch=BATCH, duration=args.duration, connections=args.connections))
            segment.append(
                run_segment_wrk(
                    url, key=key, duration=args.duration, connections=args.connections, context=args.context
                )
            )
    acknowledged = sum((run["requests"] - run["errors"]) * BATCH for run in native + segment)
    stored = count_rows(env, MANAGE)
    shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"database: {env['DATABASE_URL'].split(':')[0]}, gunicorn: {args.workers} {args.worker_class} workers "
        f"x {args.threads} threads, wrk: 1 thread, {args.connections} connections, "
        f"{args.duration} s per run"
    )
    for label, runs in (("native /v1/events/batch", native), (f"Segment /v1/batch ({args.context})", segment)):
        figures = ", ".join(f"{run['rps'] * BATCH:.0f}" for run in runs)
        errors = sum(run["errors"] for run in runs)
        print(
            f"{label:<26}: {mean(run['rps'] for run in runs) * BATCH:8.0f} events/s (runs: {figures}; "
            f"p50 {runs[-1]['p50']}, p99 {runs[-1]['p99']}, non-2xx {errors})"
        )
    ratio = mean(run["rps"] for run in segment) / mean(run["rps"] for run in native)
    print(f"{'Segment / native':<26}: {ratio:.2f} (target >= 0.80)")
    print(f"{'stored rows':<26}: {stored} (acknowledged {acknowledged})")
    if stored < acknowledged:
        sys.exit("LOST EVENTS: fewer rows than acknowledged events")


if __name__ == "__main__":
    main()
