"""Ingest and delivery benchmark: gunicorn on loopback driven by wrk, then the worker into moto.

Usage: .venv/bin/python bench/ingest.py [--duration 15] [--workers 3] [--database-url URL]
                                        [--profiles classic,mixed,custom] [--baseline-ref GIT_REF]

Prints events/s for single-event requests and for batches of 100 (delivery left
to the worker, fresh event ids in every request) for each traffic profile, all in one
run against one server: `classic` (3 installs to 1 purchase), `mixed` (the
simulator's session mix: session_start, progression, resource, ad_impression,
purchase, session_end) and `custom` (a `level_up` custom event of 10 properties,
checked against the registered bench/level_up.schema.json). Then the worker's
delivery rate into moto's Firehose and the PutRecordBatch calls per 10,000 events
(moto writes one S3 object per call). With --baseline-ref, a server of that commit
(a temporary git worktree, the same venv, its own database) is measured with the
classic profile in the same run, before and after the current code's runs, so a
drift of this noisy machine shows as a gap between its two figures. Needs wrk
(Debian package `wrk`).
"""

import argparse
import contextlib
import multiprocessing
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from common import ensure_postgres_database, put_record_batch_calls

from devtools.processes import free_port, moto_server, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MANAGE = [sys.executable, str(ROOT / "manage.py")]


PROFILES = ("classic", "mixed", "custom")


def run_wrk(url: str, *, key: str, batch: int, duration: int, connections: int, profile: str = "classic") -> dict:
    env = {**os.environ, "API_KEY": key, "BATCH": str(batch), "PROFILE": profile}
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
            str(ROOT / "bench" / "wrk_events.lua"),
            url,
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    requests_done = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": requests_done,
        "errors": int(errors.group(1)) if errors else 0,
        "p50": re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1),
        "p99": re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1),
    }


def count_rows(env: dict, manage: list[str]) -> int:
    code = "from events_app.models import Event; print(Event.objects.count())"
    out = subprocess.run([*manage, "shell", "-c", code], env=env, check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1])


def app_env(*, database_url: str, moto_port: int) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tracking_project.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECURE_SSL_REDIRECT": "0",  # plain HTTP on loopback, as behind a TLS-ending proxy
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),  # production mode refuses a weak key
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url,
        "EVENTS_LOG_LEVEL": "WARNING",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def prepare(root: Path, env: dict, *, fresh: bool, custom_schema: bool) -> str:
    """Migrate the database of the code in `root`, create the game and its key; return the key."""
    manage = [sys.executable, str(root / "manage.py")]
    if env["DATABASE_URL"].startswith("postgres"):
        ensure_postgres_database(env["DATABASE_URL"])
    if fresh:
        subprocess.run([*manage, "flush", "--noinput"], env=env, check=False, capture_output=True)
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, cwd=root)
    key = subprocess.run(
        [*manage, "create_api_key", "bench-game"], env=env, check=True, capture_output=True, text=True, cwd=root
    ).stdout.split()[-1]
    if custom_schema:
        schema = ROOT / "bench" / "level_up.schema.json"
        subprocess.run(
            [*manage, "event_schema", "bench-game", "level_up", str(schema)],
            env=env,
            check=True,
            capture_output=True,
            cwd=root,
        )
    return key


def server_flags(root: Path, args: argparse.Namespace) -> list[str]:
    """Return gunicorn's flags: the tree's own gunicorn.conf.py, with what the command line overrides.

    A tree from before gunicorn.conf.py (a baseline commit) gets the shipped values
    as flags, so both sides run the same server configuration.
    """
    workers, threads, worker_class = args.workers, args.threads, args.worker_class
    if not (root / "gunicorn.conf.py").exists():
        workers = workers or multiprocessing.cpu_count() + 1
        worker_class = worker_class or "sync"
    flags = ["--backlog", "2048"]
    if workers:
        flags += ["-w", str(workers)]
    if threads:
        flags += ["--threads", str(threads)]
    if worker_class:
        flags += ["-k", worker_class]
    return flags


@contextlib.contextmanager
def serving(root: Path, env: dict, args: argparse.Namespace) -> Iterator[str]:
    """Run gunicorn on the code in `root`; yield its URL."""
    port = free_port()
    server = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "tracking_project.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "--no-control-socket",
            *server_flags(root, args),
        ],
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/healthz")
        yield url
    finally:
        server.terminate()
        server.wait()


@contextlib.contextmanager
def worktree(ref: str) -> Iterator[Path]:
    """Check `ref` out into a temporary git worktree; yield its path."""
    path = Path(tempfile.mkdtemp(prefix="bench-baseline-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(path), ref], cwd=ROOT, check=True, capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)


def report(label: str, single: dict, batched: dict) -> None:
    print(
        f"{label:<16} single events : {single['rps']:8.0f} requests/s = events/s  (p50 {single['p50']}, "
        f"p99 {single['p99']}, non-2xx {single['errors']})"
    )
    print(
        f"{label:<16} batches of 100: {batched['rps'] * 100:8.0f} events/s ({batched['rps']:.0f} requests/s, "
        f"p50 {batched['p50']}, p99 {batched['p99']}, non-2xx {batched['errors']})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=0, help="gunicorn worker processes (default: gunicorn.conf.py)")
    parser.add_argument("--threads", type=int, default=0, help="threads per worker (default: gunicorn.conf.py)")
    parser.add_argument("--worker-class", default="", help="gunicorn worker class (default: gunicorn.conf.py)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    parser.add_argument("--profiles", default=",".join(PROFILES), help="comma-separated traffic profiles")
    parser.add_argument("--baseline-ref", default="", help="also measure this commit (classic profile), same run")
    args = parser.parse_args()
    profiles = [name for name in args.profiles.split(",") if name]
    if unknown := set(profiles) - set(PROFILES):
        sys.exit(f"unknown profiles: {', '.join(sorted(unknown))} (known: {', '.join(PROFILES)})")
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    moto_port = free_port()
    env = app_env(database_url=args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}", moto_port=moto_port)
    key = prepare(ROOT, env, fresh=bool(args.database_url), custom_schema=True)

    def measure(url: str, api_key: str, profile: str) -> tuple[dict, dict]:
        return tuple(
            run_wrk(
                url, key=api_key, batch=batch, duration=args.duration, connections=args.connections, profile=profile
            )
            for batch in (0, 100)
        )

    baseline_runs: list[tuple[dict, dict]] = []
    with contextlib.ExitStack() as stack:
        if args.baseline_ref:
            tree = stack.enter_context(worktree(args.baseline_ref))
            base_url_db = (
                f"{args.database_url}_baseline" if args.database_url else f"sqlite:///{workdir / 'baseline.sqlite3'}"
            )
            base_env = app_env(database_url=base_url_db, moto_port=moto_port)
            base_key = prepare(tree, base_env, fresh=bool(args.database_url), custom_schema=False)
            with serving(tree, base_env, args) as base_url:
                baseline_runs.append(measure(base_url, base_key, "classic"))
        with serving(ROOT, env, args) as url:
            results = {profile: measure(url, key, profile) for profile in profiles}
        if args.baseline_ref:
            with serving(tree, base_env, args) as base_url:
                baseline_runs.append(measure(base_url, base_key, "classic"))
    acknowledged = sum(
        (result["requests"] - result["errors"]) * max(batch, 1)
        for pair in results.values()
        for batch, result in zip((0, 100), pair, strict=True)
    )
    stored = count_rows(env, MANAGE)

    with moto_server(moto_port):
        subprocess.run([*MANAGE, "ensure_firehose"], env=env, check=True, capture_output=True)
        started = time.perf_counter()
        subprocess.run([*MANAGE, "deliver_events", "--once"], env=env, check=True, capture_output=True)
        delivery_seconds = time.perf_counter() - started
        calls = put_record_batch_calls(env["AWS_ENDPOINT_URL"])
    shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"database: {env['DATABASE_URL'].split(':')[0]}, gunicorn: {' '.join(server_flags(ROOT, args))} "
        f"(+ gunicorn.conf.py), wrk: 1 thread, {args.connections} connections, {args.duration} s a run"
    )
    if baseline_runs:
        report(f"{args.baseline_ref[:10]} before", *baseline_runs[0])
    for profile in profiles:
        report(profile, *results[profile])
    if baseline_runs:
        report(f"{args.baseline_ref[:10]} after", *baseline_runs[1])
    print(f"stored rows   : {stored} (acknowledged {acknowledged})")
    print(
        f"delivery      : {stored / delivery_seconds:8.0f} events/s into moto (one worker, "
        f"{delivery_seconds:.1f} s incl. start-up), {calls} PutRecordBatch calls, "
        f"{calls * 10_000 / max(stored, 1):.1f} calls per 10,000 events"
    )
    if stored < acknowledged:
        sys.exit("LOST EVENTS: fewer rows than acknowledged events")


if __name__ == "__main__":
    main()
