"""The event list and page: a time range, keyset pages, exact searches, the record as sent, its delivery, resends."""

import uuid
from datetime import datetime, timedelta

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.options import IS_POPUP_VAR, IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ERROR_FLAG, ChangeList
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.fields.json import KT
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from events_app import logstore
from events_app.admin import dashboard, export, live
from events_app.admin.arrival import first_id_since
from events_app.admin.base import (
    ADMIN_CSS,
    CheckedChangeList,
    ReadOnlyAdmin,
    format_utc,
    plural,
    pretty_json,
    state_badge,
    utc_time,
)
from events_app.admin.paginators import capped_count
from events_app.admin.privacy import EraseSelectedPlayersMixin
from events_app.admin.queries import counted_values
from events_app.delivery.records import LINE_FIELDS, encode_line
from events_app.delivery.relay import call_that_delivered
from events_app.delivery.resend import ResendCounts, resend_event, resend_events
from events_app.delivery.status import delivery_issue, delivery_state
from events_app.event_types import builtin, revenue_types
from events_app.models import (
    DeliveryCall,
    DeliveryCursor,
    DeliveryIssue,
    DeliveryState,
    Event,
    EventSchema,
    Game,
    IssueState,
    PurchaseKey,
    UnknownEventPolicy,
)

RANGE_PARAMETER = "received"
DEFAULT_RANGE = "24h"
# The time ranges the list offers, newest events first in each: the range bounds every query of the
# list, so that PostgreSQL reads only the day partitions inside it.
RANGES = {
    "1h": ("Last hour", timedelta(hours=1)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
    "all": ("All time", None),
}
# Filter values offered are those counted in EventHour over the range, at most this far back.
VALUES_LOOKBACK = timedelta(days=30)


def range_start(request: HttpRequest, *, now: datetime | None = None) -> datetime | None:
    """Return the start of the list's time range (`?received=`, default the last 24 hours); None for all time."""
    key = request.GET.get(RANGE_PARAMETER) or DEFAULT_RANGE
    if key not in RANGES:
        raise IncorrectLookupParameters(f"unknown time range {key!r}")
    span = RANGES[key][1]
    return None if span is None else _now(request, now) - span


def _now(request: HttpRequest, now: datetime | None = None) -> datetime:
    """Return one "now" per request, so that the range and the filter values agree."""
    if not hasattr(request, "_events_now"):
        request._events_now = now or timezone.now()
    return request._events_now


class ReceivedRangeFilter(admin.SimpleListFilter):
    """The time range on received_at: the last hour, 24 hours (the default), 7 days, 30 days, or all time."""

    title = "received"
    parameter_name = RANGE_PARAMETER

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in RANGES.items()]

    def has_output(self) -> bool:
        return True

    def choices(self, changelist):
        chosen = self.value() or DEFAULT_RANGE
        for key, label in self.lookup_choices:
            yield {
                "selected": chosen == key,
                "query_string": changelist.get_query_string({self.parameter_name: key}, [BEFORE_PARAMETER]),
                "display": label,
            }

    def queryset(self, request, queryset):
        since = range_start(request)
        if since is None:
            return queryset
        queryset = queryset.filter(received_at__gte=since)
        return queryset.filter(pk__gte=first_id_since(since)) if connection.vendor == "sqlite" else queryset


class DistinctValueFilter(admin.SimpleListFilter):
    """Filter on a plain column by the values the relays counted (EventHour) over the list's time range.

    A value that occurs only in events no relay has passed yet, or past the first 100,
    is not offered but still filters when given in the URL.
    """

    def lookups(self, request, model_admin):
        try:
            since = range_start(request)
        except IncorrectLookupParameters:
            since = None
        floor = _now(request) - VALUES_LOOKBACK
        since = floor if since is None or since < floor else since
        # One query for the three filters of the page.
        cached = getattr(request, "_events_values", None)
        if cached is None or cached[0] != since:
            cached = request._events_values = (since, counted_values(since=since))
        return [(value, value) for value in cached[1][self.parameter_name]]

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


class DeliveryStateFilter(admin.SimpleListFilter):
    """Filter by delivery state, derived: the event's issue if it has one, else whether a relay has passed it."""

    title = "delivery"
    parameter_name = "delivery_state"

    def lookups(self, request, model_admin):
        return DeliveryState.choices

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if value not in DeliveryState.values:
            raise IncorrectLookupParameters(f"unknown delivery state {value!r}")
        if value in (DeliveryState.FAILED, DeliveryState.DEAD):
            # The issues are few: select the events by their ids.
            return queryset.filter(pk__in=DeliveryIssue.objects.filter(state=value).values("event_id"))
        waiting = logstore.not_relayed(list(DeliveryCursor.objects.all()))
        if value == DeliveryState.PENDING:
            return queryset.filter(
                Q(pk__in=DeliveryIssue.objects.filter(state=IssueState.PENDING).values("event_id"))
                | (Q(waiting) & ~Q(_has_issue()))
            )
        return queryset.filter(
            Q(pk__in=DeliveryIssue.objects.filter(state=IssueState.DELIVERED).values("event_id"))
            | (~Q(waiting) & ~Q(_has_issue()))
        )


def _has_issue() -> Exists:
    # NOT EXISTS, an anti-join probing the issues' unique event index row by row: NOT IN
    # over every issue's id cannot be hashed once they outgrow work_mem (250,000 at
    # 10 million events), and then reads them all again for each event.
    return Exists(DeliveryIssue.objects.filter(event_id=OuterRef("pk")))


BEFORE_PARAMETER = "before"


class KeysetPage:
    """The list's paging: newest first by id, a page of older events after `?before=<id>`; never a count."""

    def __init__(self, *, rows: list, per_page: int, has_older: bool, before: int | None):
        self.rows = rows
        self.per_page = per_page
        self.has_older = has_older
        self.before = before
        self.count = len(rows)
        self.display_count = f"{len(rows):,}{'+' if has_older else ''}"

    @property
    def oldest_id(self) -> int | None:
        return self.rows[-1].pk if self.rows else None


class EventChangeList(CheckedChangeList):
    """The event list: newest first (by id, the arrival order), a page at a time by keyset, inside a time range.

    The payload is never loaded: the purchase column takes its two fields in the same
    query, and the delivery columns come from the event's issue (a left join on its
    unique index) and the relays' cursors, in the same query.
    """

    def get_filters_params(self, params=None):
        lookup_params = super().get_filters_params(params)
        lookup_params.pop(BEFORE_PARAMETER, None)
        return lookup_params

    def get_ordering(self, request, queryset):
        return ["-pk"]

    def get_query_string(self, new_params=None, remove=None):
        """Return the list's query string; a changed filter or range starts again from the newest page."""
        new_params = dict(new_params or {})
        if BEFORE_PARAMETER not in new_params:
            remove = [*(remove or []), BEFORE_PARAMETER]
        return super().get_query_string(new_params, remove)

    def get_queryset(self, request, exclude_parameters=None):
        return (
            super()
            .get_queryset(request, exclude_parameters)
            .defer("payload")
            .annotate(
                product=KT("payload__properties__product_id"),
                price=KT("payload__price"),
                issue_state=F("issue__state"),
                issue_attempts=F("issue__attempts"),
                issue_next_attempt_at=F("issue__next_attempt_at"),
                issue_last_error=F("issue__last_error"),
                waiting=logstore.not_relayed(list(DeliveryCursor.objects.all())),
            )
        )

    def get_results(self, request):
        """Read one page (and one row more, to know if there is an older page); count nothing."""
        raw = request.GET.get(BEFORE_PARAMETER)
        try:
            before = int(raw) if raw not in (None, "") else None
        except ValueError as exc:
            raise IncorrectLookupParameters(f"before: not an event id: {raw!r}") from exc
        page = self.queryset if before is None else self.queryset.filter(pk__lt=before)
        rows = list(page[: self.list_per_page + 1])
        self.paginator = KeysetPage(
            rows=rows[: self.list_per_page],
            per_page=self.list_per_page,
            has_older=len(rows) > self.list_per_page,
            before=before,
        )
        self.result_list = self.paginator.rows
        self.result_count = len(self.result_list)
        self.full_result_count = None
        self.show_full_result_count = False
        self.show_admin_actions = True
        self.can_show_all = False
        self.multi_page = False  # no page numbers: the older and newest links instead (pagination.html)
        self.show_all = False

    @property
    def older_url(self) -> str | None:
        if not self.paginator.has_older:
            return None
        return self.get_query_string({BEFORE_PARAMETER: self.paginator.oldest_id})

    @property
    def newest_url(self) -> str | None:
        return None if self.paginator.before is None else self.get_query_string(remove=[BEFORE_PARAMETER])


LIST_ERROR_CHARS = 48  # of the last error in the list; the whole of it shows on hover and on the event's page
REVENUE = "Revenue"
CUSTOM_TYPE = "Custom type"
SENT_RECORD = "Record sent to Firehose"
UNSENT_RECORD = "Record to send to Firehose (not delivered)"
# The failed and dead lists are read for their errors: the error comes right after the state and
# the purchase column goes, so that the last error is on screen at 1366 px with the navigation
# sidebar open (what an event is follows, scrolled to when needed).
TROUBLE_STATES = (DeliveryState.FAILED, DeliveryState.DEAD)
TROUBLE_COLUMNS = [
    "received",
    "delivery",
    "attempts",
    "last_error_excerpt",
    "next_attempt",
    "event_type",
    "game",
    "player_id",
]


@admin.register(Event)
class EventAdmin(EraseSelectedPlayersMixin, ReadOnlyAdmin):
    """Events and their delivery: read-only, fast at millions of rows; a resend is the only change.

    The list shows a time range of received_at (default the last 24 hours; PostgreSQL
    reads only its day partitions), newest first by id, paged by keyset: it never
    counts. Filter values come from the relays' per-hour counts (EventHour);
    searches are exact, on the (game, player_id) index and the purchase keys.
    A resend needs its own permission (`events_app.resend_event`)
    beside the view permission, and goes through events_app.delivery.resend.
    """

    list_display = [
        "received",
        "event_type",
        "game",
        "player_id",
        "purchase",
        "delivery",
        "attempts",
        "next_attempt",
        "last_error_excerpt",
    ]
    list_display_links = ["received"]
    list_filter = [ReceivedRangeFilter, EventTypeFilter, "game", DeliveryStateFilter, PlatformFilter, CurrencyFilter]
    # Searched by exact value (see get_search_results).
    search_fields = ["=event_id", "=player_id", "=transaction_id"]
    search_help_text = (
        "An exact player id, purchase transaction id or event id, among the events received in the time "
        "range chosen on the right (All time for a player's whole history)."
    )
    list_select_related = ["game"]
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice is a scan per choice
    sortable_by = []  # arrival order (newest first by id) only: the order the primary key serves
    ordering = ["-id"]
    actions = ["resend_selected", "erase_selected_players"]
    fieldsets = [
        (None, {"fields": ["game", "event_id", "event_type", "player_id", "platform", "app_version_and_session"]}),
        (CUSTOM_TYPE, {"fields": ["event_schema"]}),
        (
            "Times",
            {
                "fields": ["occurred", "sent", "received_exact", "derived"],
                "description": "derived = received - (sent - occurred) when the client gave sent_at, else occurred: "
                "the client's clock error taken out.",
            },
        ),
        (REVENUE, {"fields": ["transaction_id", "revenue_line", "revenue_base_line"]}),
        (
            "Delivery",
            {"fields": ["delivery", "delivered_by", "issue_summary"]},
        ),
        ("Payload", {"fields": ["payload_json"]}),
        (SENT_RECORD, {"fields": ["firehose_line"]}),
    ]
    readonly_fields = [
        "occurred",
        "sent",
        "received_exact",
        "derived",
        "delivered_by",
        "issue_summary",
        "app_version_and_session",
        "event_schema",
        "revenue_line",
        "revenue_base_line",
        "delivery",
        "payload_json",
        "firehose_line",
    ]

    class Media:
        css = ADMIN_CSS

    received = utc_time("received_at", "received")
    received_exact = utc_time("received_at", "received", precise=True)
    occurred = utc_time("occurred_at", "occurred (client clock)", precise=True)
    sent = utc_time("sent_at", "sent (client clock)", precise=True)
    derived = utc_time("derived_at", "derived", precise=True)
    next_attempt = utc_time("issue_next_attempt_at", "next attempt")

    # -- permissions -------------------------------------------------------------------------------------------

    def has_resend_permission(self, request: HttpRequest) -> bool:
        """Return True if the user may resend events: `resend_event`, on events they may view.

        Every resend (the action, the button, "resend all matching") checks this: resending
        needs the view permission too, or a user could resend every event without seeing one.
        """
        return self.has_view_permission(request) and request.user.has_perm("events_app.resend_event")

    # -- list --------------------------------------------------------------------------------------------------

    def get_changelist(self, request, **kwargs):
        return EventChangeList

    def get_list_display(self, request):
        if request.GET.get(DeliveryStateFilter.parameter_name) in TROUBLE_STATES:
            return TROUBLE_COLUMNS
        return self.list_display

    def get_search_results(self, request, queryset, search_term):
        """Match the term exactly: a player id, a purchase's transaction id, an event id.

        A player's events are found on the (game, player_id) index (naming every game, so
        the index is sought once per game); a transaction id through the purchase keys
        (game, transaction_id -> the event's id, player and arrival), which lead back to
        the event on the same index; an event id has no index and is looked for within
        the list's time range. A term that is not a UUID cannot match an event id.
        """
        term = search_term.strip()
        if len(term) >= 2 and term[0] == term[-1] and term[0] in "\"'":
            term = term[1:-1]
        if not term:
            return queryset, False
        games = list(Game.objects.values_list("pk", flat=True))
        match = Q(game_id__in=games, player_id=term)
        max_length = PurchaseKey._meta.get_field("transaction_id").max_length
        purchases = (
            PurchaseKey.objects.filter(game_id__in=games, transaction_id=term).values_list(
                "game_id", "player_id", "event_id", "received_at"
            )
            if len(term) <= max_length
            else []
        )
        for game_id, player_id, event_id, received_at in purchases:
            match |= Q(game_id=game_id, player_id=player_id, event_id=event_id, received_at=received_at)
        try:
            event_id = uuid.UUID(term)
        except ValueError:
            pass
        else:
            match |= Q(event_id=event_id)
        return queryset.filter(match), False

    @admin.display(description="delivery")
    def delivery(self, obj: Event) -> str:
        state = _state(obj)
        return state_badge(state, DeliveryState(state).label)

    @admin.display(description="attempts")
    def attempts(self, obj: Event) -> int:
        """Return the destination calls that carried the event: 1 for the relay's, more for each retry."""
        issue_attempts = getattr(obj, "issue_attempts", None)
        if issue_attempts is not None:
            return issue_attempts
        return 0 if _state(obj) == DeliveryState.PENDING else 1

    @admin.display(description="last error")
    def last_error_excerpt(self, obj: Event) -> str:
        """Return the start of the last error, the whole of it on hover."""
        error = getattr(obj, "issue_last_error", None)
        if not error:
            return "-"
        short = error if len(error) <= LIST_ERROR_CHARS else error[: LIST_ERROR_CHARS - 1] + "…"
        return format_html('<span class="last-error" title="{}">{}</span>', error, short)

    @admin.display(description="purchase")
    def purchase(self, obj: Event) -> str:
        """Return a purchase's product, price and currency (from the annotations of EventChangeList)."""
        if obj.event_type != "purchase":
            return "-"
        return format_html(
            '<span class="product">{}</span> <span class="price">{} {}</span>',
            getattr(obj, "product", None) or "?",
            getattr(obj, "price", None) or "?",
            obj.currency,
        )

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_resend": self.has_resend_permission(request),
            "dashboard_url": reverse("admin:events_app_event_dashboard"),
            "live_url": reverse("admin:events_app_event_live"),
            "timeline_url": reverse("admin:events_app_event_timeline"),
            "export_urls": [(name, reverse("admin:events_app_event_export", args=[name])) for name in export.FORMATS],
        }
        return super().changelist_view(request, extra_context)

    # -- detail ------------------------------------------------------------------------------------------------

    def get_fieldsets(self, request, obj=None):
        """Show the revenue of any type that carries money, and the schema version of a custom type's event."""
        if obj is None:
            return self.fieldsets
        fieldsets = []
        for name, options in self.fieldsets:
            if name == REVENUE:
                if obj.event_type not in revenue_types() or obj.revenue is None:
                    continue
                fields = [f for f in options["fields"] if f != "transaction_id" or obj.transaction_id is not None]
                options = {**options, "fields": fields}
            elif name == CUSTOM_TYPE and builtin(obj.event_type) is not None:
                continue
            elif name == SENT_RECORD and _delivering_call(obj) is None:
                name = UNSENT_RECORD  # never "sent ... exactly as last sent" for an event no call delivered
            fieldsets.append((name, options))
        return fieldsets

    @admin.display(description="app version / session")
    def app_version_and_session(self, obj: Event) -> str:
        payload = obj.payload or {}
        return f"{payload.get('app_version') or '-'} / {payload.get('session_id') or '-'}"

    @admin.display(description="checked against")
    def event_schema(self, obj: Event) -> str:
        """Name the schema version that validated a custom event (from its line), linked to that version."""
        version = (obj.payload or {}).get("event_schema_version")
        if version is None:
            return (
                f"no schema: accepted because the game's policy for custom types without one was "
                f"“{UnknownEventPolicy.ACCEPT.label}” (event_schema_version null)"
            )
        schema = EventSchema.objects.filter(game_id=obj.game_id, event_type=obj.event_type, version=version).first()
        label = f"{obj.event_type} version {version} (event_schema_version {version})"
        if schema is None:
            return label
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:events_app_eventschema_change", args=[schema.pk]), label
        )

    @admin.display(description="revenue")
    def revenue_line(self, obj: Event) -> str:
        payload = obj.payload or {}
        if obj.revenue is None:
            return "-"
        if "price" in payload:  # a type with a quantity: price x quantity
            return f"{payload['price']} x {payload.get('quantity', 1)} = {payload.get('revenue')} {obj.currency}"
        return f"{payload.get('revenue', obj.revenue)} {obj.currency}"

    @admin.display(description="revenue in base currency")
    def revenue_base_line(self, obj: Event) -> str:
        if obj.revenue_base is None:
            return "no exchange rate known yet"
        rate = f"rate {obj.fx_rate.normalize():f} on {obj.fx_date}" if obj.fx_rate is not None else "no rate"
        return f"{obj.revenue_base.normalize():f} {obj.base_currency} ({rate})"

    @admin.display(description="payload")
    def payload_json(self, obj: Event) -> str:
        return format_html('<pre class="json">{}</pre>', pretty_json(_in_line_order(obj.payload)))

    @admin.display(description="delivered by")
    def delivered_by(self, obj: Event) -> str:
        """Name the destination call that delivered the event, or say why none has yet."""
        call = _delivering_call(obj)
        if call is None:
            state = _state(obj)
            if state == DeliveryState.DELIVERED:
                return "delivered before delivery calls were recorded"
            return "no call yet" if state == DeliveryState.PENDING else "no call has delivered it"
        when = format_utc(call.called_at, precise=True).removesuffix(" UTC")[:-3]  # to the millisecond
        return (
            f"the {call.sender} call to {call.destination} at {when} UTC "
            f"({plural(call.events, 'event')}, {plural(call.records, 'record')}, {call.bytes:,} bytes)"
        )

    @admin.display(description="delivery issue")
    def issue_summary(self, obj: Event) -> str:
        """Describe the event's delivery issue: attempts, next attempt, last error, resend."""
        issue = delivery_issue(obj)
        if issue is None:
            return "none: the relay's one pass took it" if _state(obj) == DeliveryState.DELIVERED else "none"
        parts = [f"{IssueState(issue.state).label}, {plural(issue.attempts, 'attempt')}"]
        if issue.next_attempt_at:
            parts.append(f"next attempt {format_utc(issue.next_attempt_at)}")
        if issue.resent_at:
            parts.append(f"resent {format_utc(issue.resent_at)}")
        if issue.delivered_at:
            parts.append(f"delivered {format_utc(issue.delivered_at)}")
        if issue.last_error:
            parts.append(f"last error: {issue.last_error}")
        return "; ".join(parts)

    @admin.display(description="line")
    def firehose_line(self, obj: Event) -> str:
        call = _delivering_call(obj)
        if call is None:
            what = (
                "Not delivered: given up on. A resend sends it as this line"
                if _state(obj) == DeliveryState.DEAD
                else "Not delivered yet. It will be sent as this line"
            )
            return format_html(
                '<p class="help">{}, with emitted_at the time of sending (shown here: now):</p>'
                '<pre class="json line">{}</pre>',
                what,
                encode_line(obj.payload, emitted_at=timezone.now()).decode(),
            )
        return format_html(
            '<p class="help">Exactly as last sent, one NDJSON line:</p><pre class="json line">{}</pre>',
            encode_line(_sent_payload(obj), emitted_at=call.emitted_at).decode(),
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_resend": self.has_resend_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context = {**context, "timeline_url": live.timeline_url(game=obj.game_id, player_id=obj.player_id)}
        return super().render_change_form(request, context, add, change, form_url, obj)

    # -- resend ------------------------------------------------------------------------------------------------

    @admin.action(description="Resend selected events to Firehose", permissions=["resend"])
    def resend_selected(self, request: HttpRequest, queryset: QuerySet[Event]) -> None:
        counts = bulk_resend(queryset=queryset, user=request.user, what="the selected events")
        report_resend(request, counts)

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("dashboard/", wrap(self.dashboard_view), name=f"{prefix}_dashboard"),
            path("live/", wrap(self.live_view), name=f"{prefix}_live"),
            path("live/feed/", wrap(self.live_feed_view), name=f"{prefix}_live_feed"),
            path("timeline/", wrap(self.timeline_view), name=f"{prefix}_timeline"),
            path("export/<str:format>/", wrap(self.export_view), name=f"{prefix}_export"),
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
            conditions = "; ".join(f"{what}: {value}" for what, value in describe_filters(cl))
            counts = bulk_resend(queryset=cl.queryset, user=request.user, what=f"all matching ({conditions})")
            report_resend(request, counts)
            return HttpResponseRedirect(changelist_url + query_string)
        context = {
            **self.admin_site.each_context(request),
            "title": "Resend all matching events?",
            "opts": self.opts,
            "cl": cl,
            "conditions": describe_filters(cl),
            "count": capped_count(cl.queryset),
            "changelist_url": changelist_url + query_string,
        }
        return TemplateResponse(request, "admin/events_app/event/resend_matching.html", context)

    # -- export, live events, a player's timeline ----------------------------------------------------------------

    def export_view(self, request: HttpRequest, format: str) -> HttpResponse:
        """Stream every event the list's current filters and search match, as NDJSON or CSV (see admin.export)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if format not in export.FORMATS:
            raise Http404("Export formats: " + ", ".join(export.FORMATS))
        try:
            cl = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(f"{reverse('admin:events_app_event_changelist')}?{ERROR_FLAG}=1")
        name = f"events-{timezone.now():%Y%m%dT%H%M%SZ}"
        return export.export_response(cl.queryset, format=format, name=name)

    def live_view(self, request: HttpRequest) -> HttpResponse:
        return live.live_view(request, model_admin=self)

    def live_feed_view(self, request: HttpRequest) -> HttpResponse:
        return live.live_feed_view(request, model_admin=self)

    def timeline_view(self, request: HttpRequest) -> HttpResponse:
        return live.timeline_view(request, model_admin=self)

    # -- dashboard ---------------------------------------------------------------------------------------------

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        """The pipeline's health at a glance, for every game or one (`?game=slug`); see admin.dashboard."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return dashboard.dashboard_view(request, model_admin=self)


def bulk_resend(*, queryset: QuerySet[Event], user, what: str) -> ResendCounts:
    """Resend the queryset's events and write one admin-log entry for all of them, in `user`'s name.

    One entry, not one per event: a resend of 96,000 events would otherwise write
    96,000 log rows. The entry names the count and what was matched; an event's own
    Resend button still writes an entry on that event's history.
    """
    counts = resend_events(queryset=queryset, user=None)
    if counts.resent:
        LogEntry.objects.create(
            user_id=user.pk,
            content_type_id=ContentType.objects.get_for_model(Event).pk,
            object_id=None,
            object_repr=f"{plural(counts.resent, 'event')} resent"[:200],
            action_flag=CHANGE,
            change_message=f"Resent {plural(counts.resent, 'event')} to Firehose: {what}"[:2000],
        )
    return counts


def report_resend(request: HttpRequest, counts: ResendCounts) -> None:
    """Tell the operator what a resend did, in counts."""
    text = f"Resent {plural(counts.resent, 'event')} (queued for the delivery worker)"
    skipped = []
    if counts.pending:
        skipped.append(f"{counts.pending:,} already pending or being sent")
    if counts.delivered_since_resend:
        skipped.append(f"{counts.delivered_since_resend:,} delivered since their last resend")
    if skipped:
        text += "; skipped " + " and ".join(skipped)
    level = messages.SUCCESS if counts.resent else messages.WARNING
    messages.add_message(request, level, text + ".")


def describe_filters(cl: ChangeList) -> list[tuple[str, str]]:
    """Return (what, value) pairs naming the list's active filters (the time range always) and search."""
    described = []
    for spec in cl.filter_specs:
        always = isinstance(spec, ReceivedRangeFilter)  # the default range applies too
        if not always and not any(parameter in cl.params for parameter in spec.expected_parameters()):
            continue
        for choice in spec.choices(cl):
            if choice.get("selected"):
                described.append((str(spec.title), str(choice["display"])))
    if cl.query:
        described.append(("search", cl.query))
    return described


def _state(event: Event) -> str:
    """Return the event's derived delivery state, worked out once per event object (a page asks several times)."""
    if not hasattr(event, "_admin_state"):
        event._admin_state = delivery_state(event)
    return event._admin_state


def _delivering_call(event: Event) -> DeliveryCall | None:
    """Return the call that last delivered the event (its issue's, else the relay call whose span holds it), once."""
    if not hasattr(event, "_admin_call"):
        event._admin_call = _find_delivering_call(event)
    return event._admin_call


def _find_delivering_call(event: Event) -> DeliveryCall | None:
    issue = delivery_issue(event)
    if issue is not None:
        return issue.delivered_by if issue.state == IssueState.DELIVERED else None
    position = logstore.position_of(event.pk)
    if position is None or _state(event) != DeliveryState.DELIVERED:
        return None
    return call_that_delivered(shard=event.shard, position=position)


def _sent_payload(event: Event) -> dict:
    """Return the line as the delivering sender had it: an issue's own copy, else the event's."""
    issue = delivery_issue(event)
    return issue.payload if issue is not None else event.payload


def _in_line_order(payload: dict) -> dict:
    ordered = {name: payload[name] for name in LINE_FIELDS if name in payload}
    ordered.update(payload)
    return ordered
