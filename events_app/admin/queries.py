"""Dashboard queries: events over time, intake, revenue and a game's types, from the per-hour counts."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import NotSupportedError
from django.db.models import CharField, Count, F, Func, QuerySet, Sum
from django.utils import timezone

from events_app import conf
from events_app.delivery.status import Backlog, WorkerHealth, backlog, worker_health
from events_app.event_types import revenue_types
from events_app.models import DuplicateTally, Event, EventHour, Game, RejectedEvent
from events_app.privacy.retention import cutoff

# Times are UTC and by `received_at` (the server's clock, which clients cannot skew).
# Nothing here counts the log: events over time, revenue, a game's types and the list's
# filter values are read from EventHour, the per-hour counts each relay batch adds
# as it sends (so an event counts from when a relay passes it, normally seconds after
# it arrives), on its (hour, ...) unique index or its (game, hour) index. The
# backlog reads the log past each relay's cursor (the relay index) and the few delivery
# issues by state; the events waiting for an exchange rate read the log's small partial
# index of them.

HOURS_SHOWN = 24
DAYS_SHOWN = 30
TYPE_COUNT_DAYS = 30  # a game's events counted by type: those received over this many days
VALUES_LIMIT = 100  # filter values offered per column


class UtcBucket(Func):
    """The hour or day of a datetime column, in UTC: text "YYYY-MM-DD HH" / "YYYY-MM-DD" on SQLite, a timestamp on
    PostgreSQL (read either through bucket_key).

    Django's own Trunc calls a Python function per row on SQLite; a prefix of the
    stored text (aware datetimes are stored as naive UTC "YYYY-MM-DD HH:MM:SS") gives
    the same bucket in C. PostgreSQL truncates (formatting every row as text costs
    more than the grouping).
    """

    output_field = CharField()

    def __init__(self, expression, *, unit: str):
        if unit not in ("hour", "day"):
            raise ValueError(f"unit must be hour or day, not {unit!r}")
        self.unit = unit
        super().__init__(expression)

    def as_sqlite(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"substr({sql}, 1, {13 if self.unit == 'hour' else 10})", params

    def as_postgresql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"date_trunc('{self.unit}', ({sql}) AT TIME ZONE 'UTC')", params

    def as_sql(self, compiler, connection, **extra_context):
        raise NotSupportedError(f"UtcBucket supports SQLite and PostgreSQL, not {connection.vendor}")


def bucket_key(value, unit: str) -> str:
    """Return a UtcBucket value (text, or PostgreSQL's timestamp) as the text _bucket_key gives a bucket's start."""
    return value if isinstance(value, str) else _bucket_key(value, unit)


@dataclass
class TimeSeries:
    """Values per time bucket for each named series; every series has one value per bucket."""

    unit: str
    buckets: list[datetime]
    series: dict[str, list] = field(default_factory=dict)

    def total(self, name: str | None = None):
        """Return the sum over all buckets, of one series or of all."""
        names = [name] if name is not None else list(self.series)
        return sum((sum(self.series[n]) for n in names), start=0)

    @property
    def is_empty(self) -> bool:
        return not any(any(values) for values in self.series.values())


@dataclass
class Intake:
    """What the API did with the events it was sent in a period.

    `rejected` counts the kept rejection records (with the refusals of their request
    past the per-request cap), which are bounded to the newest EVENTS_REJECTIONS_KEPT
    and to EVENTS_REJECTIONS_MAX_AGE_DAYS, so over a long period it may be a lower
    bound (then `rejected_is_lower_bound` is set).
    """

    accepted: int
    duplicates: int
    rejected: int
    rejected_is_lower_bound: bool = False


@dataclass
class Dashboard:
    """Everything the dashboard page shows, for all games or one."""

    game: Game | None
    now: datetime
    base_currency: str
    hourly: TimeSeries
    daily: TimeSeries
    intake_day: Intake
    intake_month: Intake
    backlog: Backlog
    worker: WorkerHealth
    revenue: dict[str, TimeSeries]  # per type with money, in the registry's order: purchase, ad_impression, ...
    without_rate: dict[str, int]  # per type with money: events, of any date, waiting for an exchange rate

    @property
    def revenue_total(self) -> Decimal:
        """Return the revenue of every type and game in the base currency over the days shown."""
        return sum((series.total() for series in self.revenue.values()), start=Decimal(0))

    @property
    def without_rate_total(self) -> int:
        return sum(self.without_rate.values())


def build_dashboard(*, game: Game | None = None, now: datetime | None = None) -> Dashboard:
    """Return the dashboard's figures for `game` (or every game) as of `now`."""
    now = (now or timezone.now()).astimezone(UTC)
    hour_start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS_SHOWN - 1)
    day_start = period_start(now, days=DAYS_SHOWN)
    # One grouped read of the month's counts serves the events per day and the revenue per day.
    days = _day_rows(since=day_start, until=now, game=game)
    daily = events_per_bucket(since=day_start, until=now, unit="day", game=game, rows=days)
    hourly = events_per_bucket(since=hour_start, until=now, unit="hour", game=game, types=list(daily.series))
    return Dashboard(
        game=game,
        now=now,
        base_currency=conf.base_currency(),
        hourly=hourly,
        daily=daily,
        intake_day=intake(since=hour_start, accepted=hourly.total(), game=game),
        intake_month=intake(since=day_start, accepted=daily.total(), game=game),
        backlog=backlog(game=game, now=now),
        worker=worker_health(now=now),
        revenue=revenue_per_day(since=day_start, until=now, game=game, rows=days),
        without_rate=events_without_rate(game=game),
    )


def period_start(now: datetime, *, days: int) -> datetime:
    """Return the start of the first of the last `days` UTC days, today included: the dashboard's period."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days - 1)


def _hours(*, since: datetime, until: datetime, game: Game | None) -> QuerySet[EventHour]:
    hours = EventHour.objects.filter(hour__gte=_hour_of(since), hour__lte=until).order_by()
    return hours if game is None else hours.filter(game=game)


def _hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _day_rows(*, since: datetime, until: datetime, game: Game | None = None) -> list[dict]:
    """Return the counted events and base revenue per (UTC day, type, game) between `since` and `until`."""
    return list(
        _hours(since=since, until=until, game=game)
        .annotate(bucket=UtcBucket("hour", unit="day"))
        .values("bucket", "event_type", "game_id")
        .annotate(n=Sum("events"), revenue=Sum("revenue_base"))
    )


def events_per_bucket(
    *,
    since: datetime,
    until: datetime,
    unit: str,
    game: Game | None = None,
    types: list[str] | None = None,
    rows: list[dict] | None = None,
) -> TimeSeries:
    """Return the events sent per hour or day between `since` and `until`, one series per event type.

    Read from EventHour in one grouped query (or from `rows` of _day_rows already
    read). The series are the types that occur in the period, in order, or `types`.
    """
    buckets = _bucket_starts(since=since, until=until, unit=unit)
    if rows is None:
        rows = list(
            _hours(since=since, until=until, game=game)
            .annotate(bucket=UtcBucket("hour", unit=unit))
            .values("bucket", "event_type")
            .annotate(n=Sum("events"))
        )
    names = types if types is not None else sorted({row["event_type"] for row in rows})
    series = TimeSeries(unit=unit, buckets=buckets, series={name: [0] * len(buckets) for name in names})
    index = {_bucket_key(start, unit): position for position, start in enumerate(buckets)}
    for row in rows:
        position = index.get(bucket_key(row["bucket"], unit))
        if position is not None and row["event_type"] in series.series:
            series.series[row["event_type"]][position] += row["n"]
    return series


def revenue_per_day(
    *, since: datetime, until: datetime, game: Game | None = None, rows: list[dict] | None = None
) -> dict[str, TimeSeries]:
    """Return revenue in the base currency per day for each type with money (purchases, ad impressions, ...).

    One TimeSeries per revenue type, in the registry's order, each with one series per
    game; every revenue type is there, empty or not. Read from EventHour (or `rows`
    of _day_rows already read). An event whose exchange rate is not known yet adds no
    base-currency revenue until reconvert fills it in (see `events_without_rate`).
    """
    types = revenue_types()
    buckets = _bucket_starts(since=since, until=until, unit="day")
    if rows is None:
        rows = _day_rows(since=since, until=until, game=game)
    slugs = dict(Game.objects.values_list("pk", "slug"))
    index = {_bucket_key(start, "day"): position for position, start in enumerate(buckets)}
    by_type: dict[str, dict[str, list]] = {name: {} for name in types}
    for row in rows:
        position = index.get(bucket_key(row["bucket"], "day"))
        if position is None or row["event_type"] not in by_type or not row["revenue"]:
            continue
        by_game = by_type[row["event_type"]]
        values = by_game.setdefault(slugs.get(row["game_id"], str(row["game_id"])), [Decimal(0)] * len(buckets))
        values[position] += Decimal(row["revenue"])
    # Biggest earners first: they are the bottom of the stack and the top of the legend.
    return {
        name: TimeSeries(
            unit="day", buckets=buckets, series=dict(sorted(by_game.items(), key=lambda item: (-sum(item[1]), item[0])))
        )
        for name, by_game in by_type.items()
    }


def events_without_rate(*, game: Game | None = None) -> dict[str, int]:
    """Return how many events with revenue, of any date, still wait for an exchange rate, per revenue type.

    Read from the partial index of waiting events (few, by design: a rate arrives daily).
    """
    waiting = Event.objects.filter(revenue__isnull=False, revenue_base__isnull=True)
    if game is not None:
        # Kept off the game's index on purpose: the partial index of waiting events is
        # far narrower than all of a game's events, but only per-value statistics could tell.
        waiting = waiting.alias(game_unindexed=F("game_id") + 0).filter(game_unindexed=game.pk)
    counts = dict(waiting.values_list("event_type").annotate(n=Count("pk")).order_by())
    return {name: counts.get(name, 0) for name in revenue_types() if counts.get(name)}


@dataclass
class TypeCounts:
    """A game's events by type over its last `days` days, as the relays counted them."""

    counts: dict[str, int]  # most frequent first
    total: int
    days: int
    since: datetime  # the start of the period counted


def type_counts(*, game: Game, days: int | None = None, now: datetime | None = None) -> TypeCounts:
    """Return the game's events per type (custom types too) over its last `days` days, in one grouped query.

    Read from EventHour on its (game, hour) index, never from the log: the same
    cost for a game with a billion events.
    """
    days = TYPE_COUNT_DAYS if days is None else days
    # From the start of a UTC day, as the dashboard's days are: its counts of the game and these agree.
    since = period_start(now or timezone.now(), days=days)
    rows = (
        EventHour.objects.filter(game=game, hour__gte=since).values("event_type").annotate(n=Sum("events")).order_by()
    )
    rows = sorted(rows, key=lambda row: (-row["n"], row["event_type"]))
    return TypeCounts(
        counts={row["event_type"]: row["n"] for row in rows},
        total=sum(row["n"] for row in rows),
        days=days,
        since=since,
    )


def intake(*, since: datetime, accepted: int, game: Game | None = None) -> Intake:
    """Return accepted, duplicate and rejected events since `since`."""
    rejections = RejectedEvent.objects.filter(received_at__gte=since)
    if game is not None:
        rejections = rejections.filter(game=game)
    oldest_kept = RejectedEvent.objects.order_by("received_at").values_list("received_at", flat=True).first()
    # Full to the bound, and the oldest kept is inside the period: older ones were dropped.
    pruned = RejectedEvent.objects.count() >= conf.rejections_kept() and oldest_kept is not None and oldest_kept > since
    # A period longer than rejections are kept: those before the age limit are gone.
    pruned = pruned or since < cutoff(days=conf.rejection_retention_days())
    counted = rejections.aggregate(rows=Count("pk"), not_kept=Sum("not_kept"))
    return Intake(
        accepted=accepted,
        rejected=counted["rows"] + (counted["not_kept"] or 0),
        duplicates=duplicate_count(since=since, game=game),
        rejected_is_lower_bound=pruned,
    )


def duplicate_count(*, since: datetime, game: Game | None = None) -> int:
    """Return how many duplicates the API answered since `since` (ingestion tallies them per request)."""
    tallies = DuplicateTally.objects.filter(received_at__gte=since)
    if game is not None:
        tallies = tallies.filter(game=game)
    return tallies.aggregate(total=Sum("duplicates"))["total"] or 0


def counted_values(*, since: datetime, limit: int = VALUES_LIMIT) -> dict[str, list[str]]:
    """Return the distinct non-blank event types, platforms and currencies counted since `since`, in order.

    One query over EventHour's rows of the period (on its unique index, which leads
    with the hour), never a DISTINCT over the log; at most `limit` values each.
    """
    combinations = (
        EventHour.objects.filter(hour__gte=_hour_of(since))
        .values_list("event_type", "platform", "currency")
        .distinct()
        .order_by()
    )
    found: dict[str, set] = {"event_type": set(), "platform": set(), "currency": set()}
    for event_type, platform, currency in combinations:
        found["event_type"].add(event_type)
        found["platform"].add(platform)
        found["currency"].add(currency)
    return {name: sorted(value for value in values if value)[:limit] for name, values in found.items()}


def _bucket_starts(*, since: datetime, until: datetime, unit: str) -> list[datetime]:
    step = timedelta(hours=1) if unit == "hour" else timedelta(days=1)
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if unit == "day":
        start = start.replace(hour=0)
    buckets = []
    while start <= until:
        buckets.append(start)
        start += step
    return buckets


def _bucket_key(start: datetime, unit: str) -> str:
    return start.strftime("%Y-%m-%d %H" if unit == "hour" else "%Y-%m-%d")
