"""What every admin module of the console shares: read-only admins, JSON blocks, UTC columns, badges, plurals."""

from collections.abc import Callable
from datetime import UTC

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


def utc_time(field_name: str, description: str, *, precise: bool = True) -> Callable:
    """Return an admin column showing a datetime field in UTC: to the microsecond, or to the second."""

    @admin.display(description=description, ordering=field_name)
    def show(model_admin, obj) -> str:
        value = getattr(obj, field_name)
        if value is None:
            return "-"
        value = value.astimezone(UTC)
        return value.isoformat().replace("+00:00", "Z") if precise else f"{value:%Y-%m-%d %H:%M:%S}"

    return show
