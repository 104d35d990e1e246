"""Django admin: read-only views of games, API keys, events and their delivery attempts."""

from django.contrib import admin

from .models import ApiKey, DeliveryAttempt, Event, Game


class ReadOnlyAdmin(admin.ModelAdmin):
    """The audit log is never edited by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Game)
class GameAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    list_display = ["prefix", "game", "name", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["game"]


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["attempted_at", "outcome", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "event_type", "game", "player_id", "delivery_state", "attempts"]
    list_filter = ["event_type", "delivery_state", "game", "platform", "currency"]
    search_fields = ["=event_id", "=player_id", "=transaction_id"]
    date_hierarchy = "received_at"
    list_select_related = ["game"]
    show_full_result_count = False
    inlines = [DeliveryAttemptInline]


# Exchange rates have their own admin module (currency handling lives apart).
from . import admin_rates  # noqa: E402, F401
