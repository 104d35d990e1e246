"""DRF serializers of the HTTP API: an event (any built-in or custom type), the batch envelope, the answers."""

from collections.abc import Mapping
from datetime import UTC, datetime

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.settings import api_settings

from events_app import conf
from events_app.event_types import REGISTRY, custom
from events_app.event_types.fields import (
    NUL_MESSAGE,
    FlatSerializer,
    JSONObjectField,
    RFC3339DateTimeField,
    StrictCharField,
    StrictUUIDField,
    encoded_has_nul,
    json_encoded,
    nest_error,
    nul_paths,
)
from events_app.models import UnknownEventPolicy
from sdk.contract import CUSTOM_EVENT_TYPE_PATTERN, EVENT_STRINGS, PLATFORMS, PLAYER_ID_MAX_LENGTH, is_custom_type_name

_TYPE_LIST = ", ".join(f"`{name}`" for name in REGISTRY)


@extend_schema_field(
    {
        "type": "string",
        "pattern": CUSTOM_EVENT_TYPE_PATTERN,
        "example": "progression",
        "description": (
            f"A built-in type ({_TYPE_LIST}) or a custom type of the game, validated against the JSON Schema "
            "the game registered for it (manage.py event_schema)."
        ),
    }
)
class EventTypeField(serializers.Field):
    """The name of a built-in event type or of a custom one (lower snake_case, at most 64 characters)."""

    default_error_messages = {
        "invalid": "Not a valid string.",
        "invalid_name": (
            "{value!r} is neither a built-in type nor a valid custom type name (lower snake_case, "
            "starting with a letter, at most 64 characters)."
        ),
    }

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if data not in REGISTRY and not is_custom_type_name(data):
            self.fail("invalid_name", value=data[:80])
        return data

    def to_representation(self, value: str) -> str:
        return value


class SchemaVersionField(serializers.Field):
    """`event_schema_version`: a JSON integer >= 1 (not a string, a float or a boolean); null means the latest."""

    default_error_messages = {
        "invalid": "Must be an integer of at least 1 (a registered version of the custom type's schema).",
    }

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, bool) or not isinstance(data, int) or data < 1:
            self.fail("invalid")
        return data

    def to_representation(self, value: int) -> int:
        return value


class EventSerializer(FlatSerializer):
    """One event as a client sends it; validated data is ready to store and forward.

    Needs in its context `received_at` (server time), the `game` (whose custom-type
    schemas and policy apply) and, for batches, the batch's `sent_at`, to derive the
    skew-corrected `derived_at`. A custom event's validated data carries
    `event_schema_version`: the version that checked it (the one the event named,
    else the latest), None when accepted without a schema.
    """

    event_id = StrictUUIDField(required=False, help_text="Idempotency key; made by the server if absent.")
    event_type = EventTypeField()
    player_id = StrictCharField(max_length=PLAYER_ID_MAX_LENGTH)
    occurred_at = RFC3339DateTimeField(help_text="RFC 3339 with an offset, by the client's clock.")
    sent_at = RFC3339DateTimeField(required=False, allow_null=True)
    platform = serializers.ChoiceField(choices=PLATFORMS, required=False, allow_null=True)
    app_version = StrictCharField(max_length=EVENT_STRINGS["app_version"], required=False, allow_null=True)
    session_id = StrictCharField(max_length=EVENT_STRINGS["session_id"], required=False, allow_null=True)
    properties = JSONObjectField(required=False, help_text="Per event type; unknown keys are kept.")
    context = JSONObjectField(required=False, allow_null=True, max_bytes=conf.MAX_CONTEXT_BYTES)
    event_schema_version = SchemaVersionField(
        required=False,
        allow_null=True,
        help_text="Custom types only: check the event against this registered version of the type's schema "
        "instead of the latest (an app build pins the version it was written for).",
    )

    default_error_messages = {
        "too_large": "Event is {size} bytes as JSON; at most {max_size} are allowed.",
        "too_far_ahead": (
            "Lies {hours:.1f} h after the server's clock once corrected by sent_at; at most 24 h is allowed."
        ),
        "out_of_range": "Out of range once corrected by sent_at.",
        "required_by_type": "This field is required for {event_type} events.",
        "unregistered_type": (
            "{event_type!r} is a custom type with no registered schema, and this game rejects such events "
            "(register one with manage.py event_schema, or set the game's policy to accept)."
        ),
        "built_in_version": "Built-in event types have no schema version: leave event_schema_version out.",
        "unknown_version": (
            "{event_type!r} has no registered version {version} for this game{latest}: name a registered "
            "version, or leave event_schema_version out to use the latest."
        ),
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Built once per serializer, not per event: DRF copies declared fields lazily.
        self._properties_serializers = {
            name: event_type.properties_serializer() for name, event_type in REGISTRY.items()
        }

    def run_validation(self, data: object = empty) -> dict:
        # DRF answers a null with a bare list of errors; an event's errors are always
        # keyed, so a client can read every answer the same way.
        if not isinstance(data, Mapping):
            message = self.error_messages["invalid"].format(datatype=type(data).__name__)
            raise serializers.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: [message]}, code="invalid")
        return super().run_validation(data)

    def to_internal_value(self, data: object) -> dict:
        # Check the size before any field work so an oversized event costs little.
        nul_inside = False
        if isinstance(data, dict):
            try:
                encoded = json_encoded(data)
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: exc.detail}) from exc
            if len(encoded) > conf.MAX_EVENT_BYTES:
                message = self.error_messages["too_large"].format(size=len(encoded), max_size=conf.MAX_EVENT_BYTES)
                raise serializers.ValidationError({"non_field_errors": [message]}, code="too_large")
            # PostgreSQL cannot store a NUL in text or jsonb: one scan of the bytes we
            # have anyway finds one at any depth; only then are the objects walked.
            nul_inside = encoded_has_nul(encoded)
        attrs, errors = self.validate_fields(data)
        if nul_inside:
            self._name_nul_characters(data, errors)
        # Properties and clock checks run even when other fields failed, so one 400
        # names every bad field.
        if "event_type" in attrs:
            self._validate_by_type(attrs, errors)
        if "occurred_at" in attrs and "sent_at" not in errors:
            self._derive_time(attrs, errors)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def _name_nul_characters(self, data: dict, errors: dict) -> None:
        """Name each property or context key whose key or value holds a NUL (top-level fields check their own)."""
        for field_name in ("properties", "context"):
            if field_name in errors or not isinstance(data.get(field_name), dict):
                continue
            paths = nul_paths(data[field_name])
            if paths:
                errors[field_name] = {}
                for path in paths:  # named by the top-level key holding it, as the SDK names it
                    nest_error(errors[field_name], [str(path[0])], NUL_MESSAGE)

    def _validate_by_type(self, attrs: dict, errors: dict) -> None:
        """Check what the event's type asks of it: its properties, and top-level fields it requires."""
        name = attrs["event_type"]
        event_type = REGISTRY.get(name)
        pinned = attrs.pop("event_schema_version", None)
        if event_type is not None:
            if pinned is not None:
                errors["event_schema_version"] = [self.error_messages["built_in_version"]]
            for field_name in event_type.required_fields:
                if attrs.get(field_name) is None and field_name not in errors:
                    errors[field_name] = [self.error_messages["required_by_type"].format(event_type=name)]
            if "properties" not in errors:
                try:
                    attrs["properties"] = self._properties_serializers[name].run_validation(
                        attrs.get("properties") or {}
                    )
                except serializers.ValidationError as exc:
                    errors["properties"] = exc.detail
            return
        if "event_schema_version" in errors:
            return  # which version to check against is unclear: its error says so, properties wait
        game = self.context.get("game")  # without one (a unit test, a dry run) no schema or policy applies
        schema = custom.current_schema(game_id=game.pk, event_type=name) if game is not None else None
        if pinned is not None:
            latest = schema
            schema = custom.pinned_schema(game_id=game.pk, event_type=name, version=pinned) if game else None
            if schema is None:
                hint = f" (the latest is {latest.version})" if latest is not None else " (it has none)"
                message = self.error_messages["unknown_version"].format(event_type=name, version=pinned, latest=hint)
                errors["event_schema_version"] = [message]
                return
        if schema is None:
            if game is None or game.unknown_events != UnknownEventPolicy.ACCEPT:
                errors["event_type"] = [self.error_messages["unregistered_type"].format(event_type=name)]
                return
            attrs["event_schema_version"] = None
        else:
            attrs["event_schema_version"] = schema.version
            if "properties" not in errors:
                schema_errors = schema.errors(attrs.get("properties") or {})
                if schema_errors:
                    errors["properties"] = schema_errors
        attrs.setdefault("properties", {})

    def _derive_time(self, attrs: dict, errors: dict) -> None:
        """Set sent_at (the event's, else the batch's), received_at and the skew-corrected derived_at."""
        received_at: datetime = self.context["received_at"]
        sent_at = attrs.get("sent_at") or self.context.get("batch_sent_at")
        occurred_at: datetime = attrs["occurred_at"]
        try:
            derived_at = received_at - (sent_at - occurred_at) if sent_at else occurred_at
            ahead = (derived_at - received_at).total_seconds()
            derived_at.astimezone(UTC)
        except OverflowError:
            errors["occurred_at"] = [self.error_messages["out_of_range"]]
            return
        if ahead > conf.MAX_CLOCK_SKEW_SECONDS:
            errors["occurred_at"] = [self.error_messages["too_far_ahead"].format(hours=ahead / 3600)]
            return
        attrs["sent_at"] = sent_at
        attrs["received_at"] = received_at
        attrs["derived_at"] = derived_at


class BatchSerializer(serializers.Serializer):
    """The envelope of POST /v1/events/batch; each event is validated on its own afterwards."""

    sent_at = RFC3339DateTimeField(required=False, allow_null=True)
    # No child field: every entry, null included, is judged on its own by EventSerializer,
    # so one bad entry never costs the batch its valid events.
    events = serializers.ListField(min_length=1, max_length=conf.MAX_BATCH_EVENTS, allow_empty=False)


class EventResultSerializer(serializers.Serializer):
    """What the API answers for one event (documentation of the response)."""

    index = serializers.IntegerField(required=False, help_text="Position in the batch (batch only).")
    event_id = serializers.UUIDField(
        required=False,
        help_text="The stored event's id (for a duplicate, the original's); a suppressed event has only the one sent.",
    )
    status = serializers.ChoiceField(choices=("accepted", "duplicate", "rejected", "suppressed"))
    errors = serializers.DictField(required=False, help_text="Per field, as DRF gives them (rejected only).")


class BatchResultSerializer(serializers.Serializer):
    """The answer to POST /v1/events/batch (documentation of the response)."""

    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    suppressed = serializers.IntegerField(help_text="Events of erased players: neither stored nor forwarded.")
    results = EventResultSerializer(many=True)
