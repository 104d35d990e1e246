"""Dashboard queries: events over time, intake, revenue and a game's types, on indexes."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import NotSupportedError
from django.db.models import CharField, Count, F, Func, Min, Model, QuerySet, Subquery, Sum
from django.utils import timezone

from events_app import conf
from events_app.delivery.status import Backlog, WorkerHealth, backlog, worker_health
from events_app.event_types import revenue_types
from events_app.models import DuplicateTally, Event, Game, RejectedEvent
from events_app.privacy.retention import cutoff

# Times are UTC and by `received_at` (the server's clock, which clients cannot skew).
# Every query here stays on an index: the per-type series read the (event_type,
# received_at) index without touching the table, the backlog reads the log past each
# relay's cursor (the relay index) and the few delivery issues by state, a game's
# type counts read its newest rows by (game, received_at), and distinct values are
# found by skipping through an index one value at a time rather than scanning it.

HOURS_SHOWN = 24
DAYS_SHOWN = 30
TYPE_COUNT_CAP = 10_000  # a game's events counted by type: its newest this many


class UtcBucket(Func):
    """The hour ("YYYY-MM-DD HH") or day ("YYYY-MM-DD") of a datetime column, in UTC, as text.

    Django's own Trunc calls a Python function per row on SQLite; a prefix of the
    stored text (aware datetimes are stored as naive UTC "YYYY-MM-DD HH:MM:SS") gives
    the same bucket in C, hundreds of times faster over a month of events.
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
        pattern = "YYYY-MM-DD HH24" if self.unit == "hour" else "YYYY-MM-DD"
        return f"to_char(({sql}) AT TIME ZONE 'UTC', '{pattern}')", params

    def as_sql(self, compiler, connection, **extra_context):
        raise NotSupportedError(f"UtcBucket supports SQLite and PostgreSQL, not {connection.vendor}")


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
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=DAYS_SHOWN - 1)
    hourly = events_per_bucket(since=hour_start, until=now, unit="hour", game=game)
    daily = events_per_bucket(since=day_start, until=now, unit="day", game=game)
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
        revenue=revenue_per_day(since=day_start, until=now, game=game),
        without_rate=events_without_rate(game=game),
    )


def events_per_bucket(*, since: datetime, until: datetime, unit: str, game: Game | None = None) -> TimeSeries:
    """Return accepted events per hour or day between `since` and `until`, one series per event type."""
    types = distinct_values(model=Event, field_name="event_type")
    buckets = _bucket_starts(since=since, until=until, unit=unit)
    series = TimeSeries(unit=unit, buckets=buckets, series={name: [0] * len(buckets) for name in types})
    events = _events(game)
    if unit == "day" and game is None:
        # A month of events is most of the table. One COUNT per type and day walks only
        # the (event_type, received_at) index; grouping every row by its day costs ten
        # times as much on SQLite (1 s instead of 0.1 s over a million events) and twice
        # as much on PostgreSQL. For one game no index holds both game and type, so
        # there one grouped pass over the game's rows is the cheaper.
        ends = [*buckets[1:], None]
        for name in types:
            for position, (start, end) in enumerate(zip(buckets, ends, strict=True)):
                in_bucket = events.filter(event_type=name, received_at__gte=start)
                in_bucket = in_bucket.filter(received_at__lt=end) if end else in_bucket.filter(received_at__lte=until)
                series.series[name][position] = in_bucket.count()
        return series
    # One grouped query; for all games, naming the types keeps it on the type's index.
    rows = (
        events.filter(event_type__in=types, received_at__gte=since, received_at__lte=until)
        .annotate(bucket=UtcBucket("received_at", unit=unit))
        .values("bucket", "event_type")
        .annotate(n=Count("pk"))
        .order_by()
    )
    index = {_bucket_key(start, unit): position for position, start in enumerate(buckets)}
    for row in rows:
        position = index.get(row["bucket"])
        if position is not None:
            series.series[row["event_type"]][position] += row["n"]
    return series


def revenue_per_day(*, since: datetime, until: datetime, game: Game | None = None) -> dict[str, TimeSeries]:
    """Return revenue in the base currency per day for each type with money (purchases, ad impressions, ...).

    One TimeSeries per revenue type, in the registry's order, each with one series per
    game; every revenue type is there, empty or not. One grouped query for all of them,
    on the (event_type, received_at) index. An event whose exchange rate is not known
    yet has no base-currency revenue and is left out rather than added in the wrong
    currency (see `events_without_rate`; they are converted once the rate arrives).
    """
    types = revenue_types()
    buckets = _bucket_starts(since=since, until=until, unit="day")
    rows = (
        _events(game)
        .filter(event_type__in=types, received_at__gte=since, received_at__lte=until, revenue_base__isnull=False)
        .annotate(bucket=UtcBucket("received_at", unit="day"))
        .values("bucket", "event_type", "game_id")
        .annotate(revenue=Sum("revenue_base"))
        .order_by()
    )
    slugs = dict(Game.objects.values_list("pk", "slug"))
    index = {_bucket_key(start, "day"): position for position, start in enumerate(buckets)}
    by_type: dict[str, dict[str, list]] = {name: {} for name in types}
    for row in rows:
        position = index.get(row["bucket"])
        if position is None:
            continue
        by_game = by_type[row["event_type"]]
        values = by_game.setdefault(slugs.get(row["game_id"], str(row["game_id"])), [Decimal(0)] * len(buckets))
        values[position] += Decimal(row["revenue"] or 0)
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
    """A game's events by type, counted over its newest `cap` events at most."""

    counts: dict[str, int]  # most frequent first
    total: int
    cap: int
    since: datetime | None  # when the oldest event counted was received

    @property
    def is_capped(self) -> bool:
        """Return True if the game may have older events than those counted."""
        return self.total >= self.cap


def type_counts(*, game: Game, cap: int | None = None) -> TypeCounts:
    """Return the game's events per type (custom types too) over its newest `cap` events, in one grouped query.

    Capped so that it costs the same for a game with a billion events: the newest rows
    are found on the (game, received_at) index, and only those are read.
    """
    cap = TYPE_COUNT_CAP if cap is None else cap
    newest = Event.objects.filter(game=game).order_by("-received_at").values("pk")[:cap]
    rows = (
        Event.objects.filter(pk__in=Subquery(newest))
        .values("event_type")
        .annotate(n=Count("pk"), since=Min("received_at"))
        .order_by()
    )
    rows = sorted(rows, key=lambda row: (-row["n"], row["event_type"]))
    return TypeCounts(
        counts={row["event_type"]: row["n"] for row in rows},
        total=sum(row["n"] for row in rows),
        cap=cap,
        since=min((row["since"] for row in rows), default=None),
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


def distinct_values(*, model: type[Model], field_name: str, limit: int = 100) -> list:
    """Return the distinct non-blank values of an indexed column, in order, at most `limit`.

    A loose index scan: one "next value after this one" query per value, each a seek
    on the index that leads with the column, instead of a DISTINCT over every row.
    """
    values: list = []
    ordered = model._default_manager.order_by(field_name).values_list(field_name, flat=True)
    current = ""  # blank sorts first: starting after it skips the blanks with one seek too
    while len(values) < limit:
        current = ordered.filter(**{f"{field_name}__gt": current}).first()
        if current is None:
            break
        values.append(current)
    return values


def _events(game: Game | None) -> QuerySet[Event]:
    events = Event.objects.order_by()
    return events if game is None else events.filter(game=game)


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
