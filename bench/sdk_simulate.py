"""SDK end-to-end benchmark: the player simulator against the app under gunicorn on loopback.

Usage: .venv/bin/python bench/sdk_simulate.py [--duration 15] [--players 1000] [--workers 2] [--persist]

Starts the app (a fresh SQLite file, delivery left to the worker, which is not
started), then runs `sdk.simulate` twice in this process: unpaced (as fast as one SDK
instance gets its batches acknowledged) and paced at --rate. Prints the simulator's
summary for each and checks that the audit log holds exactly the accepted events.
"""

import argparse
import contextlib
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MANAGE = [sys.executable, str(ROOT / "manage.py")]
sys.path.insert(0, str(ROOT))


from devtools.processes import free_port, wait_until_up  # noqa: E402
from sdk.simulate import run, summary  # noqa: E402 (after the path is set)


def stored_rows(db_path: Path) -> int:
    with contextlib.closing(sqlite3.connect(db_path, timeout=30)) as db:
        return db.execute("SELECT count(*) FROM events_app_event").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15, help="seconds per run")
    parser.add_argument("--players", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=500, help="events/s of the paced run")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker")
    parser.add_argument("--persist", action="store_true", help="turn on the SDK's SQLite spool")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-sdk-"))
    db_path = workdir / "bench.sqlite3"
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tracking_project.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECURE_SSL_REDIRECT": "0",  # plain HTTP on loopback, as behind a TLS-ending proxy
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),  # production mode refuses a weak key
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{db_path}",
        "EVENTS_LOG_LEVEL": "WARNING",
    }
    subprocess.run([*MANAGE, "migrate", "-v", "0"], env=env, check=True)
    key = subprocess.run(
        [*MANAGE, "create_api_key", "bench-sdk"], env=env, check=True, capture_output=True, text=True
    ).stdout.split()[-1]
    server = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "tracking_project.wsgi",
            "-k",
            "gthread",
            "-w",
            str(args.workers),
            "--threads",
            str(args.threads),
            "-b",
            f"127.0.0.1:{port}",
            "--no-control-socket",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    failures = 0
    try:
        wait_until_up(f"{url}/healthz")
        print(
            f"gunicorn: {args.workers} gthread workers x {args.threads} threads, SQLite, {os.cpu_count()} CPUs; "
            f"SDK persistence {'on' if args.persist else 'off'}"
        )
        for label, rate in (("unpaced", 0.0), (f"paced at {args.rate:g} events/s", args.rate)):
            before = stored_rows(db_path)
            spool = str(workdir / f"spool-{rate:g}.sqlite3") if args.persist else None
            result = run(
                url=url, api_key=key, players=args.players, duration=args.duration, rate=rate, persist=spool, seed=1
            )
            stored = stored_rows(db_path) - before
            assert result.stats is not None
            consistent = stored == result.stats.accepted
            failures += not (result.ok and consistent)
            print(f"\n== {label}")
            print(summary(result))
            print(f"audit log   {stored:,} new rows ({'= accepted' if consistent else 'MISMATCH with accepted'})")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    if failures:
        sys.exit("some events were not delivered exactly once")


if __name__ == "__main__":
    main()
