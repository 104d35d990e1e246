"""A game's KPI page: the daily table, charts, the retention cohort triangle, the change from the previous period."""

import re
from datetime import date, timedelta
from decimal import Decimal

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

from events_app import conf
from events_app.admin.charts import format_count, format_money, stacked_bar_chart
from events_app.admin.kpi_charts import line_chart, shade
from events_app.kpi.activity import RETENTION_DAYS
from events_app.kpi.periods import Totals, change, compare, totals
from events_app.kpi.report import KEYS, MAX_DAYS, DayKpis, default_range
from events_app.models import Game

DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# The page reads its range and the previous period as long: twice the range within the report's bound.
MAX_RANGE_DAYS = MAX_DAYS // 2
# Past this many days the charts plot weeks: 800 daily bars would be thinner than a pixel.
WEEKLY_AFTER_DAYS = 120


def kpi_urls(model_admin: admin.ModelAdmin) -> list:
    """Return the game admin's URL of the KPI page (`admin:events_app_game_kpis`)."""
    wrap = model_admin.admin_site.admin_view
    view = wrap(lambda request, object_id: kpi_view(request, object_id, model_admin=model_admin))
    return [path("<path:object_id>/kpis/", view, name="events_app_game_kpis")]


def kpi_view(request: HttpRequest, object_id: str, *, model_admin: admin.ModelAdmin) -> HttpResponse:
    """Render a game's KPIs for `?from=YYYY-MM-DD&to=YYYY-MM-DD` (default: the last 30 days through yesterday)."""
    game = Game.objects.filter(pk=unquote(object_id)).first() if unquote(object_id).isdigit() else None
    if game is None:
        raise Http404("No such game.")
    if not model_admin.has_view_permission(request, game):
        raise PermissionDenied
    today = timezone.now().date()
    start, end = default_range(today=today)
    try:
        start = _date(request.GET, "from", start)
        end = _date(request.GET, "to", end)
        if start > end:
            raise ValueError("from: the first day is after the last (to).")
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise ValueError(f"from, to: at most {MAX_RANGE_DAYS} days at once.")
    except ValueError as error:
        return HttpResponseBadRequest(str(error), content_type="text/plain; charset=utf-8")
    comparison = compare(game=game, start=start, end=end, today=today)
    days = comparison.days
    currency = conf.base_currency()
    length = len(days)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"KPIs: {game.slug}",
        "opts": model_admin.opts,
        "game": game,
        "game_url": reverse("admin:events_app_game_change", args=[game.pk]),
        "start": start,
        "end": end,
        "previous_start": start - timedelta(days=length),
        "previous_end": start - timedelta(days=1),
        "presets": [
            (label, (end - timedelta(days=days_back - 1)).isoformat(), end.isoformat())
            for label, days_back in (("7 days", 7), ("30 days", 30), ("90 days", 90), ("800 days", 800))
        ],
        "currency": currency,
        "summary": _summary(comparison.current, comparison.previous, currency),
        "charts": _charts(days, currency),
        "cohort_rows": _cohort_rows(days),
        "lines": [day.line() for day in reversed(days)],
    }
    context["table_rows"] = _table_rows(context["lines"])
    return TemplateResponse(request, "admin/events_app/kpi/game_kpis.html", context)


def _charts(days: list[DayKpis], currency: str) -> dict[str, SafeString]:
    """Return the four charts: per day, or per week (daily means) past WEEKLY_AFTER_DAYS, where bars would be hairs."""
    step = 1 if len(days) <= WEEKLY_AFTER_DAYS else 7
    buckets = [totals(days[index : index + step]) for index in range(0, len(days), step)]
    labels = [f"{days[index].day:%b %d}" for index in range(0, len(days), step)]
    per = "day" if step == 1 else "day, weekly means"

    def daily(value: Decimal | int, bucket: Totals) -> Decimal:
        return Decimal(value) / bucket.days

    return {
        "players": stacked_bar_chart(
            title=f"Active players per {per}: new and returning",
            labels=labels,
            series={
                "returning": [daily(b.player_days - b.new_players, b) for b in buckets],
                "new": [daily(b.new_players, b) for b in buckets],
            },
        ),
        "revenue": stacked_bar_chart(
            title=f"Revenue per {per} in {currency}: purchases and ads",
            labels=labels,
            series={
                "purchases": [daily(b.revenue_base, b) for b in buckets],
                "ads": [daily(b.ad_revenue_base, b) for b in buckets],
            },
            value_format=format_money,
        ),
        "arpdau": line_chart(
            title=f"ARPDAU in {currency} (purchase and ad revenue per daily active player)",
            labels=labels,
            series={"ARPDAU": [b.arpdau for b in buckets]},
            value_format=lambda value: f"{value:,.4f}",
        ),
        "sessions": line_chart(
            title=f"Mean session length in minutes, per {per.split(',')[0]}",
            labels=labels,
            series={
                "mean session (min)": [
                    None if b.avg_session_seconds is None else b.avg_session_seconds / 60 for b in buckets
                ],
            },
            value_format=lambda value: f"{value:,.1f}",
        ),
    }


def _cohort_rows(days: list[DayKpis]) -> SafeString:
    """Return the retention triangle's rows, newest install day first; a cell is blank until its day is over."""

    def cell(value: float | None) -> tuple[str, str]:
        return ("", "") if value is None else (shade(value), f"{value * 100:.1f} %")

    return format_html_join(
        "",
        '<tr id="cohort-{}"><th>{}</th><td class="num">{}</td>'
        + '<td class="num cell" style="{}">{}</td>' * len(RETENTION_DAYS)
        + "</tr>",
        (
            (
                day.day.isoformat(),
                day.day.isoformat(),
                format_count(day.new_players),
                *(part for later in RETENTION_DAYS for part in cell(day.retention(later))),
            )
            for day in reversed(days)
            if day.new_players
        ),
    )


def _table_rows(lines: list[dict]) -> SafeString:
    """Return the per-day table's rows: built here, as the template engine took most of an 800-day page's time."""

    def text(value) -> str:
        return "—" if value is None else str(value)

    return format_html_join(
        "",
        '<tr id="day-{}"><th>{}</th>' + '<td class="num">{}</td>' * 12 + "</tr>",
        (
            (
                line["date"],
                line["date"],
                *(text(line[key]) for key in KEYS[1:10]),
                *("" if line[key] is None else line[key] for key in KEYS[10:]),
            )
            for line in lines
        ),
    )


def _date(query, name: str, default: date) -> date:
    value = query.get(name, "")
    if not value:
        return default
    try:
        if not DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name}: a date as YYYY-MM-DD.") from None


def _summary(current: Totals, previous: Totals, currency: str) -> list[dict]:
    """Return the summary rows: a figure of the range, of the previous period, and the change in percent."""

    def row(label: str, key: str, now, before, text) -> dict:
        return {
            "label": label,
            "key": key,
            "current": "—" if now is None else text(now),
            "previous": "—" if before is None else text(before),
            "change": change(now, before),
        }

    def percent(value: Decimal) -> str:
        return f"{value * 100:.1f} %"

    def money(value: Decimal) -> str:
        return f"{format_money(value)} {currency}"

    return [
        row("mean daily active players", "dau", current.avg_dau, previous.avg_dau, lambda v: f"{v:,.1f}"),
        row("new players", "new_players", current.new_players, previous.new_players, format_count),
        row("sessions", "sessions", current.sessions, previous.sessions, format_count),
        row(
            "mean session length",
            "avg_session_seconds",
            current.avg_session_seconds,
            previous.avg_session_seconds,
            lambda v: f"{v / 60:,.1f} min",
        ),
        row("purchases", "purchases", current.purchases, previous.purchases, format_count),
        row(
            "paying players (summed over days)",
            "paying_players",
            current.paying_player_days,
            previous.paying_player_days,
            format_count,
        ),
        row("revenue", "revenue_base", current.revenue_base, previous.revenue_base, money),
        row("ad revenue", "ad_revenue_base", current.ad_revenue_base, previous.ad_revenue_base, money),
        row("ARPDAU", "arpdau", current.arpdau, previous.arpdau, lambda v: f"{v:,.4f} {currency}"),
        *(
            row(f"D{n} retention", f"retention_d{n}", current.retention[n], previous.retention[n], percent)
            for n in (1, 7, 30)
        ),
    ]
