"""A synthetic history for the KPI tests: several hundred players over 40 days, sent day by day through the pipeline.

`build_history` ingests each day's events at the end of that day (late ones days
later, some twice, another game's too) and relays them; `expected` computes every
column of kpi_report from the events as sent, independently of the aggregates.
"""

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import orjson
import time_machine

from events_app import logstore
from events_app.api.keys import issue_api_key
from events_app.delivery import engine
from events_app.ingest.service import ingest_events

START = date(2026, 10, 1)
DAYS = 40
TODAY = START + timedelta(days=DAYS)  # the report runs on the day after the history
PLAYERS = 300
KWD_DAY = START + timedelta(days=25)  # a purchase in a currency with no rate that day


class KeepingDestination:
    """A destination that takes every record and keeps its lines (the S3 of the warehouse parity test)."""

    name = "keeping"
    keyed = False

    class limits:
        max_record_bytes = 1000 * 1024
        max_call_records = 500
        max_call_bytes = 4 * 1024 * 1024
        billing_unit_bytes = 5 * 1024

    def __init__(self):
        self.lines: list[bytes] = []

    def partition_key(self, payload):
        return None

    def open(self, *, policy):
        pass

    def send(self, records, *, policy):
        for record in records:
            self.lines.extend(record.data.splitlines())
        return [None] * len(records)

    def ensure(self):
        return []


@dataclass
class History:
    """What was sent: each accepted event once (with its game), and the destination that received the lines."""

    game_slug: str
    events: list[dict] = field(default_factory=list)  # game A's events, each once
    destination: KeepingDestination = field(default_factory=KeepingDestination)
    sent_day: dict[str, date] = field(default_factory=dict)  # event_id -> the day it was received
    duplicates_sent: int = 0
    late_sent: int = 0


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _event(event_type: str, player: str, occurred: datetime, properties: dict, **extra) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "player_id": player,
        "occurred_at": rfc3339(occurred),
        "platform": "android",
        "properties": properties,
        **extra,
    }


def _player_days(rng: random.Random, player: str, day: date, *, purchase_chance: float) -> list[dict]:
    """Return one active day's events of a player: a session (start, end), maybe an ad, maybe a purchase."""
    hour = rng.randrange(1, 21)
    session = f"s-{uuid.uuid4().hex[:8]}"
    events = [
        _event("session_start", player, at(day, hour), {}, session_id=session),
        _event(
            "session_end",
            player,
            at(day, hour, 30),
            {"duration_ms": rng.randrange(30_000, 3_600_000)},
            session_id=session,
        ),
    ]
    if rng.random() < 0.3:
        revenue = Decimal(rng.randrange(1, 50_000)) / 1_000_000
        events.append(
            _event(
                "ad_impression",
                player,
                at(day, hour, 10),
                {"ad_network": "admob", "ad_format": "rewarded", "revenue": str(revenue), "currency": "USD"},
            )
        )
    if rng.random() < purchase_chance:
        price = rng.choice(["0.99", "4.99", "19.99"])
        events.append(
            _event(
                "purchase",
                player,
                at(day, hour, 20),
                {"transaction_id": f"t-{uuid.uuid4()}", "product_id": "gems", "price": price, "currency": "USD"},
            )
        )
    return events


def plan(seed: int = 22) -> tuple[dict[date, list[dict]], dict[date, list[dict]], list[dict]]:
    """Return (game A's events by the day they are sent, the repeats sent by day, game B's events by day).

    Every player installs on a first day and comes back on later days at a rate of
    their own; about one event in twenty arrives one to three days late; one in
    thirty is sent again the next day (a duplicate). Game B uses the same player ids.
    """
    rng = random.Random(seed)
    by_sent_day: dict[date, list[dict]] = defaultdict(list)
    repeats: dict[date, list[dict]] = defaultdict(list)
    last = START + timedelta(days=DAYS - 1)
    for number in range(PLAYERS):
        player = f"p{number:03d}"
        first = rng.randrange(0, DAYS - 2)
        comeback = rng.choice([0.1, 0.3, 0.6])
        purchase_chance = 0.25 if number % 12 == 0 else 0.0  # a few percent of players pay
        for offset in range(first, DAYS):
            if offset != first and rng.random() >= comeback:
                continue
            day = START + timedelta(days=offset)
            events = _player_days(rng, player, day, purchase_chance=purchase_chance)
            if offset == first:
                events.insert(0, _event("install", player, at(day, 0, 30), {"store": "google_play", "country": "DE"}))
            for event in events:
                sent = day
                if rng.random() < 0.05:
                    sent = min(day + timedelta(days=rng.randrange(1, 4)), last)
                by_sent_day[sent].append(event)
                if rng.random() < 1 / 30:
                    repeats[min(sent + timedelta(days=1), last)].append(event)
    # A player first seen on day 20, whose day-12 and day-13 events arrive on day 22: their cohort is day 12.
    mover = "late-first"
    for offset, sent_offset in ((20, 20), (21, 21), (12, 22), (13, 22)):
        day = START + timedelta(days=offset)
        by_sent_day[START + timedelta(days=sent_offset)] += _player_days(rng, mover, day, purchase_chance=0)
    # A purchase in KWD, which has no rate until the test imports one (then reconvert).
    by_sent_day[KWD_DAY].append(
        _event(
            "purchase",
            "p000",
            at(KWD_DAY, 22),
            {"transaction_id": "t-kwd", "product_id": "gems", "price": "1.250", "currency": "KWD"},
        )
    )
    other = [
        event
        for number in range(50)
        for offset in range(0, DAYS, 3)
        for event in _player_days(rng, f"p{number:03d}", START + timedelta(days=offset), purchase_chance=0.2)
    ]
    return by_sent_day, repeats, other


def build_history(*, game_slug: str = "space-raiders", seed: int = 22) -> History:
    """Send the planned history day by day (each day's batch at 23:30 UTC of that day) and relay it after each day."""
    key, _ = issue_api_key(game_slug=game_slug, name="kpi history")
    other_key, _ = issue_api_key(game_slug="other-game", name="kpi history")
    by_sent_day, repeats, other = plan(seed)
    other_by_day = defaultdict(list)
    for event in other:
        other_by_day[event["occurred_at"][:10]].append(event)
    history = History(game_slug=game_slug)
    for offset in range(DAYS):
        day = START + timedelta(days=offset)
        with time_machine.travel(at(day, 23, 30), tick=False):
            logstore.ensure_partitions(ahead=0, back=0)  # PostgreSQL: the day's own partition, so a purge drops it
            sent = by_sent_day.get(day, [])
            _ingest(key, sent, expect_duplicates=0)
            _ingest(key, repeats.get(day, []), expect_duplicates=len(repeats.get(day, [])))
            _ingest(other_key, other_by_day.get(day.isoformat(), []), expect_duplicates=0)
            while engine.deliver_due(destination=history.destination).relayed:
                pass
        history.events += sent
        history.sent_day.update((event["event_id"], day) for event in sent)
        history.duplicates_sent += len(repeats.get(day, []))
        history.late_sent += sum(1 for event in sent if event["occurred_at"][:10] != day.isoformat())
    return history


def _ingest(key, events: list[dict], *, expect_duplicates: int) -> None:
    from django.utils import timezone

    for start in range(0, len(events), 500):
        chunk = events[start : start + 500]
        outcome = ingest_events(api_key=key, raw_events=chunk, received_at=timezone.now())
        assert outcome.rejected == 0, outcome.results
    if expect_duplicates:
        assert outcome.duplicates == expect_duplicates


# The figures, computed from the events as sent


def expected(
    events: list[dict],
    *,
    start: date,
    end: date,
    today: date = TODAY,
    kwd_base: Decimal | None = None,
    erased: set[str] = frozenset(),
    erased_after_purge: set[str] = frozenset(),
    purged: set[str] = frozenset(),
) -> list[dict]:
    """Return kpi_report's lines for game A's `events`, computed directly.

    `kwd_base`: the KWD purchase's base amount once reconverted (None: left out).
    `erased`: players taken out entirely. `erased_after_purge`: players erased after
    the log lost the events `purged` (event ids): out of the player figures, but
    those events still in the event sums (docs/kpi.md).
    """
    gone = set(erased) | set(erased_after_purge)
    days: dict[str, dict] = defaultdict(
        lambda: {
            "players": set(),
            "payers": set(),
            "sessions": 0,
            "durations": [],
            "purchases": 0,
            "revenue": Decimal(0),
            "ads": Decimal(0),
        }
    )
    first_day: dict[str, date] = {}
    active: dict[str, set[date]] = defaultdict(set)
    for event in events:
        player = event["player_id"]
        day = date.fromisoformat(event["occurred_at"][:10])
        if player in erased:
            continue
        if player in erased_after_purge and event["event_id"] not in purged:
            continue
        figures = days[day.isoformat()]
        kind, properties = event["event_type"], event["properties"]
        if kind == "session_start":
            figures["sessions"] += 1
        elif kind == "session_end":
            figures["durations"].append(properties["duration_ms"])
        elif kind == "purchase":
            figures["purchases"] += 1
            if properties["currency"] == "USD":
                figures["revenue"] += Decimal(properties["price"])
            elif kwd_base is not None:
                figures["revenue"] += kwd_base
        elif kind == "ad_impression":
            figures["ads"] += Decimal(properties["revenue"])
        if player in gone:
            continue
        figures["players"].add(player)
        if kind == "purchase":
            figures["payers"].add(player)
        active[player].add(day)
        first_day[player] = min(first_day.get(player, day), day)
    cohorts: dict[date, list[str]] = defaultdict(list)
    for player, day in first_day.items():
        cohorts[day].append(player)
    lines = []
    day = start
    while day <= end:
        figures = days[day.isoformat()]
        dau = len(figures["players"])
        new = cohorts.get(day, [])
        revenue, ads = figures["revenue"], figures["ads"]
        durations = figures["durations"]

        def retention(later: int, day=day, new=new) -> float | None:
            if day + timedelta(days=later) >= today or not new:
                return None
            back = sum(1 for player in new if day + timedelta(days=later) in active[player])
            return float(_round(Decimal(back) / len(new), "0.0001"))

        lines.append(
            {
                "date": day.isoformat(),
                "dau": dau,
                "new_players": len(new),
                "sessions": figures["sessions"],
                "avg_session_seconds": float(_round(Decimal(sum(durations)) / len(durations) / 1000, "0.1"))
                if durations
                else None,
                "purchases": figures["purchases"],
                "paying_players": len(figures["payers"]),
                "revenue_base": str(_round(revenue, "0.01")),
                "ad_revenue_base": str(_round(ads, "0.000001")),
                "arpdau": str(_round((revenue + ads) / dau, "0.0001")) if dau else None,
                "retention_d1": retention(1),
                "retention_d7": retention(7),
                "retention_d30": retention(30),
            }
        )
        day += timedelta(days=1)
    return lines


def parse_lines(output: str) -> list[dict]:
    return [orjson.loads(line) for line in output.splitlines() if line.strip()]


def _round(value: Decimal, places: str) -> Decimal:
    return value.quantize(Decimal(places), rounding=ROUND_HALF_UP)
