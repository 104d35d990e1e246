"""Games: their API keys, the policy for custom types without a schema, registered schemas, events by type."""

from django.contrib import admin
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.http import urlencode

from events_app.admin.base import ADMIN_CSS, ConsoleAdmin, utc_time
from events_app.admin.kpi import kpi_urls
from events_app.admin.queries import type_counts
from events_app.event_types import builtin
from events_app.event_types.custom import registered_types
from events_app.models import ApiKey, Event, Game


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ["prefix", "name", "created", "last_used", "revoked"]
    readonly_fields = fields
    extra = 0
    created = utc_time("created_at", "created")
    last_used = utc_time("last_used_at", "last used")
    revoked = utc_time("revoked_at", "revoked")
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Game)
class GameAdmin(ConsoleAdmin):
    """A game's page also shows its custom event types (latest versions) and its newest events counted by type."""

    list_display = ["slug", "name", "active_keys", "unknown_events", "created"]
    list_filter = ["unknown_events"]
    search_fields = ["slug", "name"]
    inlines = [ApiKeyInline]

    class Media:
        css = ADMIN_CSS

    created = utc_time("created_at", "created")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(active_key_count=Count("api_keys", filter=Q(api_keys__revoked_at__isnull=True)))
        )

    def get_fieldsets(self, request, obj=None):
        return [
            (None, {"fields": ["slug", "name", "created"] if obj is not None else ["slug", "name"]}),
            (
                "Custom event types",
                {
                    "fields": ["unknown_events"],
                    "description": "An event whose type is neither built in nor registered below is rejected "
                    "(400 naming event_type) or accepted unchecked, as chosen here. Applies within 5 seconds.",
                },
            ),
        ]

    def get_readonly_fields(self, request, obj=None):
        # The slug is in every event line already sent: renaming it would split the game's data.
        return ["slug", "created"] if obj is not None else ["created"]

    def has_delete_permission(self, request, obj=None) -> bool:
        # A game with events cannot be deleted (the log protects them): no Delete button that always fails.
        if obj is not None and Event.objects.filter(game=obj).exists():
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="active keys", ordering="active_key_count")
    def active_keys(self, obj: Game) -> int:
        return obj.active_key_count

    def get_urls(self):
        return kpi_urls(self) + super().get_urls()  # the game's KPI page (events_app.admin.kpi)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context = {**context, **self._game_context(request, obj)}
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _game_context(self, request, game: Game) -> dict:
        """Return the game page's keys link, its registered custom types and its events by type.

        Each part only for a user who may see what it tells: the types' names are the
        schemas' (view or add a schema), the counts are the events' (view events); a user
        who may only view games sees neither, and neither is read.
        """
        schemas_url = reverse("admin:events_app_eventschema_changelist")
        register_url = reverse("admin:events_app_eventschema_add")
        events_url = reverse("admin:events_app_event_changelist")
        can_view_schemas = request.user.has_perm("events_app.view_eventschema")
        can_register_schema = request.user.has_perm("events_app.add_eventschema")
        can_view_events = request.user.has_perm("events_app.view_event")

        def of_type(event_type: str, **query) -> str:
            return urlencode({**query, "event_type": event_type})

        context = {
            "can_issue_key": request.user.has_perm("events_app.add_apikey"),
            "issue_key_url": reverse("admin:events_app_apikey_add"),
            "can_view_schemas": can_view_schemas,
            "can_register_schema": can_register_schema,
            "can_view_events": can_view_events,
            "register_schema_url": f"{register_url}?{urlencode({'game': game.pk})}",
        }
        if can_view_schemas or can_register_schema:
            context["custom_types"] = [
                {
                    "event_type": event_type,
                    "latest": latest,
                    "versions_url": f"{schemas_url}?{of_type(event_type, game__id__exact=game.pk)}",
                    "register_url": f"{register_url}?{of_type(event_type, game=game.pk)}",
                }
                for event_type, latest in registered_types(game=game)
            ]
        if can_view_events:
            counts = type_counts(game=game)
            context["type_counts"] = counts
            context["type_count_rows"] = [
                (
                    event_type,
                    "built-in" if builtin(event_type) is not None else "custom",
                    count,
                    # The list over the days counted, so that it shows the events counted.
                    f"{events_url}?{of_type(event_type, game__id__exact=game.pk, received=f'{counts.days}d')}",
                )
                for event_type, count in counts.counts.items()
            ]
        return context
