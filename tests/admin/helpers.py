"""What the admin tests share: the console's URLs and permissions, event builders, events stored through ingest."""

import uuid

from django.urls import reverse
from django.utils import timezone

from events_app.ingest.service import ingest_events
from events_app.models import ApiKey, Event, Game, UnknownEventPolicy
from tests.support.events import now_rfc3339

EVENTS_URL = reverse("admin:events_app_event_changelist")
READ_ONLY_PERMISSIONS = ["view_event", "view_game", "view_apikey", "view_rejectedevent", "view_eventschema"]
LEVEL_UP_SCHEMA = {
    "type": "object",
    "properties": {"level": {"type": "integer", "minimum": 1}, "world": {"type": "string"}},
    "required": ["level"],
}


def make_event(event_type: str, properties: dict, **fields) -> dict:
    """Return a valid event of any type (built-in or custom) with these properties."""
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "player_id": "player-1",
        "occurred_at": now_rfc3339(),
        "properties": properties,
        **fields,
    }


def accept_unknown_types(game: Game) -> None:
    game.unknown_events = UnknownEventPolicy.ACCEPT
    game.save(update_fields=["unknown_events"])


def ad_impression(**properties) -> dict:
    return make_event("ad_impression", {"ad_network": "admob", "ad_format": "rewarded", **properties})


def store(api_key: ApiKey, raw_events: list[dict]) -> list[Event]:
    """Ingest `raw_events` for the key's game and return their rows, in the order given."""
    outcome = ingest_events(api_key=api_key, raw_events=raw_events, received_at=timezone.now())
    assert outcome.rejected == 0, outcome.results
    ids = [uuid.UUID(result["event_id"]) for result in outcome.results]
    rows = {event.event_id: event for event in Event.objects.filter(event_id__in=ids)}
    return [rows[event_id] for event_id in ids]
