"""Admin benchmark: the event list, its time ranges, search, the dashboard and a game's page over a million events.

Usage: .venv/bin/python bench/admin_list.py [--events 1000000] [--database-url URL] [--reuse] [--resend]
       (PostgreSQL: --database-url postgres://postgres@127.0.0.1:5432/tracker_admin_bench; the database,
       whose name must end in "bench", is dropped and created again unless --reuse)

Fills a fresh database (by default a SQLite file under bench/results/, git-ignored)
with 30 days of events spread like production (5 games of unequal size, 3 installs
to 1 purchase; delivered as the relay leaves them: each shard's cursor past everything
older than 10 minutes, one relay call row per 2,000 events, and delivery issues for
~1.5% failed, ~0.5% dead and ~0.5% resent and pending again), then renders
admin pages through Django's test client as a logged-in superuser, several times
each, and prints the times. The target: the filtered event list under 1 s.
`--reuse` keeps a database that already holds the events; `--resend` also times
"resend all matching" over every dead event of the biggest game (it changes them).
"""

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GAMES = [("space-raiders", 0.40), ("moon-miners", 0.25), ("star-farm", 0.15), ("cave-golf", 0.12), ("tiny-tanks", 0.08)]
PLATFORMS = [("android", 0.45), ("ios", 0.40), ("web", 0.05), ("windows", 0.04), ("switch", 0.03), ("macos", 0.03)]
CURRENCIES = [("USD", 0.4, 1.0), ("EUR", 0.3, 0.92), ("GBP", 0.1, 0.79), ("BRL", 0.1, 5.0), ("CAD", 0.1, 1.36)]
PRICES = ["0.99", "1.99", "4.99", "9.99", "19.99", "49.99"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="", help="default: a SQLite file in bench/results/")
    parser.add_argument("--reuse", action="store_true", help="keep a database that already has the events")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--resend", action="store_true", help="also time resending every dead event of one game")
    parser.add_argument("--verbose", action="store_true", help="print the slowest queries of each page")
    parser.add_argument(
        "--no-analyze", action="store_true", help="skip ANALYZE (PostgreSQL: VACUUM ANALYZE) after loading"
    )
    args = parser.parse_args()

    database_url = args.database_url or f"sqlite:///{ROOT / 'bench' / 'results' / 'admin_bench.sqlite3'}"
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        if not args.reuse:
            for leftover in path.parent.glob(path.name + "*"):
                leftover.unlink()
    elif not args.reuse:
        recreate_postgres_database(database_url)
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_DEBUG", "1")  # development settings; the pages render as in production
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracking_project.settings")
    os.environ.setdefault("EVENTS_LOG_LEVEL", "WARNING")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from events_app.models import Event

    call_command("migrate", verbosity=0)
    if args.reuse and Event.objects.order_by().count() >= args.events:
        print(f"reusing {database_url}")
    else:
        if args.reuse:
            from events_app.models import DeliveryCall, DeliveryCursor, DeliveryIssue

            for model in (DeliveryIssue, DeliveryCall, DeliveryCursor, Event):
                model.objects.all().delete()
        started = time.perf_counter()
        load(args.events, analyze=not args.no_analyze)
        print(f"loaded {args.events:,} events into {connection.vendor} in {time.perf_counter() - started:.0f} s")
    time_pages(repeat=args.repeat, verbose=args.verbose)
    if args.resend:
        time_resend()


def recreate_postgres_database(database_url: str) -> None:
    """Drop and create the benchmark's PostgreSQL database (its name must end in "bench", to be safe)."""
    from urllib.parse import urlsplit

    import psycopg

    url = urlsplit(database_url)
    name = url.path.lstrip("/")
    if not name.endswith("bench"):
        raise SystemExit(f"refusing to recreate database {name!r}: give one whose name ends in 'bench'")
    with psycopg.connect(url._replace(path="/postgres").geturl(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')


def weighted(choices, k: int, rng: random.Random) -> list:
    return rng.choices([c[0] for c in choices], weights=[c[1] for c in choices], k=k)


# Events younger than this are still ahead of the relay's cursor (the relay lag).
RELAY_LAG = timedelta(minutes=10)
EVENTS_PER_CALL = 2000  # the relay's batch (EVENTS_DELIVERY_BATCH_SIZE's default), one call of ~800 KB
ERROR = "ServiceUnavailableException: Slow down."


def load(count: int, *, analyze: bool) -> None:
    """Insert `count` events over the last 30 days, oldest first, as fast as the database takes them.

    Then the delivery rows the relay would have written: the cursors, the calls, the issues.
    """
    import orjson
    from django.db import connection, transaction
    from django.db.models.fields import NOT_PROVIDED

    from events_app import conf, logstore
    from events_app.ingest.service import relay_shard
    from events_app.models import Event, Game, RejectedEvent

    rng = random.Random(42)
    now = datetime.now(UTC)
    shards = conf.relay_shards()
    # Where the log is partitioned by day (PostgreSQL), the 30 days loaded need their partitions.
    getattr(logstore, "ensure_partitions", lambda **_: None)(back=31)
    games = {slug: Game.objects.get_or_create(slug=slug, defaults={"name": slug})[0] for slug, _ in GAMES}
    # txid is the database's to fill (the inserting transaction on PostgreSQL).
    fields = [f for f in Event._meta.concrete_fields if not f.primary_key and f.db_default is NOT_PROVIDED]
    columns = [f.column for f in fields]
    times = sorted(now - timedelta(seconds=rng.uniform(0, 30 * 86400)) for _ in range(count))
    sqlite = connection.vendor == "sqlite"

    def stamp(value: datetime | None):
        if value is None or not sqlite:
            return value
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")

    issues: dict[int, tuple[str, int]] = {}  # insertion index -> (issue state, attempts)

    def rows():
        game_slugs = weighted(GAMES, count, rng)
        platforms = weighted(PLATFORMS, count, rng)
        for index, received in enumerate(times):
            slug, platform = game_slugs[index], platforms[index]
            event_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            age = now - received
            roll = rng.random()
            if age >= RELAY_LAG:  # passed by the relay; a few of them needed more than its one pass
                if roll < 0.015:
                    issues[index] = ("failed", rng.randint(1, 6))
                elif roll < 0.02:
                    issues[index] = ("dead", 12)
                elif roll < 0.025:
                    issues[index] = ("pending", 1)  # resent by an operator, not sent again yet
            purchase = rng.random() < 0.25
            payload = {
                "schema_version": 1,
                "event_id": str(event_id),
                "event_type": "purchase" if purchase else "install",
                "game": slug,
                "player_id": f"player-{rng.randint(1, 200_000)}",
                "occurred_at": received.isoformat(),
                "sent_at": None,
                "received_at": received.isoformat(),
                "derived_at": received.isoformat(),
                "platform": platform,
                "app_version": "3.2.1",
                "session_id": None,
                "properties": {"store": "google_play"},
                "context": {},
            }
            values = {
                "game_id": games[slug].pk,
                "event_id": event_id.hex if sqlite else event_id,
                "event_type": payload["event_type"],
                "player_id": payload["player_id"],
                "platform": platform,
                "transaction_id": None,
                "currency": "",
                "revenue": None,
                "revenue_base": None,
                "base_currency": "",
                "fx_rate": None,
                "fx_date": None,
                "occurred_at": stamp(received),
                "sent_at": None,
                "received_at": stamp(received),
                "derived_at": stamp(received),
                "shard": relay_shard(game_id=games[slug].pk, player_id=payload["player_id"], shards=shards),
            }
            if purchase:
                currency, _, rate = CURRENCIES[rng.choices(range(5), weights=[c[1] for c in CURRENCIES])[0]]
                price = rng.choice(PRICES)
                payload["properties"] = {
                    "transaction_id": f"txn-{index}",
                    "product_id": "gems",
                    "price": price,
                    "currency": currency,
                    "quantity": 1,
                }
                payload.update(price=price, quantity=1, currency=currency, revenue=price)
                values.update(transaction_id=f"txn-{index}", currency=currency, revenue=price)
                if rng.random() < 0.95:  # the rest wait for an exchange rate
                    values.update(
                        revenue_base=f"{float(price) / rate:.6f}",
                        base_currency="USD",
                        fx_rate=f"{rate:.12f}",
                        fx_date=received.date(),
                    )
            values["payload"] = orjson.dumps(payload).decode()
            yield [values[f.attname] for f in fields]

    table = Event._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        if sqlite:
            placeholders = ", ".join(["%s"] * len(columns))
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
            batch: list = []
            for row in rows():
                batch.append(row)
                if len(batch) == 10_000:
                    cursor.executemany(sql, batch)
                    batch.clear()
            if batch:
                cursor.executemany(sql, batch)
        else:
            with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows():
                    copy.write_row(row)
    relay_rows(now=now, issues=issues)
    RejectedEvent.objects.bulk_create(
        RejectedEvent(
            game=games[slug],
            received_at=now - timedelta(minutes=i),
            errors={"player_id": ["This field may not be blank."]},
            body='{"event_type": "install", "player_id": ""}',
        )
        for i, slug in enumerate(weighted(GAMES, 2000, rng))
    )
    if analyze:
        # What autovacuum does on PostgreSQL soon after a load: statistics, and the
        # visibility map that lets index-only scans skip the table.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE" if sqlite else f"VACUUM ANALYZE {table}")
            if not sqlite:
                cursor.execute("ANALYZE")  # the delivery rows, the per-hour counts, the purchase keys


def relay_rows(*, now: datetime, issues: dict[int, tuple[str, int]]) -> None:
    """Write what the relay would have: each shard's cursor past the events older than RELAY_LAG, its calls, the issues.

    The events were inserted oldest first into an empty table, so the n-th smallest id
    is the n-th event inserted.
    """
    from django.db import connection

    from events_app import logstore
    from events_app.models import DeliveryCursor, DeliveryIssue, Event

    ids = list(Event.objects.order_by("pk").values_list("pk", flat=True))
    for shard in Event.objects.order_by().values_list("shard", flat=True).distinct():
        last = Event.objects.filter(shard=shard, received_at__lt=now - RELAY_LAG).order_by("-pk").values("pk").first()
        position = logstore.position_of(last["pk"]) if last else logstore.Position(0, 0)
        DeliveryCursor.objects.update_or_create(
            shard=shard,
            defaults={"last_txid": position.txid, "last_event": position.event, "moved_at": now - RELAY_LAG},
        )
    table = connection.ops.quote_name(Event._meta.db_table)
    txid = "e.txid::text::bigint" if connection.vendor == "postgresql" else "e.txid"
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO events_app_deliverycall (called_at, emitted_at, destination, sender, shard, first_txid, "
            "first_event, last_txid, last_event, events, failed_events, records, bytes, outcome, error) "
            "SELECT MAX(received_at), MAX(received_at), 'firehose', 'relay', shard, MIN(t), MIN(id), MAX(t), MAX(id), "
            "COUNT(*), 0, 7, COUNT(*) * 400, 'delivered', '' FROM ("
            f"SELECT e.id, e.shard, e.received_at, {txid} AS t, "
            "ROW_NUMBER() OVER (PARTITION BY e.shard ORDER BY e.id) AS n "
            f"FROM {table} e JOIN events_app_deliverycursor c ON c.shard = e.shard WHERE e.id <= c.last_event"
            f") passed GROUP BY shard, (n - 1) / {EVENTS_PER_CALL}"
        )
        # The per-hour counts the relay adds as it sends (EventHour), for the events it passed.
        hour = (
            "substr(e.received_at, 1, 13) || ':00:00'"
            if connection.vendor == "sqlite"
            else "date_trunc('hour', e.received_at)"
        )
        cursor.execute(
            "INSERT INTO events_app_eventhour "
            "(hour, game_id, event_type, platform, currency, events, revenue_base) "
            f"SELECT {hour}, e.game_id, e.event_type, e.platform, e.currency, "
            "COUNT(*), COALESCE(SUM(e.revenue_base), 0) "
            f"FROM {table} e JOIN events_app_deliverycursor c ON c.shard = e.shard WHERE e.id <= c.last_event "
            f"GROUP BY {hour}, e.game_id, e.event_type, e.platform, e.currency"
        )
        # The purchases' keys, as ingest claims them (events_app.idempotency): the admin's transaction search.
        cursor.execute(
            "INSERT INTO events_app_purchasekey "
            "(game_id, transaction_id, event_id, player_id, product_id, price, currency, received_at) "
            f"SELECT game_id, transaction_id, event_id, player_id, 'gems', revenue, currency, received_at FROM {table} "
            "WHERE transaction_id IS NOT NULL"
        )
    by_pk = {ids[index]: issue for index, issue in issues.items()}
    chosen = sorted(by_pk)
    for start in range(0, len(chosen), 5000):
        events = Event.objects.filter(pk__in=chosen[start : start + 5000]).only("game_id", "received_at", "payload")
        DeliveryIssue.objects.bulk_create(issue_of(event, *by_pk[event.pk]) for event in events)


def issue_of(event, state: str, attempts: int):
    """Return the delivery issue of `event` in `state` after `attempts` attempts, as the retry worker leaves it."""
    from events_app.models import DeliveryIssue

    return DeliveryIssue(
        event_id=event.pk,
        game_id=event.game_id,
        received_at=event.received_at,
        payload=event.payload,
        state=state,
        attempts=attempts,
        next_attempt_at=None if state == "dead" else event.received_at + RELAY_LAG,
        last_error=ERROR,
        opened_at=event.received_at,
        resent_at=event.received_at + RELAY_LAG if state == "pending" else None,
    )


def time_pages(*, repeat: int, verbose: bool) -> None:
    """Render each page `repeat` times after one warm-up; print the fastest and median times."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from events_app.models import Event, Game

    user, _ = User.objects.get_or_create(username="bench", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)
    big = Game.objects.get(slug="space-raiders")
    events = reverse("admin:events_app_event_changelist")
    sample = (
        Event.objects.filter(game=big).order_by("-pk").values("pk", "event_id", "player_id", "transaction_id")[5000]
    )
    purchase = Event.objects.filter(game=big, event_type="purchase").order_by("-pk").values("transaction_id")[5000]
    older = Event.objects.order_by("-pk").values_list("pk", flat=True)[20_000]
    pages = [
        ("list, default (last 24 hours)", events),
        ("list, one game", f"{events}?game__id__exact={big.pk}"),
        ("list, failed events of one game", f"{events}?delivery_state=failed&game__id__exact={big.pk}"),
        ("list, dead events", f"{events}?delivery_state=dead"),
        ("list, pending events", f"{events}?delivery_state=pending"),
        ("list, purchases in EUR", f"{events}?event_type=purchase&currency=EUR"),
        ("list, purchases in CAD, 30 days", f"{events}?event_type=purchase&currency=CAD&received=30d"),
        ("list, windows, one game, 7 days", f"{events}?platform=windows&game__id__exact={big.pk}&received=7d"),
        ("list, older page", f"{events}?before={older}"),
        ("list, all time", f"{events}?received=all"),
        ("search, player id", f"{events}?q={sample['player_id']}&received=all"),
        ("search, event id (24 h)", f"{events}?q={sample['event_id']}"),
        ("search, transaction id", f"{events}?q={purchase['transaction_id']}"),
        ("event page", reverse("admin:events_app_event_change", args=[sample["pk"]])),
        ("dashboard", reverse("admin:events_app_event_dashboard")),
        ("dashboard, one game", reverse("admin:events_app_event_dashboard") + "?game=space-raiders"),
        ("game page", reverse("admin:events_app_game_change", args=[big.pk])),
    ]
    print(f"{'page':<34} {'fastest':>9} {'median':>9} {'queries':>8}")
    for name, url in pages:
        queries: list[tuple[float, str]] = []

        def timed(execute, sql, params, many, context, queries=queries):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                queries.append((time.perf_counter() - started, sql))

        with connection.execute_wrapper(timed):
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            client.get(url)
            timings.append(time.perf_counter() - started)
        print(f"{name:<34} {min(timings) * 1000:7.0f}ms {statistics.median(timings) * 1000:7.0f}ms {len(queries):>8}")
        if verbose:
            for seconds, sql in sorted(queries, reverse=True)[:5]:
                print(f"    {seconds * 1000:7.1f}ms  {sql[:300]}")


def time_resend() -> None:
    from django.contrib.auth.models import User
    from django.test import Client
    from django.urls import reverse

    from events_app.models import DeliveryIssue, Game

    client = Client()
    client.force_login(User.objects.get(username="bench"))
    big = Game.objects.get(slug="space-raiders")
    dead = DeliveryIssue.objects.filter(game=big, state="dead").count()
    url = reverse("admin:events_app_event_resend_matching") + f"?delivery_state=dead&game__id__exact={big.pk}"
    started = time.perf_counter()
    response = client.post(url)
    elapsed = time.perf_counter() - started
    assert response.status_code == 302
    print(f"resend all matching: {dead:,} dead events of one game in {elapsed:.2f} s")


if __name__ == "__main__":
    main()
