"""Live events and a player's timeline: a game's newest events and rejections by keyset polling, one player's events."""

from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import QuerySet
from django.db.models.fields.json import KT
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from events_app.admin.arrival import first_id_since
from events_app.admin.base import format_utc
from events_app.admin.rejections import _flatten_errors
from events_app.models import Event, Game, RejectedEvent

# A poll answers at most this many events and rejections each: the newest, so that the view
# keeps up with any rate (it says when it skipped some) and a poll's cost is bounded.
FEED_LIMIT = 100
# Events received longer ago than this are never in the feed: every poll's read stays inside it.
LIVE_WINDOW = timedelta(hours=1)
# How often the page polls, in milliseconds (live.js).
POLL_INTERVAL_MS = 2000
TIMELINE_PAGE = 200
MAX_TYPE_CHARS = Event._meta.get_field("event_type").max_length
MAX_PLAYER_CHARS = Event._meta.get_field("player_id").max_length


class BadParameter(ValueError):
    """A query parameter the feed or timeline cannot use; its message names the parameter."""


@dataclass
class FeedQuery:
    """What one poll asks for: a game, the ids already seen, and the filters."""

    game: Game
    after: int | None = None  # events with a larger id only; None: the newest
    after_rejection: int | None = None
    event_type: str = ""
    player_id: str = ""
    with_rejections: bool = True


def parse_feed_query(params, *, with_rejections: bool) -> FeedQuery:
    """Return the FeedQuery of a poll's query string; raise BadParameter naming a wrong parameter."""
    slug = params.get("game", "")
    game = Game.objects.filter(slug=slug).first() if slug and len(slug) <= 64 else None
    if game is None:
        raise BadParameter("game: no game with this slug")
    return FeedQuery(
        game=game,
        after=_id_param(params, "after"),
        after_rejection=_id_param(params, "after_rejection"),
        event_type=_text_param(params, "event_type", MAX_TYPE_CHARS),
        player_id=_text_param(params, "player_id", MAX_PLAYER_CHARS),
        with_rejections=with_rejections,
    )


def _id_param(params, name: str) -> int | None:
    raw = params.get(name, "")
    if raw == "":
        return None
    if not raw.isdigit() or len(raw) > 19:
        raise BadParameter(f"{name}: not an id (a non-negative whole number)")
    return int(raw)


def _text_param(params, name: str, max_chars: int) -> str:
    value = params.get(name, "").strip()
    if len(value) > max_chars or "\x00" in value:
        raise BadParameter(f"{name}: at most {max_chars} characters, no NUL")
    return value


def live_feed(query: FeedQuery, *, limit: int = FEED_LIMIT, now: datetime | None = None) -> dict:
    """Return the game's events (and rejections) after the ids given, the newest `limit` of each, oldest first.

    Each read goes through the log's (game, id) index (or (game, player id) with a
    player filter) inside the last LIVE_WINDOW, so a poll costs the same however big
    the log is. `more` says that older events past `after` were left out.
    """
    now = now or timezone.now()
    events, more = _newest(_live_events(query, since=now - LIVE_WINDOW), after=query.after, limit=limit)
    answer = {
        "events": [_event_row(event) for event in events],
        "more": more,
        "after": max((event.pk for event in events), default=query.after),
        "rejections": [],
        "more_rejections": False,
        "after_rejection": query.after_rejection,
    }
    if query.with_rejections:
        rejections, more_rejections = _newest(
            _live_rejections(query, since=now - LIVE_WINDOW), after=query.after_rejection, limit=limit
        )
        rows = [_rejection_row(rejection) for rejection in rejections]
        answer["rejections"] = [row for row in rows if not query.event_type or row["event_type"] == query.event_type]
        answer["more_rejections"] = more_rejections
        answer["after_rejection"] = max((rejection.pk for rejection in rejections), default=query.after_rejection)
    return answer


def _live_events(query: FeedQuery, *, since: datetime) -> QuerySet[Event]:
    events = Event.objects.filter(game=query.game, received_at__gte=since)
    if connection.vendor == "sqlite":
        events = events.filter(pk__gte=first_id_since(since))
    if query.event_type:
        events = events.filter(event_type=query.event_type)
    if query.player_id:
        events = events.filter(player_id=query.player_id)
    return events.defer("payload").annotate(product=KT("payload__properties__product_id"), price=KT("payload__price"))


def _live_rejections(query: FeedQuery, *, since: datetime) -> QuerySet[RejectedEvent]:
    rejections = RejectedEvent.objects.filter(game=query.game, received_at__gte=since)
    if query.player_id:
        rejections = rejections.filter(player_id=query.player_id)
    return rejections


def _newest(queryset: QuerySet, *, after: int | None, limit: int) -> tuple[list, bool]:
    """Return the newest `limit` rows with an id above `after`, oldest first, and whether more were left out."""
    if after is not None:
        queryset = queryset.filter(pk__gt=after)
    rows = list(queryset.order_by("-pk")[: limit + 1])
    return rows[:limit][::-1], len(rows) > limit


def _event_row(event: Event) -> dict:
    return {
        "id": event.pk,
        "received": format_utc(event.received_at),
        "event_type": event.event_type,
        "player_id": event.player_id,
        "platform": event.platform,
        "details": _details(event),
        "url": reverse("admin:events_app_event_change", args=[event.pk]),
        "timeline_url": timeline_url(game=event.game_id, player_id=event.player_id),
    }


def _details(event: Event) -> str:
    """Return what a purchase bought or what an event with revenue earned, else ""."""
    if event.event_type == "purchase":
        return f"{getattr(event, 'product', None) or '?'} {getattr(event, 'price', None) or '?'} {event.currency}"
    if event.revenue is not None:
        return f"{event.revenue.normalize():f} {event.currency}"
    return ""


def _rejection_row(rejection: RejectedEvent) -> dict:
    reason = "; ".join(f"{where}: {message}" for where, message in _flatten_errors(rejection.errors))
    return {
        "id": rejection.pk,
        "received": format_utc(rejection.received_at),
        "event_type": _body_field(rejection.body, "event_type"),
        "player_id": rejection.player_id,
        "status_code": rejection.status_code,
        "reason": reason[:500],
        "url": reverse("admin:events_app_rejectedevent_change", args=[rejection.pk]),
    }


def _body_field(body: str, name: str) -> str:
    """Return a string field of a rejected body when it parses as a JSON object (kept bodies are truncated)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    value = parsed.get(name) if isinstance(parsed, dict) else None
    return value[:MAX_TYPE_CHARS] if isinstance(value, str) else ""


# -- a player's timeline ---------------------------------------------------------------------------------------


def timeline_url(*, game: int | Game, player_id: str) -> str:
    game_id = game.pk if isinstance(game, Game) else game
    return f"{reverse('admin:events_app_event_timeline')}?{urlencode({'game': game_id, 'player_id': player_id})}"


@dataclass
class TimelinePage:
    events: list[Event]
    later_after: int | None  # the `after` of the next page, None on the last


def player_timeline(
    *, game: Game, player_id: str, after: int | None = None, limit: int = TIMELINE_PAGE
) -> TimelinePage:
    """Return one page of the player's events in arrival order (by id), oldest first, after the id `after`.

    Read on the log's (game, player id) index; a page is `limit` events, the next one
    starts after its last id.
    """
    events = Event.objects.filter(game=game, player_id=player_id).defer("payload")
    events = events.annotate(product=KT("payload__properties__product_id"), price=KT("payload__price"))
    if after is not None:
        events = events.filter(pk__gt=after)
    rows = list(events.order_by("pk")[: limit + 1])
    page = rows[:limit]
    return TimelinePage(events=page, later_after=page[-1].pk if len(rows) > limit else None)


# -- views (EventAdmin's URLs; the caller wrapped them in the admin site's login) -------------------------------


def live_view(request: HttpRequest, *, model_admin: admin.ModelAdmin) -> HttpResponse:
    """Render the live events page of a game (`?game=slug`, the first game by default)."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    games = list(Game.objects.order_by("slug"))
    game = next((g for g in games if g.slug == request.GET.get("game")), games[0] if games else None)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Live events" + (f": {game.slug}" if game else ""),
        "opts": model_admin.opts,
        "games": games,
        "game": game,
        "feed_url": reverse("admin:events_app_event_live_feed"),
        "poll_interval_ms": POLL_INTERVAL_MS,
        "limit": FEED_LIMIT,
        "window_minutes": int(LIVE_WINDOW.total_seconds() // 60),
        "with_rejections": request.user.has_perm("events_app.view_rejectedevent"),
        "changelist_url": reverse("admin:events_app_event_changelist"),
        "timeline_url": reverse("admin:events_app_event_timeline"),
    }
    return TemplateResponse(request, "admin/events_app/event/live.html", context)


def live_feed_view(request: HttpRequest, *, model_admin: admin.ModelAdmin) -> HttpResponse:
    """Answer one poll of the live page as JSON; 400 naming the parameter it cannot use."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    try:
        query = parse_feed_query(request.GET, with_rejections=request.user.has_perm("events_app.view_rejectedevent"))
    except BadParameter as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(live_feed(query))  # never cached: the admin site's views are not


def timeline_view(request: HttpRequest, *, model_admin: admin.ModelAdmin) -> HttpResponse:
    """Render a player's timeline (`?game=<id or slug>&player_id=`), or the form to find one."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    games = list(Game.objects.order_by("slug"))
    raw_game = request.GET.get("game", "")
    game = next((g for g in games if raw_game in (str(g.pk), g.slug)), None)
    error = ""
    page = None
    try:
        player_id = _text_param(request.GET, "player_id", MAX_PLAYER_CHARS)
        after = _id_param(request.GET, "after")
    except BadParameter as exc:
        player_id, after, error = "", None, str(exc)
    if raw_game and game is None:
        error = "game: no such game"
    if game is not None and player_id and not error:
        page = player_timeline(game=game, player_id=player_id, after=after, limit=TIMELINE_PAGE)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Timeline of player {player_id}" if page is not None else "Player timeline",
        "opts": model_admin.opts,
        "games": games,
        "game": game,
        "player_id": player_id,
        "error": error,
        "rows": [_timeline_row(event) for event in page.events] if page else [],
        "searched": page is not None,
        "first_page": after is None,
        "later_url": (
            f"?{urlencode({'game': game.pk, 'player_id': player_id, 'after': page.later_after})}"
            if page is not None and page.later_after is not None
            else None
        ),
        "first_url": f"?{urlencode({'game': game.pk, 'player_id': player_id})}" if page is not None else None,
        "changelist_url": reverse("admin:events_app_event_changelist"),
    }
    return TemplateResponse(request, "admin/events_app/event/timeline.html", context, status=400 if error else 200)


def _timeline_row(event: Event) -> dict:
    return {
        "id": event.pk,
        "received": format_utc(event.received_at),
        "occurred": format_utc(event.occurred_at),
        "event_type": event.event_type,
        "platform": event.platform,
        "details": _details(event),
        "url": reverse("admin:events_app_event_change", args=[event.pk]),
    }
