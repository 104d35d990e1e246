"""Delivery benchmark: one worker relaying a large backlog into moto's Firehose.

Usage: .venv/bin/python bench/delivery.py [--events 1000000] [--database-url URL]

Fills a fresh database with events no relay has passed yet (plain inserts, the way
the API stores them), then runs `manage.py deliver_events --once` against moto's
server and prints records/s, PutRecordBatch calls per 10,000 events (moto writes one
S3 object per call), the rows the relay wrote (DeliveryCall rows, DeliveryIssue rows:
none in a healthy run, whatever the backlog), and the worker's resident memory as the
backlog drains (its peak too, from the kernel's VmHWM), to show it stays flat however
large the backlog.
"""

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import ensure_postgres_database, put_record_batch_calls  # noqa: E402

from devtools.processes import free_port, moto_server  # noqa: E402


def memory_kib(pid: int) -> tuple[int, int]:
    """Return (current RSS, peak RSS) of `pid` in KiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def fill(env: dict, count: int) -> None:
    """Insert `count` events with the app's own row builder and insert statement (none relayed yet)."""
    code = f"""
import uuid
from datetime import UTC, datetime
from django.utils import timezone
from events_app import conf
from events_app.ingest import service
from events_app.ingest.storage import insert_events
from events_app.api.keys import issue_api_key
from events_app.delivery.records import build_payload
from events_app.ingest.serializers import EventSerializer

api_key, _ = issue_api_key(game_slug="bench-game")
now = timezone.now()
serializer = EventSerializer(context={{"received_at": now, "batch_sent_at": None}})
template = serializer.run_validation({{
    "event_type": "install", "player_id": "player-1", "occurred_at": now.isoformat(),
    "platform": "ios", "app_version": "1.4.2",
    "properties": {{"store": "app_store", "campaign": "summer", "country": "FR",
                    "device_model": "iPhone15,2", "os_version": "18.1"}},
}})
rows = []
for n in range({count}):
    event_id = uuid.uuid4()
    data = dict(template, player_id=f"player-{{n % 50000}}")
    payload = build_payload(event=data, event_id=str(event_id), game_slug="bench-game")
    rows.append(service._row(game_id=api_key.game_id, event_id=event_id, data=data, payload=payload,
                            shards=conf.relay_shards()))
    if len(rows) == 500:
        insert_events(rows)
        rows = []
if rows:
    insert_events(rows)
"""
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-c", code], env=env, check=True)


def written(env: dict) -> str:
    """Return the delivery rows in the database: calls by outcome, issues by state, the cursors."""
    code = """
from django.db.models import Count
from events_app.models import DeliveryCall, DeliveryCursor, DeliveryIssue
calls = dict(DeliveryCall.objects.values_list("outcome").annotate(n=Count("pk")).order_by())
issues = dict(DeliveryIssue.objects.values_list("state").annotate(n=Count("pk")).order_by())
cursors = DeliveryCursor.objects.count()
print(f"calls={sum(calls.values())} {calls} issues={sum(issues.values())} {issues} cursors={cursors}")
"""
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "shell", "-v", "0", "-c", code],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    moto_port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tracking_project.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECURE_SSL_REDIRECT": "0",  # plain HTTP on loopback, as behind a TLS-ending proxy
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),  # production mode refuses a weak key
        "DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}",
        "EVENTS_LOG_LEVEL": "WARNING",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    if args.database_url.startswith("postgres"):
        ensure_postgres_database(args.database_url)
    if args.database_url:
        subprocess.run([*manage, "flush", "--noinput"], env=env, check=False, capture_output=True)
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True)
    started = time.perf_counter()
    fill(env, args.events)
    print(f"filled {args.events:,} events to relay in {time.perf_counter() - started:.0f} s")

    with moto_server(moto_port):
        subprocess.run([*manage, "ensure_firehose"], env=env, check=True, capture_output=True)
        started = time.perf_counter()
        worker = subprocess.Popen([*manage, "deliver_events", "--once"], env=env, stdout=subprocess.PIPE, text=True)
        samples = []
        while worker.poll() is None:
            try:
                samples.append((time.perf_counter() - started, *memory_kib(worker.pid)))
            except FileNotFoundError:
                break
            time.sleep(0.5)
        summary = worker.communicate()[0].strip()
        seconds = time.perf_counter() - started
        calls = put_record_batch_calls(env["AWS_ENDPOINT_URL"])

    print(f"worker: {summary}")
    print(f"rows written by delivery: {written(env)}")
    print(
        f"delivery: {args.events / seconds:,.0f} events/s ({seconds:.0f} s incl. start-up), "
        f"{calls} PutRecordBatch calls = {calls * 10_000 / args.events:.1f} per 10,000 events"
    )
    peak = max(sample[2] for sample in samples) if samples else 0
    print(f"worker memory: peak {peak / 1024:.0f} MiB; RSS over time (s: MiB):")
    step = max(1, len(samples) // 10)
    print("  " + ", ".join(f"{t:.0f}: {rss / 1024:.0f}" for t, rss, _ in samples[::step]))


if __name__ == "__main__":
    main()
