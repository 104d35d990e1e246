"""A soak of the log on PostgreSQL: steady traffic for N minutes with delivery and hourly purges, on a fast clock.

Usage: .venv/bin/python bench/log_soak.py [--minutes 30] [--rate 1500] [--speed 288] [--ref HEAD]
                                          [--admin-url postgresql://postgres:postgres@127.0.0.1:5432/postgres]

In a fresh database of the commit --ref (a temporary git worktree): a writer process
stores --rate events a second (requests of 100 through the ingest service,
in-process: the database's work is the subject), a `deliver_events` process delivers
them to a destination that takes every record (bench/null_destination.py), and a
purger runs `purge_events(older_than_days=1)`, `purge_keys` and `ensure_partitions`
once an hour (destination call rows, a few thousand here, are left alone).

Time runs --speed times faster for what time decides: the events' received_at (which
picks their day partition), the purger's hours and its retention cutoff, so 30
minutes hold 6 days and whole day partitions are dropped during the run. The
idempotency window, which follows the database's own clock, is set to 6 minutes
(EVENTS_DEDUP_WINDOW_HOURS=0.1) for the same reason. Prints a line per minute: the
events stored, the slowest request's time, the database's size, the log's rows,
the backlog and the purges; then the first and last thirds side by side.
"""

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

# The simulated clock every process shares: SOAK_SIM_START + (real time - SOAK_REAL_START) * SOAK_SPEED.
CLOCK_VARIABLES = ("SOAK_SIM_START", "SOAK_REAL_START", "SOAK_SPEED")


def simulated_now() -> datetime:
    start, real_start, speed = (float(os.environ[name]) for name in CLOCK_VARIABLES)
    return datetime.fromtimestamp(start + (time.time() - real_start) * speed, UTC)


def writer(rate: int, until: float) -> None:
    """Store `rate` events a second until `until` (epoch); print a JSON line per second stored."""
    import uuid

    from events_app.api.keys import issue_api_key
    from events_app.ingest.service import ingest_events

    key = issue_api_key(game_slug=f"soak-{uuid.uuid4().hex[:8]}", name="soak")[0]
    second = time.time()
    while second < until:
        stored, slowest = 0, 0.0
        for _ in range(max(1, rate // 100)):
            received_at = simulated_now()
            events = [
                {
                    "event_id": str(uuid.uuid4()),
                    "event_type": "install",
                    "player_id": f"p{stored % 50000}",
                    "occurred_at": received_at.isoformat(),
                    "platform": "ios",
                    "properties": {"store": "app_store", "country": "FR"},
                }
                for _ in range(100)
            ]
            started = time.perf_counter()
            stored += ingest_events(api_key=key, raw_events=events, received_at=received_at).accepted
            slowest = max(slowest, time.perf_counter() - started)
        print(json.dumps({"at": second, "stored": stored, "slowest": slowest}), flush=True)
        second += 1
        time.sleep(max(0.0, second - time.time()))  # pacing, not measuring: a late second starts at once


def purger(speed: float, until: float) -> None:
    """Once a simulated hour: purge what is older than a simulated day, keep partitions ahead; print what went."""
    from events_app import logstore
    from events_app.privacy.retention import purge_events, purge_keys

    while time.time() < until:
        now = simulated_now()
        logstore.ensure_partitions(now=now)  # the days the fast clock reaches
        # The key buckets follow the database's own clock; 6-minute buckets need their
        # next ones sooner than the worker's hourly run makes them.
        logstore.ensure_partitions()
        started = time.perf_counter()
        events = purge_events(older_than_days=1, now=now).events
        # Keys follow the database's clock (a 6-minute window here), so the real one.
        event_keys, _ = purge_keys()
        print(
            json.dumps(
                {
                    "at": time.time(),
                    "events": events,
                    "event_keys": event_keys,
                    "seconds": time.perf_counter() - started,
                }
            ),
            flush=True,
        )
        time.sleep(3600 / speed)


def sample(url: str) -> dict:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        rows = conn.execute("SELECT count(*) FROM events_app_event").fetchone()[0]
        keys = conn.execute("SELECT count(*) FROM events_app_eventkey").fetchone()[0]
        behind = conn.execute(
            "SELECT count(*) FROM events_app_event AS e WHERE NOT EXISTS (SELECT 1 FROM events_app_deliverycursor AS c "
            "WHERE c.shard = e.shard AND (c.last_txid, c.last_event) >= (e.txid::text::bigint, e.id))"
        ).fetchone()[0]
    return {"size_mb": size / 2**20, "rows": rows, "keys": keys, "behind": behind}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=int, default=1500, help="events a second offered (in requests of 100)")
    parser.add_argument("--speed", type=float, default=288, help="simulated seconds per real second")
    parser.add_argument("--ref", default="HEAD")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()

    from ingest import worktree

    database_url = args.admin_url.rsplit("/", 1)[0] + f"/soak_{secrets.token_hex(4)}"
    real_start = time.time() + 60  # after migrate
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SETTINGS_MODULE": "tracking_project.settings",
        "EVENTS_DESTINATION": "null_destination.NullDestination",
        "EVENTS_LOG_LEVEL": "WARNING",
        "EVENTS_PURGE_PAUSE_FACTOR": "0",
        "EVENTS_RATE_LIMIT": "0",
        "EVENTS_DEDUP_WINDOW_HOURS": "0.1",
        "SOAK_SIM_START": str(real_start),  # today: migrate made the coming days' partitions
        "SOAK_REAL_START": str(real_start),
        "SOAK_SPEED": str(args.speed),
    }
    until = real_start + args.minutes * 60
    with worktree(args.ref) as tree:
        env["PYTHONPATH"] = os.pathsep.join([str(tree), str(BENCH)])
        import psycopg

        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database_url.rsplit("/", 1)[1]}"')
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=tree, env=env, check=True)
        time.sleep(max(0.0, real_start - time.time()))
        role = [sys.executable, str(Path(__file__).resolve()), "--role"]
        # Their lines go to files: a pipe read only at the end fills up and stops the writer.
        logs = {name: tree.parent / f"soak-{name}.jsonl" for name in ("writer", "purger")}
        processes = {
            name: subprocess.Popen(
                [*role, name, str(value), str(until)], cwd=tree, env=env, stdout=logs[name].open("w")
            )
            for name, value in (("writer", args.rate), ("purger", args.speed))
        }
        relay = subprocess.Popen([sys.executable, "manage.py", "deliver_events"], cwd=tree, env=env)
        samples = []
        try:
            while time.time() < until:
                time.sleep(60)
                samples.append({"at": time.time(), **sample(database_url)})
                print(f"minute {len(samples):3}: {samples[-1]}", flush=True)
        finally:
            relay.terminate()
            for process in processes.values():
                process.wait(timeout=120)
            relay.wait(60)
            outputs = {name: path.read_text() for name, path in logs.items()}
    seconds = [json.loads(line) for line in outputs["writer"].splitlines() if line.startswith("{")]
    purges = [json.loads(line) for line in outputs["purger"].splitlines() if line.startswith("{")]
    report(args, seconds, purges, samples)


def report(args, seconds: list[dict], purges: list[dict], samples: list[dict]) -> None:
    print(f"\nsoak: {args.minutes:g} min, {args.rate} events/s offered, clock x{args.speed:g}, ref {args.ref}")
    print(
        f"{'minute':>6} {'stored/s':>9} {'slowest ms':>10} {'db MB':>7} {'log rows':>9} {'keys':>9} "
        f"{'behind':>7} {'dropped':>9}"
    )
    for index, point in enumerate(samples):
        start = samples[index - 1]["at"] if index else point["at"] - 60
        window = [s for s in seconds if start <= s["at"] < point["at"]]
        dropped = sum(p["events"] for p in purges if start <= p["at"] < point["at"])
        rate = sum(s["stored"] for s in window) / max(1, len(window))
        slowest = max((s["slowest"] for s in window), default=0) * 1000
        print(
            f"{index + 1:>6} {rate:>9.0f} {slowest:>10.0f} {point['size_mb']:>7.0f} {point['rows']:>9} "
            f"{point['keys']:>9} {point['behind']:>7} {dropped:>9}"
        )
    third = max(1, len(seconds) // 3)
    first, last = seconds[:third], seconds[-third:]
    sizes = [point["size_mb"] for point in samples]
    print(
        f"stored/s: first third {statistics.mean(s['stored'] for s in first):.0f}, last third "
        f"{statistics.mean(s['stored'] for s in last):.0f}; database MB after the first third "
        f"{min(sizes[len(sizes) // 3 :]):.0f}-{max(sizes[len(sizes) // 3 :]):.0f}; purges {len(purges)}, slowest "
        f"{max(p['seconds'] for p in purges):.1f} s"
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--role":
        import django

        django.setup()
        role, *rest = sys.argv[2:]
        if role == "writer":
            writer(int(rest[0]), float(rest[1]))
        else:
            purger(float(rest[0]), float(rest[1]))
    else:
        main()
