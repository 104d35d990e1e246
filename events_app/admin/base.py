"""What the console's admin modules share: checked list queries, read-only admins, JSON, one time format, badges."""

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import orjson
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import EmptyResultSet, FieldDoesNotExist
from django.db import models
from django.db.models.constants import LOOKUP_SEP
from django.utils.html import format_html

ADMIN_CSS = {"all": ["events_app/admin.css"]}

# The large columns (event payloads, error texts, rejected bodies, schemas): no index serves a
# filter on them, so one list URL filtering on one would read its whole table.
BULKY_FIELDS = (models.JSONField, models.TextField)


class CheckedChangeList(ChangeList):
    """A change list that refuses a query string it cannot run (Django's redirect to `?e=1`) instead of a 500.

    Django checks most lookup values when it filters, but some fail only later: a date
    drill-down whose end passes year 9999, a year lookup or a time zone offset out of
    range fail when the SQL is built, and NUL characters when PostgreSQL reads them.
    """

    def get_queryset(self, request, exclude_parameters=None):
        if any("\x00" in value for _, values in request.GET.lists() for value in values):
            raise IncorrectLookupParameters("NUL character in the query string")
        check_date_drill_down(self.date_hierarchy, self.params)
        queryset = super().get_queryset(request, exclude_parameters)
        try:
            queryset.query.get_compiler(using=queryset.db).as_sql()
        except EmptyResultSet:
            pass  # a filter nothing can match: an empty list, as Django shows it
        except (ValueError, OverflowError) as exc:
            raise IncorrectLookupParameters(exc) from exc
        return queryset


def check_date_drill_down(field: str | None, params: dict[str, str]) -> None:
    """Raise IncorrectLookupParameters unless FIELD__year[, __month[, __day]] name a year, month or day with an end.

    Django turns the drill-down into [start, end) and fails with a 500 when the end passes
    9999-12-31; a month or day without its year is not a drill-down and would fail the
    drill-down links.
    """
    if not field:
        return
    year, month, day = (params.get(f"{field}__{part}") for part in ("year", "month", "day"))
    if year is None and month is None and day is None:
        return
    if year is None or (day is not None and month is None):
        raise IncorrectLookupParameters(f"{field}: a month needs its year, a day its month")
    try:
        start = date(int(year), int(month or 1), int(day or 1))
        if day is not None:
            start + timedelta(days=1)
        elif month is not None:
            start + timedelta(days=32)
        else:
            start.replace(year=start.year + 1)
    except (ValueError, OverflowError) as exc:
        raise IncorrectLookupParameters(exc) from exc


def reads_bulky_field(model: type[models.Model], lookup: str) -> bool:
    """Return True if a list filter `lookup` reads a JSON or text column of `model` or of a model it relates to."""
    for part in lookup.split(LOOKUP_SEP):
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            return False  # a lookup or transform name: the path's fields end here
        if isinstance(field, BULKY_FIELDS):
            return True
        if not field.is_relation or field.related_model is None:
            return False
        model = field.related_model
    return False


class ConsoleAdmin(admin.ModelAdmin):
    """Every admin of the console: its list refuses filters on bulky columns and query strings it cannot run."""

    def get_changelist(self, request, **kwargs):
        return CheckedChangeList

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        # Refused lookups answer 400 (DisallowedModelAdminLookup), as Django's own refusals do.
        return not reads_bulky_field(self.model, lookup) and super().lookup_allowed(lookup, value, request)


class ReadOnlyAdmin(ConsoleAdmin):
    """The audit log is never edited by hand: browsing needs only the view permission."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def pretty_json(value: object) -> str:
    """Return `value` as indented JSON for a <pre>."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def state_badge(state: str, label: str) -> str:
    return format_html('<span class="state-badge state-{}" title="{}">{}</span>', state, label, state)


def plural(count: int, word: str, words: str | None = None) -> str:
    """Return "1 event", "2 events", "1,500 events"."""
    return f"{count:,} {word if count == 1 else (words or word + 's')}"


def format_utc(value: datetime | None, *, precise: bool = False) -> str:
    """Return the console's one way of writing a time: "2026-11-20 08:30:05 UTC" (precise: "…05.123456 UTC")."""
    if value is None:
        return "-"
    value = value.astimezone(UTC)
    return f"{value:%Y-%m-%d %H:%M:%S.%f} UTC" if precise else f"{value:%Y-%m-%d %H:%M:%S} UTC"


def utc_time(field_name: str, description: str, *, precise: bool = False) -> Callable:
    """Return an admin column or read-only field showing a datetime field with format_utc."""

    @admin.display(description=description, ordering=field_name)
    def show(model_admin, obj) -> str:
        return format_utc(getattr(obj, field_name), precise=precise)

    return show
