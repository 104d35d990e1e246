"""What a new schema version would reject: a custom type's recent events checked against it before it is saved.

The log has no per-type index and no counts, so the check is a bounded sample: the
type's most recent events among the game's last SCAN_LIMIT events of the last
WINDOW_DAYS days, at most SAMPLE_LIMIT of them, read newest first on the
(game, id) index. Its cost is the same whatever the log holds; the per-hour
counts the relays keep say how many events of the type there were in all, so an
operator can tell a sample from the whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Sum
from django.utils import timezone
from rest_framework.settings import api_settings

from events_app.event_types.custom import CompiledSchema, compile_schema
from events_app.models import Event, EventHour, Game

WINDOW_DAYS = 7
SAMPLE_LIMIT = 1_000  # events of the type checked at most
SCAN_LIMIT = 100_000  # of the game's most recent events, whatever their type: bounds the index walk
EXAMPLES = 5  # rejected events described, newest first
REASONS_PER_EXAMPLE = 3
_READ_CHUNK = 200  # events' properties held in memory at once (each at most 64 KiB)


@dataclass(frozen=True)
class Rejection:
    """One recent event the new version would refuse, with its first few reasons ("properties.level: ...")."""

    event_id: str
    received_at: datetime
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Impact:
    """The outcome of checking a type's recent events against a schema not yet saved."""

    checked: int  # events of the type checked
    rejected: int  # of them, how many the schema would refuse
    examples: tuple[Rejection, ...]  # the first EXAMPLES of those, newest first
    counted: int  # events of the type the relays counted in the window (0 until they pass them)
    sampled: bool  # True if the window may hold events of the type that were not checked
    window_days: int = WINDOW_DAYS

    def summary(self, event_type: str) -> str:
        """Return one sentence for the operator: how many checked, how many would be rejected."""
        days = f"the last {self.window_days} days"
        if not self.checked:
            return f"No {event_type} events in {days} to check the new version against."
        if self.sampled:
            scope = f"the latest {self.checked:,} {event_type} events of {days}"
            if self.counted > self.checked:
                scope += f" (of {self.counted:,} counted)"
        else:
            scope = f"all {self.checked:,} {event_type} events of {days}"
        if not self.rejected:
            return f"Checked {scope}: none would be rejected."
        share = f" ({self.rejected / self.checked:.1%})"
        return f"Checked {scope}: {self.rejected:,} would now be rejected{share}."


def rejection_impact(*, game: Game, event_type: str, schema: object, now: datetime | None = None) -> Impact:
    """Check `event_type`'s recent events of `game` against `schema`; raise InvalidSchemaError if it is no schema."""
    compiled = CompiledSchema(version=0, validator=compile_schema(schema))
    since = (now or timezone.now()) - timedelta(days=WINDOW_DAYS)
    recent = Event.objects.filter(game=game, received_at__gte=since).order_by("-id")
    # The id SCAN_LIMIT events back: no event of the type is looked for below it.
    floor = list(recent.values_list("id", flat=True)[SCAN_LIMIT - 1 : SCAN_LIMIT])
    of_type = recent.filter(event_type=event_type)
    if floor:
        of_type = of_type.filter(id__gte=floor[0])
    checked = rejected = 0
    examples: list[Rejection] = []
    rows = of_type.values_list("event_id", "received_at", "payload__properties")[:SAMPLE_LIMIT]
    for event_id, received_at, properties in rows.iterator(chunk_size=_READ_CHUNK):
        checked += 1
        errors = compiled.errors(properties if properties is not None else {})
        if errors is None:
            continue
        rejected += 1
        if len(examples) < EXAMPLES:
            reasons = tuple(_reasons({"properties": errors}))[:REASONS_PER_EXAMPLE]
            examples.append(Rejection(event_id=str(event_id), received_at=received_at, reasons=reasons))
    counted = (
        EventHour.objects.filter(
            game=game, event_type=event_type, hour__gte=since.replace(minute=0, second=0, microsecond=0)
        ).aggregate(n=Sum("events"))["n"]
        or 0
    )
    return Impact(
        checked=checked,
        rejected=rejected,
        examples=tuple(examples),
        counted=counted,
        sampled=checked >= SAMPLE_LIMIT or bool(floor),
    )


def _reasons(errors: dict, prefix: str = ""):
    """Yield "path: message" for each message of nested DRF-style errors, depth first."""
    for key, value in errors.items():
        path = prefix if key == api_settings.NON_FIELD_ERRORS_KEY else f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            yield from _reasons(value, path)
        else:
            for message in value:
                yield f"{path}: {message}"
