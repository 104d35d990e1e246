"""An event's whole life on PostgreSQL, this tree against a baseline commit in the same run: WAL, time, size.

Usage: .venv/bin/python bench/log_lifecycle.py [--events 1000000] [--baseline-ref f26df7c] [--ref HEAD]
                                               [--admin-url postgresql://postgres:postgres@127.0.0.1:5432/postgres]

For each design (--baseline-ref, then --ref, each in a temporary git worktree, so
what is measured is a commit, not whatever the folder holds), in a
fresh database: migrate; store --events events received two days ago through the
ingest service in requests of 100 (in-process, no HTTP: the database's work is the
subject); deliver them all (`deliver_events --once`, to a destination that takes
every record at once, bench/null_destination.py, so only the bookkeeping counts);
purge them (`purge_events --older-than 1`). Then --events / 4 more events stored
while a `deliver_events` process runs beside the writer. Prints, per phase, seconds,
events per second and WAL bytes per event (pg_current_wal_lsn before and after:
run it on an otherwise idle server), the database's size after the ingest, and the
totals side by side.
"""

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from common import ensure_postgres_database
from ingest import worktree

BENCH = Path(__file__).resolve().parent
DRIVER = BENCH / "log_lifecycle_driver.py"


def env_for(database_url: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "EVENTS_DESTINATION": "null_destination.NullDestination",
        "PYTHONPATH": str(BENCH),
        "EVENTS_LOG_LEVEL": "WARNING",
        "EVENTS_PURGE_PAUSE_FACTOR": "0",
        "EVENTS_RATE_LIMIT": "0",
    }


def manage(tree: Path, env: dict, *args: str) -> float:
    """Run `manage.py ARGS` in `tree`; return the seconds it took."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "manage.py", *args], cwd=tree, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def wal(admin_url: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return int(conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").fetchone()[0])


def size(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])


def store(tree: Path, env: dict, *, admin_url: str, events: int, days_ago: int) -> tuple[float, int, dict]:
    """Store `events` events received `days_ago` days ago through the driver; return seconds, WAL bytes, its figures."""
    start_wal = wal(admin_url)
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", DRIVER.read_text()],
        cwd=tree,
        env={**env, "BENCH_EVENTS": str(events), "BENCH_DAYS_AGO": str(days_ago)},
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started, wal(admin_url) - start_wal, json.loads(out.stdout.splitlines()[-1])


def measure(label: str, tree: Path, *, admin_url: str, events: int) -> dict:
    database_url = f"{admin_url.rsplit('/', 1)[0]}/bench_log_{label}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "bench_log_{label}"')
    ensure_postgres_database(database_url)
    env = env_for(database_url)
    manage(tree, env, "migrate", "--noinput")
    phases = {}

    phases["ingest"] = store(tree, env, admin_url=admin_url, events=events, days_ago=2)
    stored_size = size(database_url)

    start_wal = wal(admin_url)
    seconds = manage(tree, env, "deliver_events", "--once")
    phases["deliver"] = (seconds, wal(admin_url) - start_wal, {})

    start_wal = wal(admin_url)
    seconds = manage(tree, env, "purge_events", "--older-than", "1")
    phases["purge"] = (seconds, wal(admin_url) - start_wal, {})

    # Ingest while a delivery process runs beside it, as in production.
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "deliver_events"],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        phases["ingest_with_delivery"] = store(tree, env, admin_url=admin_url, events=events // 4, days_ago=0)
    finally:
        worker.terminate()
        worker.wait(30)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "bench_log_{label}" WITH (FORCE)')
    return {"phases": phases, "stored_bytes": stored_size}


def report(label: str, result: dict, *, events: int) -> None:
    print(f"\n{label}: {events:,} events; database after the ingest {result['stored_bytes'] / 2**20:,.0f} MiB")
    total_wal = 0
    for phase, (seconds, wal_bytes, extra) in result["phases"].items():
        count = events // 4 if phase == "ingest_with_delivery" else events
        rate = extra.get("events_per_second") or count / seconds
        if phase != "ingest_with_delivery":
            total_wal += wal_bytes
        print(f"  {phase:<22} {seconds:8.1f} s  {rate:10,.0f} events/s  WAL {wal_bytes / count:8,.0f} bytes/event")
    print(f"  {'life (ingest+deliver+purge)':<22} WAL {total_wal / events:,.0f} bytes/event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--baseline-ref", default="f26df7c")
    parser.add_argument("--ref", default="HEAD", help="the design to measure against the baseline")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()
    results = {}
    if args.baseline_ref:
        with worktree(args.baseline_ref) as tree:
            results[f"baseline {args.baseline_ref}"] = measure(
                "baseline", tree, admin_url=args.admin_url, events=args.events
            )
    with worktree(args.ref) as tree:
        results[args.ref] = measure("current", tree, admin_url=args.admin_url, events=args.events)
    for label, result in results.items():
        report(label, result, events=args.events)


if __name__ == "__main__":
    main()
