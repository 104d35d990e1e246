"""How long upgrading an install to the log takes: migrations 0009-0013 on a database of the old table.

Usage: .venv/bin/python bench/log_migration.py [--events 1000000] [--database sqlite|postgres|both]
                                               [--admin-url postgresql://postgres:postgres@127.0.0.1:5432/postgres]

Migrates a fresh database to 0008 (the table before the log), fills it with --events
events in one SQL statement (98% delivered, 1% pending, 0.5% failed, 0.5% dead; one
purchase in 20; received over the last 10 days), then times each migration:
0009 (delivery records: issues for the undelivered, the relay's column and index),
0010 (idempotency keys for the window and the purchases, unique constraints dropped)
0011 (PostgreSQL: the copy into day partitions), 0012 (per-minute counts of the
events already sent) and 0013 (the log's indexes). Prints seconds per migration and
per million events.
"""

import argparse
import contextlib
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
STEPS = [
    "0009_delivery_records",
    "0010_idempotency_keys",
    "0011_partition_the_log",
    "0012_event_minutes",
    "0013_log_indexes",
]

# One row per event of the old table, as the app stored them (columns of migration 0008's Event).
FILL_POSTGRES = """
INSERT INTO events_app_game (slug, name, created_at, unknown_events) VALUES ('bench', 'bench', now(), 'reject');
INSERT INTO events_app_event (game_id, event_id, event_type, player_id, platform, transaction_id, currency, revenue,
    revenue_base, base_currency, fx_rate, fx_date, occurred_at, sent_at, received_at, derived_at, payload,
    delivery_state, attempts, next_attempt_at, last_error, delivered_at, emitted_at, claim_token, claimed_until)
SELECT (SELECT id FROM events_app_game), gen_random_uuid(),
    CASE WHEN i % 20 = 0 THEN 'purchase' ELSE 'install' END, 'p' || (i % 50000), 'ios',
    CASE WHEN i % 20 = 0 THEN 't-' || i END, CASE WHEN i % 20 = 0 THEN 'USD' ELSE '' END,
    CASE WHEN i % 20 = 0 THEN 1.99 END, NULL, '', NULL, NULL,
    t, t, t, t,
    jsonb_build_object('event_type', 'install', 'player_id', 'p' || (i % 50000), 'price', '1.99',
                       'properties', jsonb_build_object('product_id', 'gems')),
    CASE WHEN i % 200 < 196 THEN 'delivered' WHEN i % 200 < 198 THEN 'pending'
         WHEN i % 200 = 198 THEN 'failed' ELSE 'dead' END,
    1, CASE WHEN i % 200 IN (196, 197, 198) THEN t END, '', t, t, NULL, NULL
FROM (SELECT i, now() - (i % 864000) * interval '1 second' AS t FROM generate_series(1, %(events)s) i) s;
"""


def env_for(database_url: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "EVENTS_LOG_LEVEL": "WARNING",
    }


def migrate(env: dict, target: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "events_app", target, "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def fill_sqlite(path: Path, events: int) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO events_app_game (slug, name, created_at, unknown_events) "
            "VALUES ('bench', 'bench', datetime('now'), 'reject')"
        )
        conn.execute(
            """
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
            INSERT INTO events_app_event (game_id, event_id, event_type, player_id, platform, transaction_id,
                currency, revenue, revenue_base, base_currency, fx_rate, fx_date, occurred_at, sent_at, received_at,
                derived_at, payload, delivery_state, attempts, next_attempt_at, last_error, delivered_at, emitted_at,
                claim_token, claimed_until)
            SELECT 1, lower(hex(randomblob(16))), CASE WHEN i % 20 = 0 THEN 'purchase' ELSE 'install' END,
                'p' || (i % 50000), 'ios', CASE WHEN i % 20 = 0 THEN 't-' || i END,
                CASE WHEN i % 20 = 0 THEN 'USD' ELSE '' END, CASE WHEN i % 20 = 0 THEN '1.99' END, NULL, '', NULL,
                NULL, t, t, t, t,
                json_object('event_type', 'install', 'player_id', 'p' || (i % 50000), 'price', '1.99',
                            'properties', json_object('product_id', 'gems')),
                CASE WHEN i % 200 < 196 THEN 'delivered' WHEN i % 200 < 198 THEN 'pending'
                     WHEN i % 200 = 198 THEN 'failed' ELSE 'dead' END,
                1, CASE WHEN i % 200 IN (196, 197, 198) THEN t END, '', t, t, NULL, NULL
            FROM (SELECT i, datetime('now', '-' || (i % 864000) || ' seconds') AS t FROM n)
            """,
            [events],
        )


def run(kind: str, *, events: int, admin_url: str) -> dict[str, float]:
    if kind == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="bench-migration-"))
        path = folder / "db.sqlite3"
        env = env_for(f"sqlite:///{path}")
        migrate(env, "0008_linked_identities")
        fill_sqlite(path, events)
    else:
        name = "bench_log_migration"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        database_url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
        env = env_for(database_url)
        migrate(env, "0008_linked_identities")
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(FILL_POSTGRES.replace("%(events)s", str(int(events))))
            conn.execute("VACUUM ANALYZE events_app_event")
    return {step: migrate(env, step) for step in STEPS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    for kind in kinds:
        timings = run(kind, events=args.events, admin_url=args.admin_url)
        total = sum(timings.values())
        print(f"\n{kind}: {args.events:,} events of the old table")
        for step, seconds in timings.items():
            print(f"  {step:<26} {seconds:7.1f} s  ({seconds / args.events * 1e6:6.1f} s per million)")
        print(f"  {'all':<26} {total:7.1f} s  ({total / args.events * 1e6:6.1f} s per million)")


if __name__ == "__main__":
    main()
