"""What the admin tests share: URLs and permissions, event builders, events stored through ingest, delivery states."""

import uuid
from collections.abc import Iterable, Sequence
from decimal import Decimal

import orjson
from django.urls import reverse
from django.utils import timezone

from events_app import logstore
from events_app.delivery import hours, status
from events_app.delivery.destinations.base import PackedRecord, RecordError
from events_app.delivery.destinations.firehose import FirehoseDestination
from events_app.ingest.service import ingest_events
from events_app.models import ApiKey, DeliveryCursor, DeliveryIssue, DeliveryState, Event, Game, UnknownEventPolicy
from tests.support.events import now_rfc3339

EVENTS_URL = reverse("admin:events_app_event_changelist")
READ_ONLY_PERMISSIONS = ["view_event", "view_game", "view_apikey", "view_rejectedevent", "view_eventschema"]
LEVEL_UP_SCHEMA = {
    "type": "object",
    "properties": {"level": {"type": "integer", "minimum": 1}, "world": {"type": "string"}},
    "required": ["level"],
}
SLOW_DOWN = "ServiceUnavailableException: Slow down."


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
    """Ingest `raw_events` for the key's game and return their rows, in the order given.

    They are counted in EventHour too (count_sent), as a relay counts them when it
    sends them: the list's filter values and the dashboard read those counts.
    """
    outcome = ingest_events(api_key=api_key, raw_events=raw_events, received_at=timezone.now())
    assert outcome.rejected == 0, outcome.results
    ids = [uuid.UUID(result["event_id"]) for result in outcome.results]
    rows = {event.event_id: event for event in Event.objects.filter(event_id__in=ids)}
    events = [rows[event_id] for event_id in ids]
    count_sent(events)
    return events


def count_sent(events: Iterable[Event]) -> None:
    """Add the events to the per-hour counts (EventHour) from their columns, as a relay batch adds what it sent."""
    tally: dict[tuple, tuple[int, Decimal]] = {}
    for event in events:
        key = (hours.hour_of(event.received_at), event.game_id, event.event_type, event.platform, event.currency)
        number, revenue = tally.get(key, (0, Decimal(0)))
        tally[key] = (number + 1, revenue + (event.revenue_base or Decimal(0)))
    hours.add(tally)


# -- delivery states, as the relay and the retry worker leave them ------------------------------------------------


def relay_past(events: Iterable[Event]) -> None:
    """Move each event's relay shard cursor past it, as a relay pass that sent it does (and past every earlier one)."""
    furthest: dict[int, logstore.Position] = {}
    for event in events:
        position = logstore.position_of(event.pk)
        furthest[event.shard] = max(furthest.get(event.shard, position), position)
    for shard, position in furthest.items():
        cursor = logstore.cursor_of(shard)
        if logstore.Position(cursor.last_txid, cursor.last_event) < position:
            DeliveryCursor.objects.filter(shard=shard).update(
                last_txid=position.txid, last_event=position.event, moved_at=timezone.now()
            )


def set_state(events: Sequence[Event], state: str, **issue_fields) -> None:
    """Put events in a delivery state: passed by the relay, with a delivery issue in `state` unless plainly delivered.

    `delivered` without issue fields is the relay's one pass; any other state (or
    `delivered` with fields: delivered after a resend) is an issue row, as the relay
    opens for a failure and a resend resets. Stored events start out pending (not
    relayed): only events stored after the last one given here stay so.
    """
    relay_past(events)
    if state == DeliveryState.DELIVERED and not issue_fields:
        return
    now = timezone.now()
    defaults = {
        "state": state,
        "attempts": 0 if state == DeliveryState.PENDING else 1,
        "next_attempt_at": now if state in (DeliveryState.PENDING, DeliveryState.FAILED) else None,
        "last_error": SLOW_DOWN if state in (DeliveryState.FAILED, DeliveryState.DEAD) else "",
        "opened_at": now,
        **issue_fields,
    }
    for event in events:
        DeliveryIssue.objects.update_or_create(
            event_id=event.pk,
            defaults={"game_id": event.game_id, "received_at": event.received_at, "payload": event.payload, **defaults},
        )


def state_of(event: Event) -> str:
    """Return the event's delivery state as the admin derives it, read afresh."""
    return status.delivery_state(Event.objects.get(pk=event.pk))


def issue_of(event: Event) -> DeliveryIssue | None:
    """Return the event's delivery issue, or None if it never needed one."""
    return DeliveryIssue.objects.filter(event_id=event.pk).first()


class FailingDestination(FirehoseDestination):
    """Firehose's limits, no network: fails every record carrying a line of `failing_players`, takes the others.

    Records are packed: give EVENTS_RECORD_TARGET_BYTES = 1 so that each line goes
    alone and only the failing players' events fail.
    """

    def __init__(self, failing_players: Iterable[str] = (), *, error: str = SLOW_DOWN, permanent: bool = False):
        self.failing_players = set(failing_players)
        self.error = RecordError(error, permanent=permanent)
        self.sent: list[dict] = []

    def open(self, *, policy) -> None:
        pass

    def send(self, records: list[PackedRecord], *, policy) -> list[RecordError | None]:
        outcomes = []
        for record in records:
            lines = [orjson.loads(line) for line in record.data.splitlines()]
            failed = any(line["player_id"] in self.failing_players for line in lines)
            if not failed:
                self.sent.extend(lines)
            outcomes.append(self.error if failed else None)
        return outcomes
