"""The pipeline dashboard page and the admin index's pipeline panel: backlog, worker, intake, events, revenue."""

from collections.abc import Callable
from datetime import datetime, timedelta

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.timesince import timesince

from events_app import conf
from events_app.admin import outage
from events_app.admin.base import format_utc, plural
from events_app.admin.charts import format_count, format_money, stacked_bar_chart
from events_app.admin.queries import TimeSeries, build_dashboard
from events_app.delivery.status import Backlog, WorkerHealth, backlog, worker_health
from events_app.models import DeliveryState, Game


def dashboard_view(request: HttpRequest, *, model_admin: admin.ModelAdmin) -> HttpResponse:
    """Render the dashboard for every game or one (`?game=slug`); the caller checked the view permission."""
    games = list(Game.objects.order_by("slug"))
    game = next((g for g in games if g.slug == request.GET.get("game")), None)
    data = build_dashboard(game=game)
    currency = data.base_currency
    day_labels = [f"{start:%b %d}" for start in data.daily.buckets]
    list_url = reverse("admin:events_app_event_changelist")
    game_filter = {"game__id__exact": game.pk} if game else {}

    def list_link(**filters) -> str:
        return f"{list_url}?{urlencode({**filters, **game_filter})}"

    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Pipeline dashboard" + (f": {game.slug}" if game else ""),
        "opts": model_admin.opts,
        "dashboard": data,
        "charts": {
            "hourly": stacked_bar_chart(
                title="Events per hour, last 24 hours, by type",
                labels=[f"{start:%H}h" for start in data.hourly.buckets],
                series=data.hourly.series,
            ),
            "daily": stacked_bar_chart(
                title=f"Events per day, last {len(data.daily.buckets)} days, by type",
                labels=day_labels,
                series=data.daily.series,
            ),
        },
        # One chart per type with money (purchase, ad_impression, ...), side by side.
        "revenue_charts": [
            (
                event_type,
                stacked_bar_chart(
                    title=f"Revenue from {event_type} events per day in {currency}, by game",
                    labels=day_labels,
                    series=series.series,
                    value_format=format_money,
                    empty_text=f"No {event_type} revenue with a known exchange rate in this period",
                ),
            )
            for event_type, series in data.revenue.items()
        ],
        "revenue_rows": [(event_type, format_money(series.total())) for event_type, series in data.revenue.items()],
        "revenue_total": format_money(data.revenue_total),
        "without_rate": [
            (
                event_type,
                plural(count, f"{event_type} event"),
                list_link(event_type=event_type, revenue__isnull="False", revenue_base__isnull="True", received="all"),
            )
            for event_type, count in data.without_rate.items()
        ],
        "games": games,
        "game": game,
        "pipeline": pipeline_status(backlog=data.backlog, worker=data.worker, list_link=list_link),
        "delivery_chart": delivery_chart(now=data.now),
        "tables": [
            dashboard_table("Events per hour", data.hourly, "%Y-%m-%d %H:00", format_count),
            dashboard_table("Events per day", data.daily, "%Y-%m-%d", format_count),
            *(
                dashboard_table(f"Revenue from {event_type} per day ({currency})", series, "%Y-%m-%d", format_money)
                for event_type, series in data.revenue.items()
            ),
        ],
        "rejections_kept": conf.rejections_kept(),
        "changelist_url": list_url,
    }
    return TemplateResponse(request, "admin/events_app/event/dashboard.html", context)


def index_panel(*, now: datetime | None = None) -> dict:
    """Return the admin index's pipeline panel: the dashboard's backlog and worker figures, for every game."""
    list_url = reverse("admin:events_app_event_changelist")

    def list_link(**filters) -> str:
        return f"{list_url}?{urlencode(filters)}"

    now = now or timezone.now()
    return {
        "pipeline": pipeline_status(backlog=backlog(now=now), worker=worker_health(now=now), list_link=list_link),
        "dashboard_url": reverse("admin:events_app_event_dashboard"),
    }


def pipeline_status(*, backlog: Backlog, worker: WorkerHealth, list_link: Callable[..., str]) -> dict:
    """Return the pipeline's state as the dashboard's backlog card and the index panel both show it.

    The backlog counts every undelivered event, so its links open the list over all time.
    Its alert level (ok, amber, red) and the destination's last error come from
    admin.outage.
    """
    silent_for = worker.silent_for
    oldest_age = format_age(backlog.oldest_undelivered_age)
    alert = outage.alert_level(backlog=backlog, worker=worker, limits=outage.thresholds(), age_text=oldest_age)
    return {
        "level": alert.level,
        "level_reasons": alert.reasons,
        "destination_error": destination_error_text(outage.destination_error(now=worker.now)),
        "backlog_rows": [
            ("pending", backlog.pending, list_link(delivery_state=DeliveryState.PENDING, received="all")),
            ("failed", backlog.failed, list_link(delivery_state=DeliveryState.FAILED, received="all")),
            ("dead", backlog.dead, list_link(delivery_state=DeliveryState.DEAD, received="all")),
        ],
        "oldest_undelivered_age": oldest_age,
        "last_delivery_age": format_age(_since(worker.last_delivery_at, worker.now)),
        "last_delivery_at": worker.last_delivery_at,
        "worker_last_seen_age": format_age(silent_for),
        "worker_last_seen_at": worker.last_seen_at,
        "worker_stale": worker.is_stale,
        "worker_warning": (
            "no delivery worker seen yet: failed events are not retried"
            if silent_for is None
            else f"worker not seen for {format_age(silent_for)}: failed events are not retried"
            if worker.is_stale
            else ""
        ),
    }


def destination_error_text(error: outage.DestinationError | None) -> dict | None:
    """Return the destination's last error as the panel words it: "Firehose: <error>", since when or until when."""
    if error is None:
        return None
    if error.failing_since is not None:
        when = f"failing since {format_utc(error.failing_since)}, last at {format_utc(error.last_at)}"
    else:
        when = f"at {format_utc(error.last_at)}, delivering again since {format_utc(error.recovered_at)}"
    return {
        "destination": error.destination.capitalize(),
        "error": error.error,
        "when": when,
        "ongoing": error.failing_since is not None,
    }


def delivery_chart(*, now: datetime) -> dict:
    """Return the chart of events delivered and failed per minute over the last hours, and its window."""
    series = outage.deliveries_per_minute(now=now)
    hours = len(series.buckets) // 60
    return {
        "svg": stacked_bar_chart(
            title=f"Events delivered and failed per minute, last {plural(hours, 'hour')}, all games",
            labels=[f"{start:%H:%M}" for start in series.buckets],
            series=series.series,
            empty_text="No delivery call in this period",
        ),
        "delivered": series.total("delivered"),
        "failed": series.total("failed"),
    }


def format_age(age: timedelta | None) -> str | None:
    """Return "12 seconds", "4 minutes", "2 hours, 5 minutes" (None for None)."""
    if age is None:
        return None
    if age < timedelta(minutes=1):
        return plural(int(age.total_seconds()), "second")
    now = timezone.now()
    return timesince(now - age, now)


def _since(moment: datetime | None, now: datetime) -> timedelta | None:
    return None if moment is None else max(now - moment, timedelta(0))


def dashboard_table(caption: str, series: TimeSeries, time_format: str, value_format: Callable) -> dict:
    """Return a chart's numbers as a table: one row per bucket, one column per series."""
    return {
        "caption": caption,
        "unit": series.unit,
        "headers": list(series.series),
        "rows": [
            [start.strftime(time_format), *(value_format(values[i]) for values in series.series.values())]
            for i, start in enumerate(series.buckets)
        ],
    }
