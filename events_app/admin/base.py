"""What every admin module of the console shares: read-only admins, JSON blocks, one time format, badges, plurals."""

from collections.abc import Callable
from datetime import UTC, datetime

import orjson
from django.contrib import admin
from django.utils.html import format_html

ADMIN_CSS = {"all": ["events_app/admin.css"]}


class ReadOnlyAdmin(admin.ModelAdmin):
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
