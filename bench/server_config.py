"""gunicorn configuration sweep: which worker class, workers and threads serve this workload fastest.

Usage: .venv/bin/python bench/server_config.py [--duration 6] [--connections 8]
           [--configs gthread:2:4,gthread:3:1,sync:4:1,...] [--worker]

Serves the project (SQLite, defaults otherwise; with --worker, or its old name
--forwarding, a `deliver_events` worker runs beside it, its destination unreachable)
under each configuration in turn, on the same fresh database, and prints events/s
and p50/p95 for single events and batches of 100, with wrk (Debian package `wrk`),
and how the requests spread over the worker processes (gthread with one thread
lets one process accept every keep-alive connection while the others idle).
The shipped gunicorn.conf.py holds the winner; everything not given here comes
from it (keep-alive among them).
"""

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import run_wrk

from devtools.processes import BIN, ROOT, free_port, start, stop, wait_until_up

MANAGE = [sys.executable, str(ROOT / "manage.py")]
DEFAULT_CONFIGS = "sync:3:1,gthread:3:1,gthread:3:2,gthread:3:4,gthread:3:1:3,sync:2:1,sync:4:1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=6)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--configs", default=DEFAULT_CONFIGS, help="worker_class:workers:threads[:worker_connections], comma-separated"
    )
    parser.add_argument(
        "--worker",
        "--forwarding",
        dest="worker",
        action="store_true",
        help="a delivery worker beside the server (to an unreachable endpoint), as deployed",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="bench-config-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tracking_project.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECURE_SSL_REDIRECT": "0",  # plain HTTP on loopback, as behind a TLS-ending proxy
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),  # production mode refuses a weak key
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    subprocess.run([*MANAGE, "migrate", "-v", "0"], env=env, check=True)
    key = subprocess.run(
        [*MANAGE, "create_api_key", "bench-game"], env=env, check=True, capture_output=True, text=True
    ).stdout.split()[-1]

    print(f"{'config':18} {'single events/s':>16} {'p50':>7} {'p95':>7} {'batch events/s':>15} {'p50':>7} {'p95':>7}")
    # The worker shares SQLite's write lock with the server: its heartbeats, its outage records.
    worker = start([*MANAGE, "deliver_events"], env=env, log=workdir / "worker.log") if args.worker else None
    try:
        for config in args.configs.split(","):
            worker_class, workers, threads, *connections = config.split(":")
            port = free_port()
            limit = ["--worker-connections", connections[0]] if connections else []
            server = start(
                [
                    str(BIN / "gunicorn"),
                    "-b",
                    f"127.0.0.1:{port}",
                    "--no-control-socket",
                    "-k",
                    worker_class,
                    "-w",
                    workers,
                    "--threads",
                    threads,
                    *limit,
                ],
                env=env,
                log=workdir / f"{config.replace(':', '-')}.log",
            )
            url = f"http://127.0.0.1:{port}"
            try:
                wait_until_up(f"{url}/healthz")
                single = run_wrk(url, key=key, batch=0, duration=args.duration, connections=args.connections)
                batch = run_wrk(url, key=key, batch=100, duration=args.duration, connections=args.connections)
            finally:
                stop(server)
            rate_single = (single["requests"] - single["errors"]) / single["seconds"]
            rate_batch = (batch["requests"] - batch["errors"]) * 100 / batch["seconds"]
            print(
                f"{config:18} {rate_single:16.0f} {single['p50']:7.1f} {single['p95']:7.1f} "
                f"{rate_batch:15.0f} {batch['p50']:7.1f} {batch['p95']:7.1f}",
                flush=True,
            )
    finally:
        if worker is not None:
            stop(worker)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
