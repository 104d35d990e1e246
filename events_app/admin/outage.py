"""An outage at a glance: the pipeline's alert level, the destination's current error, deliveries per minute."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import NotSupportedError
from django.db.models import CharField, Func, Q, Sum
from django.utils import timezone

from events_app import conf
from events_app.admin.queries import TimeSeries
from events_app.delivery.status import Backlog, WorkerHealth
from events_app.models import CallOutcome, DeliveryCall

OK, AMBER, RED = "ok", "amber", "red"


@dataclass(frozen=True)
class Thresholds:
    """When the pipeline panel turns amber or red (settings EVENTS_ALERT_*)."""

    amber_age: timedelta
    red_age: timedelta
    amber_failed: int
    red_failed: int
    chart_hours: int


def thresholds() -> Thresholds:
    """Return the alert thresholds (settings EVENTS_ALERT_*, read by events_app.conf)."""
    # By default amber after a minute of waiting (the relay sends within a second or two).
    values = conf.alert_thresholds()
    return Thresholds(
        amber_age=timedelta(seconds=values["amber_age_seconds"]),
        red_age=timedelta(seconds=values["red_age_seconds"]),
        amber_failed=values["amber_failed"],
        red_failed=values["red_failed"],
        chart_hours=values["chart_hours"],
    )


@dataclass
class AlertLevel:
    """How bad the pipeline looks (ok, amber or red) and the reasons, worst first."""

    level: str
    reasons: list[str]


def alert_level(*, backlog: Backlog, worker: WorkerHealth, limits: Thresholds, age_text: str | None) -> AlertLevel:
    """Return red or amber when the oldest undelivered event is old or events fail, red too with no worker.

    Dead events do not count: they wait for an operator's resend, not for the pipeline.
    """
    red, amber = [], []
    age = backlog.oldest_undelivered_age
    if worker.is_stale:
        red.append("no delivery worker seen")
    if age is not None and age >= limits.amber_age:
        (red if age >= limits.red_age else amber).append(f"the oldest undelivered event has waited {age_text}")
    if backlog.failed >= limits.amber_failed:
        (red if backlog.failed >= limits.red_failed else amber).append(f"{backlog.failed:,} failed")
    level = RED if red else AMBER if amber else OK
    return AlertLevel(level=level, reasons=red + amber)


@dataclass
class DestinationError:
    """The destination's last refusal: its text, when it came, and since when calls have failed if they still do."""

    destination: str
    error: str
    last_at: datetime
    failing_since: datetime | None  # None once a call was delivered after it
    recovered_at: datetime | None


def destination_error(*, now: datetime | None = None, hours: int | None = None) -> DestinationError | None:
    """Return the newest failed or partly failed destination call of the last `hours` (the chart's), or None.

    A few index reads on DeliveryCall's called_at, bounded by the window: the newest
    bad call, the first good call after it (recovered) or, while none, the start of
    the run of bad calls that led to it (failing since).
    """
    now = now or timezone.now()
    since = now - timedelta(hours=hours or thresholds().chart_hours)
    calls = DeliveryCall.objects.filter(called_at__gte=since)
    bad = ~Q(outcome=CallOutcome.DELIVERED)
    last = calls.filter(bad).order_by("-called_at", "-id").only("destination", "error", "called_at").first()
    if last is None:
        return None
    same = calls.filter(destination=last.destination)
    recovered_at = (
        same.filter(outcome=CallOutcome.DELIVERED, called_at__gt=last.called_at)
        .order_by("called_at")
        .values_list("called_at", flat=True)
        .first()
    )
    failing_since = None
    if recovered_at is None:
        good_before = (
            same.filter(outcome=CallOutcome.DELIVERED, called_at__lte=last.called_at)
            .order_by("-called_at")
            .values_list("called_at", flat=True)
            .first()
        )
        run = same.filter(bad, called_at__lte=last.called_at)
        if good_before is not None:
            run = run.filter(called_at__gt=good_before)
        failing_since = run.order_by("called_at").values_list("called_at", flat=True).first()
    return DestinationError(
        destination=last.destination,
        error=last.error or "refused without a message",
        last_at=last.called_at,
        failing_since=failing_since,
        recovered_at=recovered_at,
    )


class UtcMinute(Func):
    """The minute of a datetime column in UTC: text "YYYY-MM-DD HH:MM" on SQLite, a timestamp on PostgreSQL."""

    output_field = CharField()

    def as_sqlite(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"substr({sql}, 1, 16)", params

    def as_postgresql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"date_trunc('minute', ({sql}) AT TIME ZONE 'UTC')", params

    def as_sql(self, compiler, connection, **extra_context):
        raise NotSupportedError(f"UtcMinute supports SQLite and PostgreSQL, not {connection.vendor}")


def deliveries_per_minute(*, now: datetime | None = None, hours: int | None = None) -> TimeSeries:
    """Return the events delivered and failed per minute over the last `hours`, from the destination calls.

    One grouped query on DeliveryCall's called_at index. A call's failed events count
    as failed each time they are tried, so an outage shows as a wall of failures.
    """
    now = (now or timezone.now()).astimezone(UTC)
    end = now.replace(second=0, microsecond=0)
    count = (hours or thresholds().chart_hours) * 60
    buckets = [end - timedelta(minutes=count - 1 - i) for i in range(count)]
    rows = (
        DeliveryCall.objects.filter(called_at__gte=buckets[0])
        .annotate(bucket=UtcMinute("called_at"))
        .values("bucket")
        .annotate(sent=Sum("events"), failed=Sum("failed_events"))
        .order_by()
    )
    index = {start.strftime("%Y-%m-%d %H:%M"): i for i, start in enumerate(buckets)}
    delivered, failed = [0] * count, [0] * count
    for row in rows:
        key = row["bucket"] if isinstance(row["bucket"], str) else row["bucket"].strftime("%Y-%m-%d %H:%M")
        position = index.get(key)
        if position is not None:
            delivered[position] += row["sent"] - row["failed"]
            failed[position] += row["failed"]
    return TimeSeries(unit="minute", buckets=buckets, series={"delivered": delivered, "failed": failed})
