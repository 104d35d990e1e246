"""Rejected events: the newest events the API refused, with their errors and body, to see why a game's fail."""

import orjson
from django.contrib import admin
from django.utils.html import format_html

from events_app.admin.base import ADMIN_CSS, ReadOnlyAdmin, pretty_json, utc_time
from events_app.models import RejectedEvent


@admin.register(RejectedEvent)
class RejectedEventAdmin(ReadOnlyAdmin):
    """The newest events the API refused (bounded: ingest.rejections), to see why a game's events fail."""

    list_display = ["received", "game", "status_code", "reason", "body_excerpt"]
    list_filter = ["game", "status_code"]
    list_select_related = ["game"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    sortable_by = ["received"]
    fields = ["received", "game", "status_code", "errors_json", "body_text"]
    readonly_fields = ["received", "errors_json", "body_text"]

    class Media:
        css = ADMIN_CSS

    received = utc_time("received_at", "received")

    @admin.display(description="reason")
    def reason(self, obj: RejectedEvent) -> str:
        text = "; ".join(f"{where}: {message}" for where, message in _flatten_errors(obj.errors))
        return text if len(text) <= 160 else text[:159] + "…"

    @admin.display(description="body")
    def body_excerpt(self, obj: RejectedEvent) -> str:
        body = obj.body if len(obj.body) <= 80 else obj.body[:79] + "…"
        return format_html("<code>{}</code>", body)

    @admin.display(description="errors")
    def errors_json(self, obj: RejectedEvent) -> str:
        return format_html('<pre class="json">{}</pre>', pretty_json(obj.errors))

    @admin.display(description="body as received (truncated)")
    def body_text(self, obj: RejectedEvent) -> str:
        try:
            body = pretty_json(orjson.loads(obj.body))
        except orjson.JSONDecodeError:
            body = obj.body
        return format_html('<pre class="json">{}</pre>', body)


def _flatten_errors(errors: object, where: str = "") -> list[tuple[str, str]]:
    """Return (field path, message) pairs from DRF's nested error structure."""
    if isinstance(errors, dict):
        pairs = []
        for key, value in errors.items():
            pairs += _flatten_errors(value, f"{where}.{key}" if where else str(key))
        return pairs
    if isinstance(errors, list):
        if all(isinstance(item, str) for item in errors):
            return [(where or "body", " ".join(errors))]
        pairs = []
        for index, item in enumerate(errors):
            pairs += _flatten_errors(item, f"{where}[{index}]")
        return pairs
    return [(where or "body", str(errors))]
