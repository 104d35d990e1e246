"""Custom event types: register per-game JSON Schemas (versioned), and check events against the latest one.

Validators are compiled once per process (jsonschema-rs, draft 2020-12) and cached
per (game, type) for EVENTS_SCHEMA_CACHE_SECONDS; when that runs out, one small
query asks for the latest version number and the schema is compiled again only if
it changed. So a version registered by any process (the command, the admin)
applies everywhere within a few seconds, and the ingest path costs one dict lookup
and one `is_valid` call per event.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import jsonschema_rs
from django.db import IntegrityError
from django.db.models import Max

from events_app import conf
from events_app.db import write_transaction
from events_app.event_types import REGISTRY
from events_app.event_types.fields import nest_error
from events_app.models import EventSchema, Game
from sdk.contract import CUSTOM_EVENT_TYPE_PATTERN, is_custom_type_name

_CACHE_MAX_ENTRIES = 10_000  # unregistered names are cached too; clients choose them


class InvalidSchemaError(ValueError):
    """The schema cannot be registered: a bad type name, or not a valid JSON Schema."""


@dataclass(frozen=True)
class CompiledSchema:
    """The latest schema of one custom type of one game, ready to validate `properties`."""

    version: int
    validator: object  # a jsonschema_rs validator

    def errors(self, properties: object) -> dict | None:
        """Return None if `properties` is valid, else DRF-shaped errors keyed by the failing path."""
        if self.validator.is_valid(properties):  # the common case: no error objects built
            return None
        errors: dict = {}
        for error in self.validator.iter_errors(properties):
            path = [str(part) for part in error.instance_path]
            if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Required):
                path.append(str(error.kind.property))  # name the missing property itself
            nest_error(errors, path, error.message)
        return errors


def compile_schema(schema: object) -> object:
    """Return a draft 2020-12 validator for `schema`; raise InvalidSchemaError naming what is wrong."""
    if not isinstance(schema, (dict, bool)):
        raise InvalidSchemaError("A JSON Schema is an object (or true/false).")
    try:
        jsonschema_rs.meta.validate(schema)
        return jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
    except (jsonschema_rs.ValidationError, ValueError) as exc:
        raise InvalidSchemaError(f"Not a valid JSON Schema: {str(exc).splitlines()[0]}") from exc


def check_type_name(event_type: str) -> None:
    """Raise InvalidSchemaError unless `event_type` may name a custom type."""
    if event_type in REGISTRY:
        raise InvalidSchemaError(f"{event_type!r} is a built-in event type; its rules are fixed.")
    if not is_custom_type_name(event_type):
        raise InvalidSchemaError(f"{event_type!r} is not a valid custom type name ({CUSTOM_EVENT_TYPE_PATTERN}).")


def register_schema(*, game: Game, event_type: str, schema: object) -> EventSchema:
    """Store `schema` as the next version of `event_type` for `game` and return it.

    Raises InvalidSchemaError for a built-in or malformed type name or an invalid
    schema. Two registrations racing for the same version: the loser takes the next.
    """
    check_type_name(event_type)
    compile_schema(schema)
    for _ in range(5):
        try:
            with write_transaction():
                latest = EventSchema.objects.filter(game=game, event_type=event_type).aggregate(v=Max("version"))["v"]
                return EventSchema.objects.create(
                    game=game, event_type=event_type, version=(latest or 0) + 1, schema=schema
                )
        except IntegrityError:
            continue
    raise InvalidSchemaError("Could not allocate a version number; try again.")


def registered_types(*, game: Game) -> list[tuple[str, int]]:
    """Return (type, latest version) of every custom type registered for `game`, by name."""
    rows = EventSchema.objects.filter(game=game).values("event_type").annotate(latest=Max("version"))
    return sorted((row["event_type"], row["latest"]) for row in rows)


_cache: dict[tuple[int, str], tuple[float, CompiledSchema | None]] = {}
_lock = threading.Lock()


def current_schema(*, game_id: int, event_type: str) -> CompiledSchema | None:
    """Return the latest schema of `event_type` for the game, or None if it has none (cached, see module doc)."""
    key = (game_id, event_type)
    entry = _cache.get(key)
    now = time.monotonic()
    if entry is not None and entry[0] > now:
        return entry[1]
    latest = (
        EventSchema.objects.filter(game_id=game_id, event_type=event_type)
        .order_by("-version")
        .values_list("version", flat=True)
        .first()
    )
    cached = entry[1] if entry is not None else None
    if latest is None:
        compiled = None
    elif cached is not None and cached.version == latest:
        compiled = cached
    else:
        schema = EventSchema.objects.get(game_id=game_id, event_type=event_type, version=latest).schema
        compiled = CompiledSchema(version=latest, validator=compile_schema(schema))
    with _lock:
        if len(_cache) >= _CACHE_MAX_ENTRIES:
            _cache.clear()
        _cache[key] = (now + conf.schema_cache_seconds(), compiled)
    return compiled


def clear_cache() -> None:
    """Forget every compiled schema (tests; a process that must see a new version at once)."""
    with _lock:
        _cache.clear()
