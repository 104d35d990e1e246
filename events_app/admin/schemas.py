"""Custom event schemas: every registered version per game and type, read-only; new versions from a pasted schema."""

import orjson
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from events_app import conf
from events_app.admin.base import ADMIN_CSS, ConsoleAdmin, pretty_json, utc_time
from events_app.event_types.custom import InvalidSchemaError, check_type_name, register_schema
from events_app.event_types.impact import Impact, rejection_impact
from events_app.models import EventSchema, Game
from sdk.contract import is_custom_type_name


class RegisterSchemaForm(forms.Form):
    """The game, the custom type's name and its JSON Schema as pasted text."""

    game = forms.ModelChoiceField(queryset=Game.objects.order_by("slug"))
    event_type = forms.CharField(
        label="Event type",
        max_length=64,
        help_text="The custom type's name, as clients send it in event_type: lower case letters, digits and _, "
        "starting with a letter (e.g. level_up); not a built-in type.",
    )
    schema = forms.CharField(
        label="JSON Schema",
        strip=False,
        widget=forms.Textarea(attrs={"rows": 18, "cols": 90, "class": "json-input", "spellcheck": "false"}),
        help_text="A JSON Schema (draft 2020-12) the event's properties must match, e.g. "
        '{"type": "object", "properties": {"level": {"type": "integer", "minimum": 1}}, "required": ["level"]}.',
    )

    def clean_event_type(self) -> str:
        event_type = self.cleaned_data["event_type"].strip()
        try:
            check_type_name(event_type)
        except InvalidSchemaError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return event_type

    def clean_schema(self) -> object:
        try:
            return orjson.loads(self.cleaned_data["schema"])
        except orjson.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not JSON: {exc}") from exc


@admin.register(EventSchema)
class EventSchemaAdmin(ConsoleAdmin):
    """Versions are never edited or deleted (events' lines name the version that checked them): add one instead.

    Registering a version needs the add permission (`events_app.add_eventschema`) and
    goes through events_app.event_types.custom.register_schema, which validates the schema.
    """

    list_display = ["event_type", "version_label", "game", "created"]
    list_display_links = ["event_type", "version_label"]
    list_filter = ["game", "event_type"]
    list_select_related = ["game"]
    search_fields = ["=event_type", "=game__slug"]
    search_help_text = "An exact type name or game slug."
    fields = ["game", "event_type", "version", "status", "created", "schema_json"]
    readonly_fields = fields

    class Media:
        css = ADMIN_CSS

    created = utc_time("created_at", "registered")

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        latest = EventSchema.objects.filter(game=OuterRef("game"), event_type=OuterRef("event_type"))
        return (
            super()
            .get_queryset(request)
            .annotate(latest_version=Subquery(latest.order_by("-version").values("version")[:1]))
        )

    @admin.display(description="version", ordering="version")
    def version_label(self, obj: EventSchema) -> str:
        if obj.version == obj.latest_version:
            return format_html('{} <span class="state-badge schema-latest">latest</span>', obj.version)
        return str(obj.version)

    @admin.display(description="in use")
    def status(self, obj: EventSchema) -> str:
        if obj.version == obj.latest_version:
            return "The latest version: new events of this type from this game are checked against it."
        return f"Superseded by version {obj.latest_version}: events since then are checked against that one."

    @admin.display(description="schema (JSON Schema draft 2020-12 of the event's properties)")
    def schema_json(self, obj: EventSchema) -> str:
        return format_html('<pre class="json" id="schema-json">{}</pre>', pretty_json(obj.schema))

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_register": self.has_add_permission(request)}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        schema = self.get_object(request, unquote(object_id))
        extra_context = {**(extra_context or {}), "can_register": self.has_add_permission(request)}
        if schema is not None:
            extra_context["register_url"] = _register_url(schema.game_id, schema.event_type)
            extra_context["events_url"] = "{}?{}".format(
                reverse("admin:events_app_event_changelist"),
                urlencode({"game__id__exact": schema.game_id, "event_type": schema.event_type}),
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def add_view(self, request: HttpRequest, form_url="", extra_context=None) -> HttpResponse:
        """Register a new version: a form on GET (prefilled with the latest version, if any); POST registers it.

        Before saving, the type's recent events are checked against the new version; if it
        would reject any, a confirmation page shows how many and why, and registers on its
        own POST (`_confirmed`).
        """
        if not self.has_add_permission(request):
            raise PermissionDenied
        latest = None
        if request.method == "POST":
            form = RegisterSchemaForm(request.POST)
            if "_edit" in request.POST:  # back from the confirmation step, the schema as it was
                form.is_valid()
            elif form.is_valid():
                data = form.cleaned_data
                try:
                    report = rejection_impact(game=data["game"], event_type=data["event_type"], schema=data["schema"])
                    if report.rejected and "_confirmed" not in request.POST:
                        return self._confirm(request, form, report)
                    registered = register_schema(
                        game=data["game"], event_type=data["event_type"], schema=data["schema"]
                    )
                except InvalidSchemaError as exc:
                    form.add_error("schema", str(exc))
                else:
                    return self._registered(request, registered, report)
        else:
            latest = _latest(request.GET.get("game"), request.GET.get("event_type"))
            initial = {"game": request.GET.get("game"), "event_type": request.GET.get("event_type", "")}
            if latest is not None:
                initial["schema"] = pretty_json(latest.schema)
            form = RegisterSchemaForm(initial=initial)
        context = {
            **self.admin_site.each_context(request),
            "title": "Register a custom event schema",
            "opts": self.opts,
            "form": form,
            "latest": latest,
        }
        return TemplateResponse(request, "admin/events_app/eventschema/register.html", context)

    def _confirm(self, request: HttpRequest, form: RegisterSchemaForm, report: Impact) -> HttpResponse:
        """The confirmation step: what the new version would reject, the same form again as hidden fields."""
        data = form.cleaned_data
        context = {
            **self.admin_site.each_context(request),
            "title": f"Register a version of {data['event_type']} that rejects recent events?",
            "opts": self.opts,
            "form": form,
            "game": data["game"],
            "event_type": data["event_type"],
            "summary": report.summary(data["event_type"]),
            "report": report,
        }
        return TemplateResponse(request, "admin/events_app/eventschema/confirm.html", context)

    def _registered(self, request: HttpRequest, schema: EventSchema, report: Impact) -> HttpResponse:
        self.log_addition(request, schema, f"Registered version {schema.version}.")
        self.message_user(
            request,
            f"Registered {schema.event_type} version {schema.version} for {schema.game.slug}: new events of this type "
            f"are checked against it within {conf.schema_cache_seconds():g} seconds on every server process. "
            + report.summary(schema.event_type),
            messages.WARNING if report.rejected else messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:events_app_eventschema_change", args=[schema.pk]))


def _register_url(game_id: int, event_type: str) -> str:
    return f"{reverse('admin:events_app_eventschema_add')}?{urlencode({'game': game_id, 'event_type': event_type})}"


def _latest(game_id: str | None, event_type: str | None) -> EventSchema | None:
    """Return the latest version of a type of a game named by the query string, or None.

    The query string is anyone's: a value that cannot name a game or a custom type finds nothing
    (int() refuses some digits str.isdigit() accepts, PostgreSQL refuses NUL characters).
    """
    if not game_id or not event_type or not game_id.isdecimal() or not is_custom_type_name(event_type):
        return None
    return EventSchema.objects.filter(game_id=int(game_id), event_type=event_type).order_by("-version").first()
