"""Custom event types: register per-game JSON Schemas (versioned), and check events against the latest one.

Validators are compiled once per process (jsonschema-rs, draft 2020-12) and cached
per (game, type) for EVENTS_SCHEMA_CACHE_SECONDS; when that runs out, one small
query asks for the latest version number and the schema is compiled again only if
it changed. So a version registered by any process (the command, the admin)
applies everywhere within a few seconds, and the ingest path costs one dict lookup
and one `is_valid` call per event. An event that names its `event_schema_version`
is checked against that version instead (`pinned_schema`): versions never change
once stored, so a found one is cached as long as the process keeps it; a version
not (yet) registered is remembered for EVENTS_SCHEMA_CACHE_SECONDS like the latest.

Registered schemas are self-contained (docs/event-types.md): every `$ref` and
`$dynamicRef` points inside the same document (`#...`), `$schema`, when given, is
draft 2020-12, no string holds a NUL character or a lone surrogate (PostgreSQL
cannot store them), and `pattern`s run on a linear-time engine (no look-around, no
backreference). Anything else is refused at registration with the reason. Nothing
is ever fetched: the validator's retriever refuses every URI, so a schema stored
before these rules cannot reach the network or the disk either; it no longer
compiles and its events are refused with a 400 naming `properties`.

An invalid event costs little whatever it breaks: at most MAX_ERRORS errors are
reported, each message cut to MAX_MESSAGE_CHARS characters.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import time
from dataclasses import dataclass

import jsonschema_rs
from django.db import IntegrityError
from django.db.models import Max
from rest_framework.settings import api_settings

from events_app import conf
from events_app.db import write_transaction
from events_app.event_types import REGISTRY
from events_app.event_types.fields import nest_error
from events_app.models import EventSchema, Game
from sdk.contract import CUSTOM_EVENT_TYPE_PATTERN, is_custom_type_name

logger = logging.getLogger(__name__)

_CACHE_MAX_ENTRIES = 10_000  # unregistered names are cached too; clients choose them
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
_DRAFT_2020_12_URIS = frozenset({DRAFT_2020_12, DRAFT_2020_12 + "#"})
MAX_ERRORS = 20  # per event: an event breaking a rule 6,000 times is answered with the first 20
MAX_MESSAGE_CHARS = 300  # a message quotes the value: a 30 KB string is not sent back whole
_REQUIRED_MESSAGE = re.compile(r'^(".*") is a required property$', re.DOTALL)


class InvalidSchemaError(ValueError):
    """The schema cannot be registered: a bad type name, or not a valid JSON Schema."""


@dataclass(frozen=True)
class CompiledSchema:
    """The latest schema of one custom type of one game, ready to validate `properties`.

    `validator` is None when the stored version no longer compiles (registered before
    the current rules): `unusable` then says so, and every event of the type is refused.
    """

    version: int
    validator: object  # a jsonschema_rs validator, or None
    unusable: str = ""

    def errors(self, properties: object) -> dict | None:
        """Return None if `properties` is valid, else DRF-shaped errors keyed by the failing path.

        At most MAX_ERRORS messages of at most MAX_MESSAGE_CHARS characters each. jsonschema-rs's
        iter_errors builds every error (each with its instance and keyword value) before the first
        is read, so it is used only when the cheap evaluation output counts few errors; otherwise
        the first MAX_ERRORS entries of that output are reported.
        """
        if self.validator is None:
            return {api_settings.NON_FIELD_ERRORS_KEY: [self.unusable]}
        if self.validator.is_valid(properties):  # the common case: no error objects built
            return None
        entries = self.validator.evaluate(properties).errors()
        errors: dict = {}
        if len(entries) <= MAX_ERRORS:  # few errors: the detailed ones (one per anyOf, not one per branch)
            for error in itertools.islice(self.validator.iter_errors(properties), MAX_ERRORS):
                path = [str(part) for part in error.instance_path]
                if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Required):
                    path.append(str(error.kind.property))  # name the missing property itself
                nest_error(errors, path, _shorten(error.message))
            if errors:
                return errors
        for entry in entries[:MAX_ERRORS]:
            path = _pointer_parts(entry["instanceLocation"])
            if entry["schemaLocation"].endswith("/required"):
                name = _required_name(entry["error"])
                if name is not None:
                    path.append(name)
            nest_error(errors, path, _shorten(entry["error"]))
        return errors or {api_settings.NON_FIELD_ERRORS_KEY: ["Does not match the event type's schema."]}


def _shorten(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 1] + "\u2026"


def _pointer_parts(pointer: str) -> list[str]:
    """Split a JSON Pointer ("/hero/name") into its unescaped parts."""
    if not pointer:
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")[1:]]


def _required_name(message: str) -> str | None:
    """Return the missing property a `required` message names ('"level" is a required property'), or None."""
    match = _REQUIRED_MESSAGE.match(message)
    if match is None:
        return None
    try:
        name = json.loads(match.group(1))
    except ValueError:
        return None
    return name if isinstance(name, str) else None


def _refuse_retrieval(uri: str) -> object:
    """The validator's retriever: a registered schema is self-contained, nothing is ever fetched."""
    raise InvalidSchemaError(f"{uri[:200]!r} is not part of the schema; nothing is fetched.")


def _location(path: list) -> str:
    return "/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in path) if path else "the root"


def check_self_contained(schema: object) -> None:
    """Raise InvalidSchemaError naming the first thing that breaks the registration rules (see module doc).

    Looks at the whole document, the values of enum/const/examples included: a `$ref` may point at
    any place of it, so any object there may be compiled as a schema.
    """
    stack: list[tuple[object, list]] = [(schema, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            _check_text(node, path)
        elif isinstance(node, dict):
            for key, value in node.items():
                _check_text(key, path)
                if key in ("$ref", "$dynamicRef") and isinstance(value, str) and not value.startswith("#"):
                    raise InvalidSchemaError(
                        f"{key} {value[:200]!r} at {_location(path)} points outside this schema: a registered schema "
                        f'is self-contained, every {key} starts with "#" (e.g. "#/$defs/item"); nothing is fetched.'
                    )
                if key == "$schema" and isinstance(value, str) and value not in _DRAFT_2020_12_URIS:
                    raise InvalidSchemaError(
                        f"$schema {value[:200]!r} at {_location(path)} is not draft 2020-12: leave $schema out "
                        f'or give "{DRAFT_2020_12}".'
                    )
                stack.append((value, [*path, key]))
        elif isinstance(node, list):
            stack.extend((value, [*path, index]) for index, value in enumerate(node))


def _check_text(text: str, path: list) -> None:
    if "\x00" in text:
        raise InvalidSchemaError(f"A NUL character (\\u0000) at {_location(path)}: it cannot be stored.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidSchemaError(
            f"A lone surrogate (\\ud800-\\udfff) at {_location(path)}: it cannot be stored."
        ) from None


def compile_schema(schema: object) -> object:
    """Return a draft 2020-12 validator for `schema`; raise InvalidSchemaError naming what is wrong.

    Offline: every URI the schema names outside itself is refused, never fetched; `pattern`s use the
    linear-time regex engine (no look-around, no backreference, so no catastrophic backtracking).
    """
    if not isinstance(schema, (dict, bool)):
        raise InvalidSchemaError("A JSON Schema is an object (or true/false).")
    check_self_contained(schema)  # before the meta-schema check: it would fetch an unknown $schema
    try:
        jsonschema_rs.meta.validate(schema)
        return jsonschema_rs.Draft202012Validator(
            schema,
            validate_formats=True,
            retriever=_refuse_retrieval,
            pattern_options=jsonschema_rs.RegexOptions(),
        )
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if reason.endswith('is not a "regex"'):
            reason += (
                " (patterns are matched in linear time: look-around such as (?=...) or (?<=...) and "
                "backreferences such as \\1 are not supported)"
            )
        raise InvalidSchemaError(f"Not a valid JSON Schema: {_shorten(reason)}") from exc


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
        compiled = _compile_stored(game_id=game_id, event_type=event_type, version=latest)
    with _lock:
        if len(_cache) >= _CACHE_MAX_ENTRIES:
            _cache.clear()
        _cache[key] = (now + conf.schema_cache_seconds(), compiled)
    return compiled


_pinned: dict[tuple[int, str, int], tuple[float, CompiledSchema | None]] = {}


def pinned_schema(*, game_id: int, event_type: str, version: int) -> CompiledSchema | None:
    """Return version `version` of the game's schema of `event_type`, or None if it is not registered (cached)."""
    key = (game_id, event_type, version)
    entry = _pinned.get(key)
    now = time.monotonic()
    if entry is not None and entry[0] > now:
        return entry[1]
    latest = current_schema(game_id=game_id, event_type=event_type)
    if latest is not None and latest.version == version:
        compiled: CompiledSchema | None = latest
    else:
        compiled = _compile_stored(game_id=game_id, event_type=event_type, version=version)
    # A registered version never changes: keep it; a missing one may be registered soon.
    expires = float("inf") if compiled is not None else now + conf.schema_cache_seconds()
    with _lock:
        if len(_pinned) >= _CACHE_MAX_ENTRIES:  # the versions are the clients' to name
            _pinned.clear()
        _pinned[key] = (expires, compiled)
    return compiled


def _compile_stored(*, game_id: int, event_type: str, version: int) -> CompiledSchema | None:
    """Compile a stored version (None if there is none); one stored before the current rules refuses every event."""
    schema = (
        EventSchema.objects.filter(game_id=game_id, event_type=event_type, version=version)
        .values_list("schema", flat=True)
        .first()
    )
    if schema is None:
        return None
    try:
        return CompiledSchema(version=version, validator=compile_schema(schema))
    except InvalidSchemaError as exc:
        logger.warning("Custom schema %s version %s of game %s cannot be used: %s", event_type, version, game_id, exc)
        return CompiledSchema(
            version=version,
            validator=None,
            unusable=f"Version {version} of the schema of {event_type} breaks the rules for registered schemas and "
            "cannot check events: no event of this type is accepted until a new version is registered.",
        )


def clear_cache() -> None:
    """Forget every compiled schema (tests; a process that must see a new version at once)."""
    with _lock:
        _cache.clear()
        _pinned.clear()
