"""A period's KPIs in total, and the change from the period just before it: the admin page's summary."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from events_app.kpi.activity import RETENTION_DAYS
from events_app.kpi.report import DayKpis, daily_kpis
from events_app.models import Game


@dataclass(frozen=True)
class Totals:
    """A period's figures: sums, daily means, and ratios of sums (never a mean of daily ratios)."""

    days: int
    player_days: int  # the sum of DAU
    new_players: int
    sessions: int
    avg_session_seconds: Decimal | None
    purchases: int
    paying_player_days: int
    revenue_base: Decimal
    ad_revenue_base: Decimal
    arpdau: Decimal | None
    retention: dict[int, Decimal | None]  # over the period's cohorts whose day +N is over

    @property
    def avg_dau(self) -> Decimal:
        return _round(Decimal(self.player_days) / self.days, "0.1") if self.days else Decimal(0)


@dataclass(frozen=True)
class Comparison:
    """The range's days, the previous period's (as long, just before), and both totals."""

    days: list[DayKpis]
    previous_days: list[DayKpis]
    current: Totals
    previous: Totals


def compare(*, game: Game, start: date, end: date, today: date | None = None) -> Comparison:
    """Return the days from `start` to `end` and the same number of days before, with their totals (one query)."""
    length = (end - start).days + 1
    both = daily_kpis(game=game, start=start - timedelta(days=length), end=end, today=today)
    previous, current = both[:length], both[length:]
    return Comparison(days=current, previous_days=previous, current=totals(current), previous=totals(previous))


def totals(days: Sequence[DayKpis]) -> Totals:
    """Return the figures of a run of days."""
    player_days = sum(day.dau for day in days)
    session_ends = sum(day.session_ends for day in days)
    revenue = sum((day.revenue_base for day in days), Decimal(0))
    ads = sum((day.ad_revenue_base for day in days), Decimal(0))
    retention = {}
    for later in RETENTION_DAYS:
        known = [day for day in days if day.retained[later] is not None and day.new_players]
        cohort = sum(day.new_players for day in known)
        retention[later] = (
            _round(Decimal(sum(day.retained[later] for day in known)) / cohort, "0.0001") if cohort else None
        )
    return Totals(
        days=len(days),
        player_days=player_days,
        new_players=sum(day.new_players for day in days),
        sessions=sum(day.sessions for day in days),
        avg_session_seconds=(
            _round(Decimal(sum(day.session_ms for day in days)) / session_ends / 1000, "0.1") if session_ends else None
        ),
        purchases=sum(day.purchases for day in days),
        paying_player_days=sum(day.paying_players for day in days),
        revenue_base=revenue,
        ad_revenue_base=ads,
        arpdau=_round((revenue + ads) / player_days, "0.0001") if player_days else None,
        retention=retention,
    )


def change(current: Decimal | int | None, previous: Decimal | int | None) -> Decimal | None:
    """Return the relative change in percent, to one decimal; None when either is unknown or the previous is 0."""
    if current is None or previous is None or not previous:
        return None
    return _round((Decimal(current) - Decimal(previous)) * 100 / Decimal(previous), "0.1")


def _round(value: Decimal, places: str) -> Decimal:
    return value.quantize(Decimal(places), rounding=ROUND_HALF_UP)
