"""Django admin, the operator console: events and their delivery, resends, games and keys, rejections, dashboard.

Every list stays fast at millions of events: filters and search run on indexes, the
list never counts the whole table (EstimatedCountPaginator), distinct filter values
and the date drill-down are found by index seeks. The audit log is read-only; the
only change an operator makes to an event is a resend, which needs its own
permission (`events_app.resend_event`) and goes through events_app.resend.
"""

import uuid
from collections.abc import Callable
from datetime import UTC

import orjson
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR, IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ERROR_FLAG, ChangeList
from django.core.exceptions import PermissionDenied
from django.db import connections
from django.db.models import Count, F, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from .charts import format_count, format_money, stacked_bar_chart
from .dashboard import TimeSeries, build_dashboard, distinct_values
from .keys import issue_api_key, revoke_api_key, rotate_api_key
from .models import ApiKey, DeliveryAttempt, DeliveryState, Event, Game, RejectedEvent
from .paginators import EstimatedCountPaginator
from .records import LINE_FIELDS, encode_line
from .rejections import keep_count as rejections_kept
from .resend import ResendCounts, resend_event, resend_events

# The admin index links the dashboard (the template adds one module above the app list).
admin.site.index_template = "admin/events_app/index.html"

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


# ---------------------------------------------------------------------------------------------------------------
# Events


class DistinctValueFilter(admin.SimpleListFilter):
    """Filter on a plain column by the values it holds, found by seeks on the index that leads with it."""

    def lookups(self, request, model_admin):
        return [(value, value) for value in distinct_values(model=Event, field_name=self.parameter_name)]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset if value is None else queryset.filter(**{self.parameter_name: value})


class EventTypeFilter(DistinctValueFilter):
    title = "type"
    parameter_name = "event_type"


class PlatformFilter(DistinctValueFilter):
    title = "platform"
    parameter_name = "platform"


class CurrencyFilter(DistinctValueFilter):
    title = "currency"
    parameter_name = "currency"


class GameFilter(admin.RelatedFieldListFilter):
    """Filter by game; beside a filter on an undelivered state, let SQLite read the state's index.

    Undelivered states are rare by design, so (delivery_state, received_at) is the narrow
    index; SQLite keeps no per-value statistics and would walk every event of the game
    instead (most of a second per million events when counting). PostgreSQL's statistics see
    it, and an index on (game, delivery_state, ...) would serve both: then this is off.
    """

    def queryset(self, request, queryset):
        game_ids = self.used_parameters.get(self.lookup_kwarg)
        if game_ids and request.GET.get("delivery_state__exact") in UNDELIVERED and _prefer_state_index(queryset):
            try:
                ids = [int(value) for value in game_ids]
            except ValueError as exc:
                raise IncorrectLookupParameters(exc) from exc
            return queryset.alias(game_unindexed=F("game_id") + 0).filter(game_unindexed__in=ids)
        return super().queryset(request, queryset)


UNDELIVERED = {DeliveryState.PENDING, DeliveryState.FAILED, DeliveryState.DEAD}


def _prefer_state_index(queryset: QuerySet) -> bool:
    has_combined_index = any(list(index.fields[:2]) == ["game", "delivery_state"] for index in Event._meta.indexes)
    return connections[queryset.db].vendor == "sqlite" and not has_combined_index


class EventChangeList(ChangeList):
    """The event list reads neither the payload nor the error text of the rows it shows."""

    def get_queryset(self, request, exclude_parameters=None):
        return super().get_queryset(request, exclude_parameters).defer("payload", "last_error")


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["attempted", "outcome", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "Delivery attempts and resends (newest first)"
    attempted = utc_time("attempted_at", "attempted at (UTC)")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        # Part of the event's record: whoever may see the event sees its attempts.
        return request.user.has_perm("events_app.view_event")


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["received", "event_type", "game", "player_id", "delivery", "attempts"]
    list_display_links = ["received"]
    list_filter = [EventTypeFilter, ("game", GameFilter), "delivery_state", PlatformFilter, CurrencyFilter]
    # Searched by exact value on indexed columns (see get_search_results).
    search_fields = ["=event_id", "=player_id", "=transaction_id"]
    search_help_text = "An exact event id, player id or purchase transaction id."
    date_hierarchy = "received_at"
    list_select_related = ["game"]
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice is a scan per choice
    sortable_by = ["received"]  # received time: the only order an index serves under every filter
    paginator = EstimatedCountPaginator
    actions = ["resend_selected"]
    inlines = [DeliveryAttemptInline]
    fieldsets = [
        (None, {"fields": ["game", "event_id", "event_type", "player_id", "platform", "app_version_and_session"]}),
        (
            "Times (UTC)",
            {
                "fields": ["occurred", "sent", "received_exact", "derived"],
                "description": "derived = received - (sent - occurred) when the client gave sent_at, else occurred: "
                "the client's clock error taken out.",
            },
        ),
        ("Purchase", {"fields": ["transaction_id", "revenue_line", "revenue_base_line"]}),
        (
            "Delivery",
            {"fields": ["delivery", "attempts", "next_attempt", "last_error", "emitted", "delivered", "claimed"]},
        ),
        ("Payload", {"fields": ["payload_json"]}),
        ("Record sent to Firehose", {"fields": ["firehose_line"]}),
    ]
    readonly_fields = [
        "occurred",
        "sent",
        "received_exact",
        "derived",
        "next_attempt",
        "emitted",
        "delivered",
        "claimed",
        "app_version_and_session",
        "revenue_line",
        "revenue_base_line",
        "delivery",
        "payload_json",
        "firehose_line",
    ]

    class Media:
        css = ADMIN_CSS

    received = utc_time("received_at", "received (UTC)", precise=False)
    received_exact = utc_time("received_at", "received")
    occurred = utc_time("occurred_at", "occurred (client clock)")
    sent = utc_time("sent_at", "sent (client clock)")
    derived = utc_time("derived_at", "derived")
    next_attempt = utc_time("next_attempt_at", "next attempt")
    emitted = utc_time("emitted_at", "last sent (emitted_at)")
    delivered = utc_time("delivered_at", "delivered")
    claimed = utc_time("claimed_until", "leased by a sender until")

    # -- permissions -------------------------------------------------------------------------------------------

    def has_resend_permission(self, request: HttpRequest) -> bool:
        """Return True if the user may resend events (Event's `resend_event` permission)."""
        return request.user.has_perm("events_app.resend_event")

    # -- list --------------------------------------------------------------------------------------------------

    def get_changelist(self, request, **kwargs):
        return EventChangeList

    def get_search_results(self, request, queryset, search_term):
        """Match the term exactly against the event id, the player id and the transaction id.

        Exact matches stay on indexes (an icontains would read every row). A term that
        is not a UUID simply cannot match an event id, instead of failing the page.
        """
        term = search_term.strip()
        if len(term) >= 2 and term[0] == term[-1] and term[0] in "\"'":
            term = term[1:-1]
        if not term:
            return queryset, False
        match = Q(player_id=term) | Q(transaction_id=term)
        try:
            event_id = uuid.UUID(term)
        except ValueError:
            pass
        else:
            # The event id's unique index leads with the game: naming every game lets the
            # database seek it once per game instead of reading the table.
            games = list(Game.objects.values_list("pk", flat=True))
            match |= Q(game_id__in=games, event_id=event_id)
        return queryset.filter(match), False

    @admin.display(description="delivery", ordering="delivery_state")
    def delivery(self, obj: Event) -> str:
        return state_badge(obj.delivery_state, obj.get_delivery_state_display())

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_resend": self.has_resend_permission(request),
            "dashboard_url": reverse("admin:events_app_event_dashboard"),
        }
        return super().changelist_view(request, extra_context)

    # -- detail ------------------------------------------------------------------------------------------------

    def get_fieldsets(self, request, obj=None):
        if obj is not None and obj.event_type != "purchase":
            return [fieldset for fieldset in self.fieldsets if fieldset[0] != "Purchase"]
        return self.fieldsets

    @admin.display(description="app version / session")
    def app_version_and_session(self, obj: Event) -> str:
        payload = obj.payload or {}
        return f"{payload.get('app_version') or '-'} / {payload.get('session_id') or '-'}"

    @admin.display(description="revenue")
    def revenue_line(self, obj: Event) -> str:
        payload = obj.payload or {}
        if obj.revenue is None:
            return "-"
        return f"{payload.get('price', '?')} x {payload.get('quantity', 1)} = {payload.get('revenue')} {obj.currency}"

    @admin.display(description="revenue in base currency")
    def revenue_base_line(self, obj: Event) -> str:
        if obj.revenue_base is None:
            return "no exchange rate known yet"
        rate = f"rate {obj.fx_rate.normalize():f} on {obj.fx_date}" if obj.fx_rate is not None else "no rate"
        return f"{obj.revenue_base.normalize():f} {obj.base_currency} ({rate})"

    @admin.display(description="payload")
    def payload_json(self, obj: Event) -> str:
        return format_html('<pre class="json">{}</pre>', pretty_json(_in_line_order(obj.payload)))

    @admin.display(description="line")
    def firehose_line(self, obj: Event) -> str:
        if obj.emitted_at is None:
            return format_html(
                '<p class="help">Not sent yet. It will be sent as this line, with emitted_at the time of sending '
                '(shown here: now):</p><pre class="json line">{}</pre>',
                encode_line(obj.payload, emitted_at=timezone.now()).decode(),
            )
        return format_html(
            '<p class="help">Exactly as last sent, one NDJSON line:</p><pre class="json line">{}</pre>',
            encode_line(obj.payload, emitted_at=obj.emitted_at).decode(),
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_resend": self.has_resend_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    # -- resend ------------------------------------------------------------------------------------------------

    @admin.action(description="Resend selected events to Firehose", permissions=["resend"])
    def resend_selected(self, request: HttpRequest, queryset: QuerySet[Event]) -> None:
        counts = resend_events(queryset=queryset, user=request.user)
        report_resend(request, counts)

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("dashboard/", wrap(self.dashboard_view), name=f"{prefix}_dashboard"),
            path("resend-matching/", wrap(self.resend_matching_view), name=f"{prefix}_resend_matching"),
            path("<path:object_id>/resend/", wrap(require_POST(self.resend_view)), name=f"{prefix}_resend"),
            *super().get_urls(),
        ]

    def resend_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Resend one event (POST only), from the button on its page."""
        if not self.has_resend_permission(request):
            raise PermissionDenied
        event = self.get_object(request, unquote(object_id))
        if event is None:
            raise Http404("No such event.")
        report_resend(request, resend_event(event=event, user=request.user))
        return HttpResponseRedirect(reverse("admin:events_app_event_change", args=[event.pk]))

    def resend_matching_view(self, request: HttpRequest) -> HttpResponse:
        """Resend every event the list's current filters and search match: GET asks, POST does it."""
        if not self.has_resend_permission(request):
            raise PermissionDenied
        changelist_url = reverse("admin:events_app_event_changelist")
        try:
            cl = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(f"{changelist_url}?{ERROR_FLAG}=1")
        query_string = cl.get_query_string(remove=[IS_POPUP_VAR])
        if request.method == "POST":
            counts = resend_events(queryset=cl.queryset, user=request.user)
            report_resend(request, counts)
            return HttpResponseRedirect(changelist_url + query_string)
        context = {
            **self.admin_site.each_context(request),
            "title": "Resend all matching events?",
            "opts": self.opts,
            "cl": cl,
            "conditions": describe_filters(cl),
            "count": cl.paginator.display_count,
            "changelist_url": changelist_url + query_string,
        }
        return TemplateResponse(request, "admin/events_app/event/resend_matching.html", context)

    # -- dashboard ---------------------------------------------------------------------------------------------

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        """The pipeline's health at a glance, for every game or one (`?game=slug`)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        games = list(Game.objects.order_by("slug"))
        game = next((g for g in games if g.slug == request.GET.get("game")), None)
        data = build_dashboard(game=game)
        currency = data.base_currency
        charts = {
            "hourly": stacked_bar_chart(
                title="Events per hour, last 24 hours, by type",
                labels=[f"{start:%H}h" for start in data.hourly.buckets],
                series=data.hourly.series,
            ),
            "daily": stacked_bar_chart(
                title=f"Events per day, last {len(data.daily.buckets)} days, by type",
                labels=[f"{start:%b %d}" for start in data.daily.buckets],
                series=data.daily.series,
            ),
            "revenue": stacked_bar_chart(
                title=f"Revenue per day in {currency}, by game",
                labels=[f"{start:%b %d}" for start in data.revenue.buckets],
                series=data.revenue.series,
                value_format=format_money,
                empty_text="No purchases with a known exchange rate in this period",
            ),
        }
        list_url = reverse("admin:events_app_event_changelist")
        game_filter = {"game__id__exact": game.pk} if game else {}

        def list_link(state: str) -> str:
            return f"{list_url}?{urlencode({'delivery_state__exact': state, **game_filter})}"

        backlog = data.backlog
        context = {
            **self.admin_site.each_context(request),
            "title": "Pipeline dashboard" + (f": {game.slug}" if game else ""),
            "opts": self.opts,
            "dashboard": data,
            "charts": charts,
            "games": games,
            "game": game,
            "backlog_rows": [
                ("pending", backlog.pending, list_link(DeliveryState.PENDING)),
                ("failed", backlog.failed, list_link(DeliveryState.FAILED)),
                ("dead", backlog.dead, list_link(DeliveryState.DEAD)),
            ],
            "oldest_pending_age": timesince(backlog.oldest_pending_at, data.now) if backlog.oldest_pending_at else None,
            "revenue_total": format_money(data.revenue.total()),
            "tables": [
                dashboard_table("Events per hour", data.hourly, "%Y-%m-%d %H:00", format_count),
                dashboard_table("Events per day", data.daily, "%Y-%m-%d", format_count),
                dashboard_table(f"Revenue per day ({currency})", data.revenue, "%Y-%m-%d", format_money),
            ],
            "rejections_kept": rejections_kept(),
            "changelist_url": list_url,
        }
        return TemplateResponse(request, "admin/events_app/event/dashboard.html", context)


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


def report_resend(request: HttpRequest, counts: ResendCounts) -> None:
    """Tell the operator what a resend did, in counts."""
    text = f"Resent {counts.resent} event{'s' if counts.resent != 1 else ''} (queued for the delivery worker)"
    if counts.skipped:
        text += f"; skipped {counts.skipped} already pending or being sent"
    level = messages.SUCCESS if counts.resent else messages.WARNING
    messages.add_message(request, level, text + ".")


def describe_filters(cl: ChangeList) -> list[tuple[str, str]]:
    """Return (what, value) pairs naming the list's active filters, search and date."""
    described = []
    for spec in cl.filter_specs:
        if not any(parameter in cl.params for parameter in spec.expected_parameters()):
            continue
        for choice in spec.choices(cl):
            if choice.get("selected"):
                described.append((str(spec.title), str(choice["display"])))
    field = cl.date_hierarchy
    date = [cl.params.get(f"{field}__{part}") for part in ("year", "month", "day")]
    if date[0]:
        described.append(("received", "-".join(part.zfill(2) for part in date if part)))
    if cl.query:
        described.append(("search", cl.query))
    return described


def _in_line_order(payload: dict) -> dict:
    ordered = {name: payload[name] for name in LINE_FIELDS if name in payload}
    ordered.update(payload)
    return ordered


# ---------------------------------------------------------------------------------------------------------------
# Games and API keys


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ["prefix", "name", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Game)
class GameAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "active_keys", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [ApiKeyInline]

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(active_key_count=Count("api_keys", filter=Q(api_keys__revoked_at__isnull=True)))
        )

    def get_readonly_fields(self, request, obj=None):
        # The slug is in every event line already sent: renaming it would split the game's data.
        return ["slug", "created_at"] if obj is not None else ["created_at"]

    @admin.display(description="active keys", ordering="active_key_count")
    def active_keys(self, obj: Game) -> int:
        return obj.active_key_count

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_issue_key": request.user.has_perm("events_app.add_apikey"),
            "issue_key_url": reverse("admin:events_app_apikey_add"),
        }
        return super().change_view(request, object_id, form_url, extra_context)


class IssueKeyForm(forms.Form):
    game = forms.ModelChoiceField(queryset=Game.objects.order_by("slug"), help_text="Create the game first if new.")
    name = forms.CharField(
        max_length=200, required=False, help_text="What uses the key, e.g. “ios-production”; helps rotating later."
    )


class KeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "active"), ("revoked", "revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are issued (plaintext shown once), revoked and rotated through events_app.keys, never edited."""

    list_display = ["key_prefix", "game", "name", "state", "created_at", "last_used_at", "revoked_at"]
    list_filter = [KeyStateFilter, "game"]
    list_select_related = ["game"]
    search_fields = ["=prefix", "name", "game__slug"]
    fields = ["game", "name", "key_prefix", "state", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["game", "key_prefix", "state", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_selected", "rotate_selected"]

    class Media:
        css = ADMIN_CSS

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the row keeps the key's history

    @admin.display(description="key", ordering="prefix")
    def key_prefix(self, obj: ApiKey) -> str:
        return format_html("<code>{}…</code>", obj.prefix)

    @admin.display(description="state", ordering="revoked_at")
    def state(self, obj: ApiKey) -> str:
        state = "active" if obj.is_active else "revoked"
        return format_html('<span class="state-badge key-{}">{}</span>', state, state)

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/revoke/", wrap(require_POST(self.revoke_view)), name=f"{prefix}_revoke"),
            path("<path:object_id>/rotate/", wrap(require_POST(self.rotate_view)), name=f"{prefix}_rotate"),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        """Issue a key: a form on GET; on POST the new key's plaintext, shown this once."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = IssueKeyForm(request.POST)
            if form.is_valid():
                game, name = form.cleaned_data["game"], form.cleaned_data["name"]
                api_key, plaintext = issue_api_key(game_slug=game.slug, name=name)
                self.log_addition(request, api_key, "Issued.")
                return self._show_plaintexts(request, [(api_key, plaintext)], title="API key issued")
        else:
            form = IssueKeyForm(initial={"game": request.GET.get("game")})
        context = {
            **self.admin_site.each_context(request),
            "title": "Issue an API key",
            "opts": self.opts,
            "form": form,
        }
        return TemplateResponse(request, "admin/events_app/apikey/issue.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_manage_keys": self.has_change_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Revoke one key (POST only)."""
        api_key = self._key_to_change(request, object_id)
        if api_key.is_active:
            revoke_api_key(api_key=api_key)
            self.log_change(request, api_key, "Revoked.")
            self.message_user(request, f"Revoked key {api_key.prefix}…; requests carrying it now get 401.")
        else:
            self.message_user(request, f"Key {api_key.prefix}… was already revoked.", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:events_app_apikey_change", args=[api_key.pk]))

    def rotate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Replace one key with a new one for the same game and name (POST only); show the new plaintext."""
        api_key = self._key_to_change(request, object_id)
        if not api_key.is_active:
            self.message_user(request, f"Key {api_key.prefix}… is revoked; issue a new one instead.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:events_app_apikey_change", args=[api_key.pk]))
        return self._show_plaintexts(request, [self._rotate(request, api_key)], title="API key rotated")

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        for api_key in queryset.filter(revoked_at__isnull=True).select_related("game"):
            revoke_api_key(api_key=api_key)
            self.log_change(request, api_key, "Revoked.")
            revoked += 1
        skipped = queryset.count() - revoked
        text = f"Revoked {revoked} key{'s' if revoked != 1 else ''}"
        self.message_user(
            request,
            text + (f"; skipped {skipped} already revoked." if skipped else "."),
            messages.SUCCESS if revoked else messages.WARNING,
        )

    @admin.action(description="Rotate selected keys (show the new keys once)", permissions=["change"])
    def rotate_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> HttpResponse | None:
        active = list(queryset.filter(revoked_at__isnull=True).select_related("game"))
        skipped = queryset.count() - len(active)
        if not active:
            self.message_user(request, f"Rotated 0 keys; skipped {skipped} already revoked.", messages.WARNING)
            return None
        issued = [self._rotate(request, api_key) for api_key in active]
        return self._show_plaintexts(
            request, issued, title=f"Rotated {len(issued)} key{'s' if len(issued) != 1 else ''}", skipped=skipped
        )

    def _key_to_change(self, request: HttpRequest, object_id: str) -> ApiKey:
        if not self.has_change_permission(request):
            raise PermissionDenied
        api_key = self.get_object(request, unquote(object_id))
        if api_key is None:
            raise Http404("No such API key.")
        return api_key

    def _rotate(self, request: HttpRequest, api_key: ApiKey) -> tuple[ApiKey, str]:
        new_key, plaintext = rotate_api_key(api_key=api_key)
        self.log_change(request, api_key, f"Revoked: rotated to {new_key.prefix}….")
        self.log_addition(request, new_key, f"Issued: rotation of {api_key.prefix}….")
        return new_key, plaintext

    def _show_plaintexts(
        self, request: HttpRequest, issued: list[tuple[ApiKey, str]], *, title: str, skipped: int = 0
    ) -> HttpResponse:
        """Render new keys' plaintexts: the only time they are ever shown (never cached, never stored)."""
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "issued": issued,
            "skipped": skipped,
        }
        response = TemplateResponse(request, "admin/events_app/apikey/issued.html", context)
        response["Cache-Control"] = "no-store"
        return response


# ---------------------------------------------------------------------------------------------------------------
# Rejected events


@admin.register(RejectedEvent)
class RejectedEventAdmin(ReadOnlyAdmin):
    """The newest events the API refused (bounded, see events_app.rejections), to see why a game's events fail."""

    list_display = ["received_at", "game", "status_code", "reason", "body_excerpt"]
    list_filter = ["game", "status_code"]
    list_select_related = ["game"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    sortable_by = ["received_at"]
    fields = ["received_at", "game", "status_code", "errors_json", "body_text"]
    readonly_fields = ["errors_json", "body_text"]

    class Media:
        css = ADMIN_CSS

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


# Exchange rates have their own admin module (currency handling lives apart).
from . import admin_rates  # noqa: E402, F401
