"""Retention benchmark: purge_events deleting 1,000,000 delivered events while the API takes events.

Usage: .venv/bin/python bench/purge.py [--rows 1000000] [--databases sqlite,postgres] [--rate 200]
                                           [--batch-size 200] [--cycles 2] [--baseline-seconds 20]

For each database, a fresh migrated database holds generations of `--rows` delivered
events each (passed by the relay's cursor, one relay call row per 2,000 events as the
relay records them, payloads of the usual ~400 bytes, every index of the app), ids
growing with their received_at as in production: with 2 cycles, generations 30, 20
and 10 days old. gunicorn (3 workers, no delivery worker, DEBUG off)
takes single events at a fixed `--rate` from a client on loopback, first for a
baseline, then while `manage.py purge_events` deletes the oldest generation. Each
cycle after the first appends the next generation first (the days that passed), so
the table goes 2 generations -> 1 -> 2 -> 1 like a month of events purged daily.

Printed per cycle: the purge's seconds and events/s, ingest p50/p99/max and errors
without and during the purge, and the database's size (SQLite: file, WAL and free
pages; PostgreSQL: table and index sizes, dead tuples, pgstattuple's free and dead
space when the extension is there) before and after, then after two plain VACUUMs
(autovacuum's work over a day) on PostgreSQL, with the index pages left free for
reuse. A size that comes back to the same figure each cycle means deleted space is
reused (no bloat); one that grows would call for partitioning the table by time.
Also the cost of one /metrics scrape at that size, with the database figures
recomputed for every scrape.

`seed_events` is also the fixture of tests/privacy/test_retention.py's concurrent test.
"""

import argparse
import contextlib
import os
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MANAGE = [sys.executable, str(ROOT / "manage.py")]
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres")

# A typical install line (~400 bytes), as the audit row stores it; @NAME@ are SQL expressions filled in.
PAYLOAD_SQL = (
    '\'{"schema_version":1,"event_id":"\' || @EVENT_ID@ || \'","event_type":"install","game":"\' || @SLUG@ || '
    '\'","player_id":"player-\' || @N@ || \'","occurred_at":"2026-01-01T00:00:00Z","sent_at":null,'
    '"received_at":"2026-01-01T00:00:00Z","derived_at":"2026-01-01T00:00:00Z","platform":"ios",'
    '"app_version":"1.4.2","session_id":null,"properties":{"store":"app_store","campaign":"summer",'
    '"country":"FR","device_model":"iPhone15,2","os_version":"18.1"},"context":{}}\''
)
COLUMNS = (
    "game_id, event_id, event_type, player_id, platform, transaction_id, currency, revenue, revenue_base, "
    "base_currency, fx_rate, fx_date, occurred_at, sent_at, received_at, derived_at, payload, shard"
)
# The relay's batch (EVENTS_DELIVERY_BATCH_SIZE's default): ~800 KB of lines, one PutRecordBatch call.
EVENTS_PER_CALL = 2000
RECORD_BYTES = 128 * 1024  # EVENTS_RECORD_TARGET_BYTES's default
LINE_BYTES = 400
# The delivery tables whose size the benchmark follows beside the events.
DELIVERY_TABLES = ("events_app_deliverycall", "events_app_deliveryissue")
# PostgreSQL: a table and, if partitioned (the log by day), its partitions, which hold the rows.
RELATIONS = "(SELECT relid FROM pg_partition_tree(%s::regclass) UNION SELECT %s::regclass)"


def _payload(*, event_id: str, slug: str, n: str) -> str:
    return PAYLOAD_SQL.replace("@EVENT_ID@", event_id).replace("@SLUG@", slug).replace("@N@", n)


def _connect(database_url: str):
    if database_url.startswith("sqlite:///"):
        return contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=60))
    import psycopg

    return psycopg.connect(database_url)


def seed_events(database_url: str, *, game_slug: str, count: int, age_days: float, state: str = "delivered") -> None:
    """Insert `count` events of the existing game `game_slug` received `age_days` ago, in SQL, as the relay leaves them.

    `state` "delivered": shard 0's cursor is moved past them (the relay passed them)
    and one relay call row is written per EVENTS_PER_CALL events. "failed" or "dead":
    passed too, each with a delivery issue in that state. "pending": nothing more (no
    relay passed them yet). The cursor is moved to the last event inserted, so events
    the API stored meanwhile (no worker runs here) count as passed too.
    """
    sqlite = database_url.startswith("sqlite:///")
    with _connect(database_url) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT id FROM events_app_game WHERE slug = " + ("?" if sqlite else "%s"), (game_slug,))
        game_id = cursor.fetchone()[0]
        first_new = (cursor.execute("SELECT COALESCE(MAX(id), 0) FROM events_app_event").fetchone())[0]
        if sqlite:
            # One millisecond apart, in id order, ending `age_days` ago; text as Django stores it.
            offset = f"'-' || (({count} - n) / 1000.0) || ' seconds'"
            stamp = f"strftime('%Y-%m-%d %H:%M:%f', 'now', '-{age_days} days', {offset})"
            event_id = "lower(hex(randomblob(16)))"
            payload = _payload(event_id=event_id, slug=f"'{game_slug}'", n="n")
            rows = f"WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {count}) "
            source = "FROM seq"
            txid, this_txid, now = "txid", "0", "strftime('%Y-%m-%d %H:%M:%f', 'now')"
        else:
            stamp = f"(now() - interval '{age_days} days' - ({count} - n) * interval '1 millisecond')"
            event_id = "gen_random_uuid()::text"
            payload = "(" + _payload(event_id=event_id, slug=f"'{game_slug}'", n="n::text") + ")::jsonb"
            rows = ""
            source = f"FROM generate_series(1, {count}) AS n"
            txid, this_txid, now = "txid::text::bigint", "pg_current_xact_id()::text::bigint", "now()"
        event_uuid = event_id if sqlite else "gen_random_uuid()"
        cursor.execute(
            f"{rows}INSERT INTO events_app_event ({COLUMNS}) "
            f"SELECT {game_id}, {event_uuid}, 'install', 'player-' || (n % 50000), 'ios', NULL, '', NULL, NULL, '', "
            f"NULL, NULL, {stamp}, NULL, {stamp}, {stamp}, {payload}, 0 {source}"
        )
        if state != "pending":
            last = cursor.execute("SELECT MAX(id) FROM events_app_event").fetchone()[0]
            cursor.execute(
                "INSERT INTO events_app_deliverycursor (shard, last_txid, last_event, moved_at) "
                f"VALUES (0, {this_txid}, {last}, {now}) ON CONFLICT (shard) DO UPDATE SET "
                "last_txid = excluded.last_txid, last_event = excluded.last_event, moved_at = excluded.moved_at"
            )
            records = (EVENTS_PER_CALL * LINE_BYTES + RECORD_BYTES - 1) // RECORD_BYTES
            cursor.execute(
                "INSERT INTO events_app_deliverycall (called_at, emitted_at, destination, sender, shard, first_txid, "
                "first_event, last_txid, last_event, events, failed_events, records, bytes, outcome, error) "
                f"SELECT MAX(received_at), MAX(received_at), 'firehose', 'relay', 0, MIN({txid}), MIN(id), "
                f"MAX({txid}), MAX(id), COUNT(*), 0, {records}, COUNT(*) * {LINE_BYTES}, 'delivered', '' "
                f"FROM events_app_event WHERE id > {first_new} GROUP BY (id - {first_new} - 1) / {EVENTS_PER_CALL}"
            )
        if state in ("failed", "dead"):
            due = "received_at" if state == "failed" else "NULL"
            cursor.execute(
                "INSERT INTO events_app_deliveryissue (event_id, game_id, received_at, payload, state, attempts, "
                "next_attempt_at, last_error, opened_at) "
                f"SELECT id, game_id, received_at, payload, '{state}', 1, {due}, "
                "'ServiceUnavailableException: Slow down.', received_at "
                f"FROM events_app_event WHERE id > {first_new}"
            )
        conn.commit()


# --- The benchmark ---------------------------------------------------------------------


def database_size(database_url: str) -> dict:
    """Return the figures that show how much disk the audit tables take."""
    with _connect(database_url) as conn:
        cursor = conn.cursor()
        events = cursor.execute("SELECT COUNT(*) FROM events_app_event").fetchone()[0]
        calls = cursor.execute("SELECT COUNT(*) FROM events_app_deliverycall").fetchone()[0]
        issues = cursor.execute("SELECT COUNT(*) FROM events_app_deliveryissue").fetchone()[0]
        if database_url.startswith("sqlite:///"):
            path = Path(database_url.removeprefix("sqlite:///"))
            page_size = cursor.execute("PRAGMA page_size").fetchone()[0]
            wal = Path(f"{path}-wal")
            return {
                "events": events,
                "calls": calls,
                "issues": issues,
                "file_mib": path.stat().st_size / 2**20,
                "wal_mib": wal.stat().st_size / 2**20 if wal.exists() else 0.0,
                "free_mib": cursor.execute("PRAGMA freelist_count").fetchone()[0] * page_size / 2**20,
            }
        figures = {"events": events, "calls": calls, "issues": issues}
        for table in ("events_app_event", *DELIVERY_TABLES):
            short = table.removeprefix("events_app_").removeprefix("delivery")
            # A partitioned table (the log by day) takes no space itself: its partitions do.
            heap, indexes = cursor.execute(
                f"SELECT SUM(pg_table_size(relid)), SUM(pg_indexes_size(relid)) FROM {RELATIONS} AS tree (relid)",
                (table, table),
            ).fetchone()
            dead = cursor.execute(
                f"SELECT SUM(n_dead_tup) FROM pg_stat_user_tables WHERE relid IN {RELATIONS}", (table, table)
            ).fetchone()
            figures.update(
                {
                    f"{short}_table_mib": heap / 2**20,
                    f"{short}_indexes_mib": indexes / 2**20,
                    f"{short}_dead_tuples": dead[0] if dead else None,
                }
            )
        with contextlib.suppress(Exception):
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
            conn.commit()
            free, dead_percent = cursor.execute(
                "SELECT free_percent, dead_tuple_percent FROM pgstattuple('events_app_event')"
            ).fetchone()
            figures.update({"event_free_percent": free, "event_dead_percent": dead_percent})
        conn.rollback()
        return figures


def index_free_pages(database_url: str) -> dict:
    """Return, per table, the MiB of its indexes' pages that are empty and reusable (pgstattuple's pgstatindex)."""
    import psycopg

    figures = {}
    with psycopg.connect(database_url) as conn:
        for table in ("events_app_event", *DELIVERY_TABLES):
            rows = conn.execute(
                "SELECT SUM((pgstatindex(i.indexrelid::regclass)).deleted_pages) * current_setting('block_size')::int "
                "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
                f"WHERE i.indrelid IN {RELATIONS} AND a.amname = 'btree' AND c.relkind = 'i'",
                (table, table),
            ).fetchone()
            figures[f"{table.removeprefix('events_app_')}_free_index_mib"] = (rows[0] or 0) / 2**20
    return figures


def vacuum(database_url: str) -> None:
    """Run a plain VACUUM (what autovacuum does; not FULL, so nothing is locked): PostgreSQL only."""
    if database_url.startswith("sqlite:///"):
        return
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        for table in ("events_app_event", *DELIVERY_TABLES):
            conn.execute(f"VACUUM (ANALYZE) {table}")


class Load:
    """Single-event POSTs at a fixed rate from a few threads; every request's start time, latency and status."""

    def __init__(self, url: str, key: str, *, rate: float, threads: int = 4):
        self.url, self.key, self.rate, self.threads = url, key, rate, threads
        self.samples: list[tuple[float, float, int]] = []
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        self._workers = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(self.threads)]
        for worker in self._workers:
            worker.start()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join()

    def _run(self, n: int) -> None:
        import requests

        interval = self.threads / self.rate
        next_at = time.monotonic() + n * interval / self.threads
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {self.key}"
            while not self._stop.is_set():
                now = time.monotonic()
                if now < next_at:
                    time.sleep(next_at - now)
                next_at += interval
                event = {
                    "event_id": str(uuid.uuid4()),
                    "event_type": "install",
                    "player_id": f"p{n}",
                    "occurred_at": "2026-01-01T00:00:00Z",
                    "platform": "ios",
                }
                started = time.monotonic()
                try:
                    status = session.post(f"{self.url}/v1/events", json=event, timeout=30).status_code
                except Exception:
                    status = 0
                self.samples.append((started, time.monotonic() - started, status))

    def window(self, start: float, end: float) -> dict:
        """Return latency percentiles (ms) and errors of requests started within [start, end)."""
        chosen = [(latency, status) for at, latency, status in self.samples if start <= at < end]
        latencies = sorted(latency * 1000 for latency, _ in chosen)
        if not latencies:
            return {"requests": 0}
        return {
            "requests": len(latencies),
            "errors": sum(1 for _, status in chosen if status != 202),
            "p50_ms": statistics.median(latencies),
            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "max_ms": latencies[-1],
        }


def scrape_cost(url: str, *, scrapes: int = 20) -> float:
    """Return the median milliseconds of one GET /metrics."""
    import requests

    times = []
    with requests.Session() as session:
        for _ in range(scrapes):
            started = time.perf_counter()
            session.get(f"{url}/metrics", timeout=60).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def serve(env: dict, *, workers: int, log: Path) -> tuple[subprocess.Popen, str]:
    sys.path.insert(0, str(ROOT / "bench"))
    import common  # noqa: F401 (puts the project on sys.path)

    from devtools.processes import free_port, wait_until_up

    port = free_port()
    process = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "tracking_project.wsgi",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--no-control-socket",
        ],
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(f"{url}/healthz")
    return process, url


def show(title: str, figures: dict) -> None:
    parts = [
        f"{name}={value:,.1f}" if isinstance(value, float) else f"{name}={value}" for name, value in figures.items()
    ]
    print(f"  {title}: " + " ".join(parts), flush=True)


def run_one(kind: str, args, workdir: Path) -> None:
    if kind == "sqlite":
        database_url = f"sqlite:///{workdir / 'retention.sqlite3'}"
    else:
        import psycopg

        name = f"bench_retention_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        database_url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tracking_project.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),  # production mode refuses a weak key
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url,
        "EVENTS_LOG_LEVEL": "WARNING",
        "EVENTS_RATE_LIMIT": "0",
        "EVENTS_METRICS_CACHE_SECONDS": "0",
    }
    generations = args.cycles + 1
    age = [(generations - index) * 10 for index in range(generations)]  # e.g. 30, 20, 10 days
    print(
        f"\n== {kind}: generations of {args.rows:,} delivered events, {', '.join(map(str, age))} days old", flush=True
    )
    subprocess.run([*MANAGE, "migrate", "-v", "0"], env=env, check=True)
    # Where the log is partitioned by day (PostgreSQL), the seeded days need their partitions.
    make_days = "getattr(logstore, 'ensure_partitions', lambda **_: None)"
    code = f"from events_app import logstore; {make_days}(back={age[0] + 1})"
    subprocess.run([*MANAGE, "shell", "-v", "0", "-c", code], env=env, check=True)
    key = (
        subprocess.run([*MANAGE, "create_api_key", "bench-game"], env=env, check=True, capture_output=True, text=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    started = time.perf_counter()
    for index in (0, 1):
        seed_events(database_url, game_slug="bench-game", count=args.rows, age_days=age[index])
    vacuum(database_url)
    print(f"  seeded {2 * args.rows:,} events in {time.perf_counter() - started:.0f} s", flush=True)
    show("size before", database_size(database_url))

    process, url = serve(env, workers=3, log=workdir / f"gunicorn-{kind}.log")
    try:
        print(
            f"  /metrics at {2 * args.rows:,} rows: {scrape_cost(url):.1f} ms per scrape "
            "(database figures recomputed each time)",
            flush=True,
        )
        for cycle in range(1, args.cycles + 1):
            if cycle > 1:
                seed_events(database_url, game_slug="bench-game", count=args.rows, age_days=age[cycle])
                show(f"cycle {cycle}: size with the next {args.rows:,} events added", database_size(database_url))
            older_than = age[cycle - 1] - 5
            load = Load(url, key, rate=args.rate)
            load.start()
            time.sleep(2)
            base_start = time.monotonic()
            time.sleep(args.baseline_seconds)
            purge_start = time.monotonic()
            result = subprocess.run(
                [*MANAGE, "purge_events", "--older-than", str(older_than), "--batch-size", str(args.batch_size)],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            purge_end = time.monotonic()
            time.sleep(1)
            load.stop()
            seconds = purge_end - purge_start
            print(
                f"  cycle {cycle}: purge_events --older-than {older_than}: {result.stdout.strip()} in "
                f"{seconds:.1f} s ({args.rows / seconds:,.0f} events/s, batches of {args.batch_size})",
                flush=True,
            )
            show("ingest without purge", load.window(base_start, purge_start))
            show("ingest during purge", load.window(purge_start, purge_end))
            show("size after purge", database_size(database_url))
            if kind == "postgres":
                # What autovacuum does over a day: once after the deletes, again as inserts go on
                # (only the second lets B-tree pages emptied by the first be reused).
                vacuum(database_url)
                vacuum(database_url)
                show("size after VACUUM twice (autovacuum's work)", database_size(database_url))
                show("index pages free for reuse", index_free_pages(database_url))
        print(f"  /metrics after the purge: {scrape_cost(url):.1f} ms per scrape", flush=True)
    finally:
        process.terminate()
        process.wait(timeout=30)
    if kind == "postgres":
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database_url.rsplit("/", 1)[1]}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="delivered events purged per cycle")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--rate", type=float, default=200.0, help="ingest requests per second during the run")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--baseline-seconds", type=float, default=20.0)
    parser.add_argument("--cycles", type=int, default=2)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-retention-"))
    print(f"work folder {workdir}; {os.cpu_count()} cores", flush=True)
    for kind in args.databases.split(","):
        run_one(kind, args, workdir)


if __name__ == "__main__":
    main()
