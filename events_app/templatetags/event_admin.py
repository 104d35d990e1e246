"""Template tags of the event admin: an index-reading date drill-down, the admin index's pipeline panel."""

from datetime import datetime, timedelta

from django import template
from django.utils import formats, timezone
from django.utils.text import capfirst

from events_app.admin.dashboard import index_panel

register = template.Library()

MAX_CHOICES = 31  # days in a month, the most any level shows


@register.inclusion_tag("admin/date_hierarchy.html")
def event_date_hierarchy(cl) -> dict:
    """Return the context of Django's date drill-down, found with index seeks.

    Django's own tag asks for the DISTINCT truncated dates of every matching row
    (a Python function per row on SQLite, seconds over a million events). Here each
    year, month or day that has events is found by one "first event at or after this
    time" query, so a level costs at most one query per link it shows.
    """
    field = cl.date_hierarchy
    year_field, month_field, day_field = f"{field}__year", f"{field}__month", f"{field}__day"
    try:
        year = int(cl.params[year_field]) if year_field in cl.params else None
        month = int(cl.params[month_field]) if month_field in cl.params else None
        day = int(cl.params[day_field]) if day_field in cl.params else None
    except ValueError:
        return {"show": False}
    # Buckets in the current time zone, as the change list's own date filter builds them.
    queryset = cl.queryset.order_by()

    def link(filters: dict) -> str:
        return cl.get_query_string(filters, [f"{field}__"])

    if year is None:
        # Start at the deepest level that still has a choice, as Django's tag does.
        first = _first_at_or_after(queryset, field, None, ascending=True)
        last = _first_at_or_after(queryset, field, None, ascending=False)
        if first is None or last is None:
            return {"show": False}
        if first.year == last.year:
            year = first.year
            if first.month == last.month:
                month = first.month

    if year is not None and month is not None and day is not None:
        chosen = datetime(year, month, day, tzinfo=timezone.get_current_timezone())
        return {
            "show": True,
            "back": {"link": link({year_field: year, month_field: month}), "title": _format(chosen, "YEAR_MONTH")},
            "choices": [{"title": _format(chosen, "MONTH_DAY")}],
        }
    if year is not None and month is not None:
        start = datetime(year, month, 1, tzinfo=timezone.get_current_timezone())
        days = _starts_with_events(queryset, field, start=start, end=_next_month(start), unit="day")
        return {
            "show": True,
            "back": {"link": link({year_field: year}), "title": str(year)},
            "choices": [
                {
                    "link": link({year_field: year, month_field: month, day_field: one.day}),
                    "title": _format(one, "MONTH_DAY"),
                }
                for one in days
            ],
        }
    if year is not None:
        start = datetime(year, 1, 1, tzinfo=timezone.get_current_timezone())
        months = _starts_with_events(queryset, field, start=start, end=start.replace(year=year + 1), unit="month")
        return {
            "show": True,
            "back": {"link": link({}), "title": "All dates"},
            "choices": [
                {"link": link({year_field: year, month_field: m.month}), "title": _format(m, "YEAR_MONTH")}
                for m in months
            ],
        }
    years = _starts_with_events(queryset, field, start=None, end=None, unit="year")
    return {
        "show": True,
        "back": None,
        "choices": [{"link": link({year_field: y.year}), "title": str(y.year)} for y in years],
    }


def _first_at_or_after(queryset, field: str, start: datetime | None, *, ascending: bool) -> datetime | None:
    if start is not None:
        queryset = queryset.filter(**{f"{field}__gte": start})
    ordered = queryset.order_by(field if ascending else f"-{field}")
    value = ordered.values_list(field, flat=True).first()
    return None if value is None else timezone.localtime(value)


def _starts_with_events(queryset, field: str, *, start, end, unit: str) -> list[datetime]:
    """Return the start of each year, month or day in [start, end) that has at least one event."""
    if end is not None:
        queryset = queryset.filter(**{f"{field}__lt": end})
    found: list[datetime] = []
    cursor = start
    while len(found) < MAX_CHOICES:
        first = _first_at_or_after(queryset, field, cursor, ascending=True)
        if first is None:
            break
        bucket = _truncate(first, unit)
        found.append(bucket)
        cursor = _next(bucket, unit)
    return found


def _truncate(value: datetime, unit: str) -> datetime:
    value = value.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit in ("month", "year"):
        value = value.replace(day=1)
    if unit == "year":
        value = value.replace(month=1)
    return value


def _next(value: datetime, unit: str) -> datetime:
    if unit == "day":
        return value + timedelta(days=1)
    if unit == "month":
        return _next_month(value)
    return value.replace(year=value.year + 1)


def _next_month(value: datetime) -> datetime:
    return (value.replace(day=1) + timedelta(days=32)).replace(day=1)


def _format(value: datetime, kind: str) -> str:
    return capfirst(formats.date_format(value.date(), f"{kind}_FORMAT"))


@register.inclusion_tag("admin/events_app/pipeline_panel.html")
def pipeline_panel() -> dict:
    """Return the admin index's pipeline panel: the dashboard's backlog and worker figures (see admin.dashboard)."""
    return index_panel()
