"""KPI benchmark: a game's KPI page over 800 days, and the cost the KPIs add to a relay batch.

Usage: .venv/bin/python bench/kpi_page.py [--days 800] [--players 200000] [--repeat 7] [--database-url URL]
       (PostgreSQL: --database-url postgres://postgres:postgres@127.0.0.1:5432/tracker_kpi_bench; the
       database, whose name must end in "bench", is dropped and created again)

Fills a fresh database (by default a SQLite file under bench/results/, git-ignored)
with `--days` days of daily aggregates for 5 games (a million daily players' worth
of counts: the page reads one row per day whatever the players) and `--players`
players' activity bitmaps, then, through Django's test client as a superuser:
the game's own admin page (the baseline) and its KPI page over 30 and over 800 days
(each also reading the previous period as long). Then one relay batch of 1,000
events from 500 players, most already known, counted into the per-hour counts
alone (the baseline) and into the KPIs. Prints the median and worst times.
"""

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GAMES = ["space-raiders", "moon-miners", "star-farm", "cave-golf", "tiny-tanks"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=800)
    parser.add_argument("--players", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    database_url = args.database_url or f"sqlite:///{ROOT / 'bench' / 'results' / 'kpi_bench.sqlite3'}"
    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        for leftover in path.parent.glob(path.name + "*"):
            leftover.unlink()
    else:
        recreate_postgres_database(database_url)
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracking_project.settings")
    os.environ.setdefault("EVENTS_LOG_LEVEL", "WARNING")

    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    today = datetime.now(UTC).date()
    games = fill(days=args.days, players=args.players, today=today)
    User.objects.create_superuser("bench", password="bench-password-1")
    client = Client()
    client.force_login(User.objects.get(username="bench"))
    game = games[0]
    yesterday = today - timedelta(days=1)
    pages = {
        "game page (baseline)": f"/admin/events_app/game/{game.pk}/change/",
        "KPI page, 30 days": f"/admin/events_app/game/{game.pk}/kpis/",
        f"KPI page, {args.days} days": (
            f"/admin/events_app/game/{game.pk}/kpis/?from={today - timedelta(days=args.days)}&to={yesterday}"
        ),
    }
    print(f"database: {database_url.split('@')[-1]}, {args.days} days x {len(games)} games, {args.players:,} players")
    for name, url in pages.items():
        times = []
        for _ in range(args.repeat + 1):
            started = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, (url, response.status_code)
        report(name, times[1:])  # the first warms the caches
    batch(game=game, players=args.players, today=today, repeat=args.repeat)


def fill(*, days: int, players: int, today: date) -> list:
    """Create the games, `days` days of aggregates each, and `players` activity rows spread over the games."""
    from events_app.kpi.activity import Activity
    from events_app.kpi.store import write_players
    from events_app.models import Game, KpiDay

    rng = random.Random(7)
    games = [Game.objects.create(slug=slug) for slug in GAMES]
    rows = []
    for game in games:
        for back in range(1, days + 1):
            dau = rng.randrange(800_000, 1_200_000)
            rows.append(
                KpiDay(
                    game=game,
                    day=today - timedelta(days=back),
                    dau=dau,
                    new_players=dau // 20,
                    sessions=dau * 2,
                    session_ends=dau * 2,
                    session_ms=dau * 2 * 420_000,
                    purchases=dau // 40,
                    paying_players=dau // 50,
                    revenue_base=Decimal(dau // 40) * Decimal("4.99"),
                    ad_revenue_base=Decimal(dau) * Decimal("0.004125"),
                    retained_d1=dau // 20 * 4 // 10,
                    retained_d7=dau // 20 * 15 // 100,
                    retained_d30=dau // 20 * 6 // 100,
                )
            )
    KpiDay.objects.bulk_create(rows, batch_size=2000)
    states = {}
    for number in range(players):
        first = today - timedelta(days=rng.randrange(1, days))
        activity = Activity(first)
        for _ in range(rng.randrange(1, 40)):
            activity.add(min(first + timedelta(days=rng.randrange(0, 120)), today), paid=rng.random() < 0.02)
        states[(games[number % len(games)].pk, f"player-{number}")] = activity
        if len(states) == 20_000:
            write_players(states)
            states = {}
    write_players(states)
    return games


def batch(*, game, players: int, today: date, repeat: int) -> None:
    """Time a relay batch's counting: per-hour counts alone, then with the KPIs (first events of a day, then not)."""
    from django.db import transaction

    from events_app.delivery import hours
    from events_app.kpi import counting

    rng = random.Random(11)
    now = datetime.now(UTC)
    known = [f"player-{number}" for number in range(0, players, 5)]  # the game's own players (number % 5 == 0)
    rows = []
    for _ in range(1000):
        player = rng.choice(known) if rng.random() < 0.9 else f"new-{uuid.uuid4().hex[:12]}"
        kind = rng.choice(["session_start", "session_end", "ad_impression", "progression", "purchase"])
        payload = {
            "event_type": kind,
            "player_id": player,
            "derived_at": now.isoformat().replace("+00:00", "Z"),
            "platform": "android",
            "properties": {"duration_ms": 300_000} if kind == "session_end" else {},
            "revenue_base": "4.99" if kind == "purchase" else None,
        }
        rows.append(SimpleNamespace(game_id=game.pk, received_at=now, payload=payload))
    # The same batch from 1,000 known players already counted today: the steady state, where
    # a player's events after their first of the day change no bitmap.
    again = [
        SimpleNamespace(game_id=row.game_id, received_at=now, payload={**row.payload, "player_id": f"player-{number}"})
        for number, row in zip(range(0, 5000, 5), rows, strict=True)
    ]
    with transaction.atomic():  # as the relay calls it: inside its recording transaction
        counting.add_lines(again)
    for name, count in (
        ("relay batch of 1,000: hour counts only (baseline)", lambda: hours.add(hours.count_lines(rows))),
        (
            "relay batch of 1,000: hour counts and KPIs",
            lambda: (hours.add(hours.count_lines(rows)), counting.add_lines(rows)),
        ),
        (
            "... players already active today (no bitmap changes)",
            lambda: (hours.add(hours.count_lines(again)), counting.add_lines(again)),
        ),
    ):
        times = []
        for _ in range(repeat):
            with transaction.atomic():
                started = time.perf_counter()
                count()
                times.append(time.perf_counter() - started)
                transaction.set_rollback(True)
        report(name, times)


def report(name: str, times: list[float]) -> None:
    print(f"{name:55s} median {statistics.median(times) * 1000:7.1f} ms   worst {max(times) * 1000:7.1f} ms")


def recreate_postgres_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    if not name.endswith("bench"):
        raise SystemExit(f"Refusing to drop {name!r}: a benchmark database's name must end in 'bench'.")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


if __name__ == "__main__":
    main()
