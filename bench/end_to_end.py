"""End-to-end benchmark: the project side by side with a bare baseline and with the seed's design, in one run.

Usage: .venv/bin/python bench/end_to_end.py [--phase all|ingest|e2e|latency] [--duration 10]
                                             [--connections 8] [--rounds 2]

Every server runs under gunicorn with the shipped gunicorn.conf.py, driven by wrk
(Debian package `wrk`) on loopback, with fresh event ids in every request.

- ingest: the project without a delivery worker vs a bare Django view that parses JSON
  and inserts with executemany into SQLite at the same durability (WAL,
  synchronous=FULL; bench/bare_django.py): events/s for single events and batches
  of 100, the two alternating `--rounds` times.
- e2e: the project at its defaults (a `deliver_events` worker relaying the log
  beside the web server, as `make run` starts them) vs a rebuild of the
  seed's design (Flask, one put_record per event inside the request;
  bench/seed_app.py), both into moto's Firehose and S3: events delivered into S3
  per second (lines landed, timed by the last landing: S3's LastModified, to the
  microsecond through bench/moto_precise.py), and Firehose calls, records and
  billed bytes per 1,000 events (the project's from its worker's `delivery batch` log lines;
  the seed's by construction: one call and one record per event); the two
  alternate `--rounds` times.
- latency: request p50/p95 of single events with a healthy Firehose and with one
  answering in 300 ms (bench/delay_proxy.py in front of moto, 0 ms when healthy),
  the project's two cases alternating `--rounds` times, then the seed's.
"""

import argparse
import contextlib
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import run_wrk, s3_line_count, s3_objects

from devtools.processes import BIN, ROOT, free_port, precise_moto_server, start, stop, wait_until_up

MANAGE = [sys.executable, str(ROOT / "manage.py")]
BILLING_UNIT = 5 * 1024


@dataclass
class Server:
    name: str
    url: str
    key: str


def base_env(workdir: Path) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tracking_project.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECURE_SSL_REDIRECT": "0",  # plain HTTP on loopback, as behind a TLS-ending proxy
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),  # production mode refuses a weak key
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "NO_PROXY": "127.0.0.1,localhost",
    }


def template_database(workdir: Path) -> tuple[Path, str]:
    """Migrate one SQLite file and make an API key in it; each project run starts from a copy."""
    path = workdir / "template.sqlite3"
    env = {**base_env(workdir), "DATABASE_URL": f"sqlite:///{path}"}
    subprocess.run([*MANAGE, "migrate", "-v", "0"], env=env, check=True)
    key = subprocess.run(
        [*MANAGE, "create_api_key", "bench-game"], env=env, check=True, capture_output=True, text=True
    ).stdout.split()[-1]
    return path, key


def gunicorn(app: str, env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = start([str(BIN / "gunicorn"), app, "-b", f"127.0.0.1:{port}", "--no-control-socket"], env=env, log=log)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(f"{url}/healthz")
    return process, url


@contextlib.contextmanager
def delay_proxy(target: str, delay_ms: float, log: Path) -> Iterator[str]:
    port = free_port()
    process = start(
        [
            sys.executable,
            str(ROOT / "bench" / "delay_proxy.py"),
            "--port",
            str(port),
            "--target",
            target,
            "--delay-ms",
            str(delay_ms),
        ],
        env=dict(os.environ),
        log=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url)
        yield url
    finally:
        stop(process)


def proxy_counts(proxy_url: str) -> dict:
    return requests.get(f"{proxy_url}/__counts", timeout=10).json()


@contextlib.contextmanager
def project(
    workdir: Path,
    template: tuple[Path, str],
    run: str,
    *,
    aws_url: str | None,
    worker: bool,
    stream: str = "game-events",
) -> Iterator[Server]:
    """Serve the project from a copy of the template database; with `worker`, a delivery worker runs beside it."""
    database = workdir / f"{run}.sqlite3"
    shutil.copy(template[0], database)
    env = {
        **base_env(workdir),
        "DATABASE_URL": f"sqlite:///{database}",
        "EVENTS_LOG_LEVEL": "INFO",  # the default; the e2e phase counts calls from these lines
        "FIREHOSE_STREAM_NAME": stream,
        "FIREHOSE_S3_BUCKET": stream,
    }
    if aws_url:
        env["AWS_ENDPOINT_URL"] = aws_url
        subprocess.run([*MANAGE, "ensure_firehose"], env=env, check=True, capture_output=True)
    processes = []
    try:
        if worker:
            processes.append(start([*MANAGE, "deliver_events"], env=env, log=workdir / f"{run}-worker.log"))
        server, url = gunicorn("tracking_project.wsgi", env, workdir / f"{run}-web.log")
        processes.append(server)
        yield Server("project", url, template[1])
    finally:
        for process in reversed(processes):
            stop(process)


@contextlib.contextmanager
def bare(workdir: Path, run: str) -> Iterator[Server]:
    env = {**base_env(workdir), "BARE_DATABASE": str(workdir / f"{run}-bare.sqlite3")}
    server, url = gunicorn("bench.bare_django:application", env, workdir / f"{run}-bare.log")
    try:
        yield Server("bare Django+SQLite", url, "unused")
    finally:
        stop(server)


@contextlib.contextmanager
def seed(workdir: Path, run: str, *, aws_url: str, moto_url: str, stream: str) -> Iterator[Server]:
    env = {
        **base_env(workdir),
        "DATABASE_URL": f"sqlite:///{workdir / 'unused.sqlite3'}",
        "AWS_ENDPOINT_URL": aws_url,
        "FIREHOSE_STREAM_NAME": stream,
        "FIREHOSE_S3_BUCKET": stream,
    }
    subprocess.run(
        [*MANAGE, "ensure_firehose"], env={**env, "AWS_ENDPOINT_URL": moto_url}, check=True, capture_output=True
    )
    server, url = gunicorn("bench.seed_app:app", env, workdir / f"{run}-seed.log")
    try:
        yield Server("seed (Flask, put_record per event)", url, "unused")
    finally:
        stop(server)


def acknowledged(result: dict, batch: int) -> int:
    return (result["requests"] - result["errors"]) * max(batch, 1)


def phase_ingest(args, workdir: Path, template) -> list[str]:
    out = ["## Ingest alone (no delivery worker), side by side with a bare Django view at equal durability"]
    for batch in (0, 100):
        shape = "single events" if batch == 0 else "batches of 100"
        rates: dict[str, list[float]] = {"project": [], "bare": []}
        for round_ in range(args.rounds):
            for name in ("project", "bare"):
                run = f"ingest-{name}-{batch}-{round_}"
                serving = (
                    project(workdir, template, run, aws_url=None, worker=False)
                    if name == "project"
                    else bare(workdir, run)
                )
                with serving as server:
                    result = run_wrk(
                        server.url, key=server.key, batch=batch, duration=args.duration, connections=args.connections
                    )
                rate = acknowledged(result, batch) / result["seconds"]
                rates[name].append(rate)
                out.append(
                    f"  {shape:15} round {round_ + 1} {name:8}: {rate:8.0f} events/s (p50 {result['p50']:.1f} ms, "
                    f"p95 {result['p95']:.1f} ms, non-2xx {result['errors']})"
                )
        ratio = statistics.mean(p / b for p, b in zip(rates["project"], rates["bare"], strict=True))
        out.append(
            f"  {shape:15} project {statistics.mean(rates['project']):8.0f} events/s, bare "
            f"{statistics.mean(rates['bare']):8.0f} events/s: {ratio:.2f}x the bare baseline"
        )
    return out


def landed(moto_url: str, bucket: str, expected: int, settle_seconds: float = 3.0, timeout: float = 90) -> dict:
    """Wait until S3 stops growing (or holds `expected` lines); return objects, lines and the last landing time."""
    deadline = time.time() + timeout
    count, still_since = -1, time.time()
    while time.time() < deadline:
        objects = s3_objects(moto_url, bucket)
        if len(objects) != count:
            count, still_since = len(objects), time.time()
        elif time.time() - still_since >= settle_seconds:
            break
        time.sleep(0.5)
    lines = s3_line_count(moto_url, bucket, objects)
    last = max((item["LastModified"].timestamp() for item in objects), default=float("nan"))
    return {"objects": len(objects), "lines": lines, "last_landing": last, "missing": max(0, expected - lines)}


DELIVERY_LOG = re.compile(r"delivery batch .* calls=(\d+) records=(\d+) bytes=(\d+) billed_bytes=(\d+)")


def delivery_log_counts(workdir: Path, run: str) -> dict:
    """Add up the `delivery batch` log lines of a project run's worker (the only process that sends)."""
    counts = {"calls": 0, "records": 0, "bytes": 0, "billed_bytes": 0}
    for log in (workdir / f"{run}-worker.log",):
        for match in DELIVERY_LOG.finditer(log.read_text(errors="replace")):
            for name, value in zip(counts, match.groups(), strict=True):
                counts[name] += int(value)
    return counts


def phase_e2e(args, workdir: Path, template) -> list[str]:
    out = ["## End to end into S3 (moto), side by side with the seed's design"]
    with precise_moto_server(free_port()) as moto_url:
        for batch in (0, 100):
            shape = "single events" if batch == 0 else "batches of 100"
            rates: dict[str, list[float]] = {"project": [], "seed": []}
            for round_ in range(args.rounds):
                for name in ("project", "seed"):
                    rates[name].append(e2e_run(args, workdir, template, moto_url, name, batch, round_, shape, out))
            ratio = statistics.median(p / s for p, s in zip(rates["project"], rates["seed"], strict=True))
            out.append(
                f"  {shape:15} project {statistics.median(rates['project']):6.0f} events/s into S3, seed "
                f"{statistics.median(rates['seed']):6.0f}: {ratio:.1f}x (median of {args.rounds} rounds)"
            )
    return out


def e2e_run(args, workdir, template, moto_url, name, batch, round_, shape, out) -> float:
    """Serve `name`, load it, wait for S3 to settle; append the run's line to `out`, return events/s into S3."""
    run = f"e2e-{name}-{batch}-{round_}"
    stream = f"bench-{name}-{batch}-{round_}"
    # Both straight to moto: a proxy would cost the machine's two cores CPU.
    with contextlib.ExitStack() as stack:
        if name == "project":
            server = stack.enter_context(project(workdir, template, run, aws_url=moto_url, worker=True, stream=stream))
        else:
            server = stack.enter_context(seed(workdir, run, aws_url=moto_url, moto_url=moto_url, stream=stream))
        result = run_wrk(server.url, key=server.key, batch=batch, duration=args.duration, connections=args.connections)
        events = acknowledged(result, batch)
        landing = landed(moto_url, stream, events)
    if name == "project":  # the worker's own tally, from its log lines
        counts = delivery_log_counts(workdir, run)
        billed = f", billed/real bytes {counts['billed_bytes'] / max(counts['bytes'], 1):.2f}"
    else:  # put_record: one call, one record, one S3 object per event
        counts = {"calls": landing["objects"], "records": landing["objects"]}
        billed = f", billed/real bytes ~{BILLING_UNIT / 330:.1f} (one ~330-byte line per record)"
    seconds = landing["last_landing"] - result["started"]
    rate = landing["lines"] / seconds
    lines = max(landing["lines"], 1)
    out.append(
        f"  {shape:15} round {round_ + 1} {name:8}: {rate:6.0f} events/s into S3 ({landing['lines']} lines, last "
        f"landed {seconds:.1f} s after the start of a {args.duration:.0f} s load; acknowledged {events}, missing "
        f"{landing['missing']}); per 1,000 events landed: {counts['calls'] * 1000 / lines:.1f} calls, "
        f"{counts['records'] * 1000 / lines:.1f} records{billed}"
    )
    return rate


def phase_latency(args, workdir: Path, template) -> list[str]:
    out = [f"## Request latency, single events, {args.connections} connections: healthy Firehose vs 300 ms"]
    p95: dict[tuple[str, int], list[float]] = {}
    # The project's two cases alternate `--rounds` times; the seed's run once, for contrast.
    runs = [("project", delay) for _ in range(args.rounds) for delay in (0, 300)] + [("seed", 0), ("seed", 300)]
    with precise_moto_server(free_port()) as moto_url:
        for number, (name, delay) in enumerate(runs):
            run = f"latency-{name}-{delay}-{number}"
            stream = f"lat-{name}-{delay}-{number}"
            with contextlib.ExitStack() as stack:
                proxy = stack.enter_context(delay_proxy(moto_url, delay, workdir / f"{run}-proxy.log"))
                if name == "project":
                    server = stack.enter_context(
                        project(workdir, template, run, aws_url=proxy, worker=True, stream=stream)
                    )
                else:
                    server = stack.enter_context(seed(workdir, run, aws_url=proxy, moto_url=moto_url, stream=stream))
                result = run_wrk(
                    server.url, key=server.key, batch=0, duration=args.duration, connections=args.connections
                )
                counts = proxy_counts(proxy)
            p95.setdefault((name, delay), []).append(result["p95"])
            events = acknowledged(result, 0)
            out.append(
                f"  {name:8} Firehose {'healthy' if delay == 0 else f'+{delay} ms':8}: p50 {result['p50']:7.1f} ms, "
                f"p95 {result['p95']:7.1f} ms, {events / result['seconds']:6.0f} requests/s, "
                f"non-2xx {result['errors']}; {counts['calls'] * 1000 / max(events, 1):.1f} calls per 1,000 events"
            )
    healthy, slow = statistics.median(p95[("project", 0)]), statistics.median(p95[("project", 300)])
    out.append(
        f"  project p95, median of {args.rounds} rounds: healthy {healthy:.1f} ms, 300 ms Firehose "
        f"{slow:.1f} ms: {slow - healthy:+.1f} ms"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=["all", "ingest", "e2e", "latency"], default="all")
    parser.add_argument("--duration", type=float, default=10, help="seconds of load per run")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternations: project and baseline (ingest), healthy and slow (latency)"
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    template = template_database(workdir)
    report = [
        f"machine: {os.cpu_count()} cores; gunicorn.conf.py as shipped; wrk 1 thread, "
        f"{args.connections} connections, {args.duration:.0f} s per run; logs in {workdir}"
    ]
    phases = {"ingest": phase_ingest, "e2e": phase_e2e, "latency": phase_latency}
    for name, phase in phases.items():
        if args.phase in ("all", name):
            lines = phase(args, workdir, template)
            print("\n".join(lines), flush=True)
            report += lines
    print("\n" + "\n".join(report))


if __name__ == "__main__":
    main()
