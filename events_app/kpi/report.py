"""The KPI report: a game's figures per UTC day from the daily aggregates, as kpi_report prints and the admin shows.

One indexed range read of KpiDay, whatever the log holds: days with nothing are
reported with zeros. Rounding is half up (as Snowflake's ROUND), on exact decimals.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone

from events_app.kpi.activity import RETENTION_DAYS
from events_app.models import Game, KpiDay

DEFAULT_DAYS = 30  # the report's default range: the last 30 days through yesterday
MAX_DAYS = 3660  # a range's longest: ten years, bounding what one report reads and prints

# The keys of a report line, in the contract's order.
KEYS = (
    "date",
    "dau",
    "new_players",
    "sessions",
    "avg_session_seconds",
    "purchases",
    "paying_players",
    "revenue_base",
    "ad_revenue_base",
    "arpdau",
    "retention_d1",
    "retention_d7",
    "retention_d30",
)


class RangeError(ValueError):
    """A date range the report refuses, with the reason naming the option."""


@dataclass(frozen=True)
class DayKpis:
    """One day's figures, exact (counts and decimals); `line()` gives the contract's JSON object."""

    day: date
    dau: int
    new_players: int
    sessions: int
    session_ends: int
    session_ms: int
    purchases: int
    paying_players: int
    revenue_base: Decimal
    ad_revenue_base: Decimal
    retained: dict[int, int | None]  # D1/D7/D30: how many of the day's new players came back; None: not yet known

    @property
    def avg_session_seconds(self) -> float | None:
        if not self.session_ends:
            return None
        return float(_round(Decimal(self.session_ms) / self.session_ends / 1000, "0.1"))

    @property
    def arpdau(self) -> Decimal | None:
        if not self.dau:
            return None
        return _round((self.revenue_base + self.ad_revenue_base) / self.dau, "0.0001")

    def retention(self, later: int) -> float | None:
        retained = self.retained[later]
        if retained is None or not self.new_players:
            return None
        return float(_round(Decimal(retained) / self.new_players, "0.0001"))

    def line(self) -> dict:
        """Return the day as the contract's JSON object, keys in order."""
        arpdau = self.arpdau
        return {
            "date": self.day.isoformat(),
            "dau": self.dau,
            "new_players": self.new_players,
            "sessions": self.sessions,
            "avg_session_seconds": self.avg_session_seconds,
            "purchases": self.purchases,
            "paying_players": self.paying_players,
            "revenue_base": str(_round(self.revenue_base, "0.01")),
            "ad_revenue_base": str(_round(self.ad_revenue_base, "0.000001")),
            "arpdau": None if arpdau is None else str(arpdau),
            **{f"retention_d{later}": self.retention(later) for later in RETENTION_DAYS},
        }


def default_range(*, today: date | None = None) -> tuple[date, date]:
    """Return the default range: the last DEFAULT_DAYS days through yesterday."""
    today = today or timezone.now().date()
    return today - timedelta(days=DEFAULT_DAYS), today - timedelta(days=1)


def check_range(start: date, end: date) -> None:
    """Raise RangeError unless `start` <= `end` and the range is at most MAX_DAYS days."""
    if start > end:
        raise RangeError(f"--from ({start}) is after --to ({end}).")
    if (end - start).days + 1 > MAX_DAYS:
        raise RangeError(f"The range from --from to --to is longer than {MAX_DAYS} days.")


def daily_kpis(*, game: Game, start: date, end: date, today: date | None = None) -> list[DayKpis]:
    """Return the game's figures for every day from `start` to `end`, ascending.

    A retention figure is unknown (None) while its later day is `today` (UTC, by
    default now's) or after it: that day's activity is not complete.
    """
    check_range(start, end)
    today = today or timezone.now().date()
    stored = {row.day: row for row in KpiDay.objects.filter(game=game, day__gte=start, day__lte=end)}
    return [_day(day, stored.get(day), today=today) for day in _days(start, end)]


def _day(day: date, row: KpiDay | None, *, today: date) -> DayKpis:
    def count(name: str) -> int:
        return getattr(row, name) if row is not None else 0

    return DayKpis(
        day=day,
        dau=count("dau"),
        new_players=count("new_players"),
        sessions=count("sessions"),
        session_ends=count("session_ends"),
        session_ms=count("session_ms"),
        purchases=count("purchases"),
        paying_players=count("paying_players"),
        revenue_base=row.revenue_base if row is not None else Decimal(0),
        ad_revenue_base=row.ad_revenue_base if row is not None else Decimal(0),
        retained={
            later: count(f"retained_d{later}") if day + timedelta(days=later) < today else None
            for later in RETENTION_DAYS
        },
    )


def _days(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


def _round(value: Decimal, places: str) -> Decimal:
    return Decimal(value).quantize(Decimal(places), rounding=ROUND_HALF_UP)
