"""The OpenAPI description of /v1/events and /v1/events/batch: the event per type, the answers, the examples."""

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers

from events_app import conf
from events_app.api.openapi_common import ERROR, FIELD_ERRORS, RETRY_AFTER, error_answers
from events_app.event_types import REGISTRY
from events_app.event_types.fields import JSONObjectField, RFC3339DateTimeField, StrictCharField
from events_app.ingest.serializers import EventSerializer
from sdk.contract import CUSTOM_EVENT_TYPE_PATTERN, EVENT_STRINGS, MAX_BATCH_EVENTS

EVENTS_TAG = "events"


def _variant(name: str) -> type[serializers.Serializer]:
    """Return the serializer that documents what an event of built-in type `name` adds to the common fields."""
    event_type = REGISTRY[name]
    properties = event_type.properties_serializer
    has_required = any(prop.required for prop in event_type.rules.properties.values())
    attrs: dict = {
        "__doc__": f"A `{name}` event: {event_type.description}",
        "__module__": __name__,
        "event_type": serializers.ChoiceField(choices=[name]),
        "properties": properties(required=has_required),
    }
    for field_name in event_type.required_fields:  # session_id of the session types
        attrs[field_name] = StrictCharField(max_length=EVENT_STRINGS[field_name])
    return type("".join(part.title() for part in name.split("_")) + "Event", (serializers.Serializer,), attrs)


class CustomEvent(serializers.Serializer):
    """An event of one of the game's custom types: `properties` must match the JSON Schema the game registered."""

    event_type = serializers.CharField(
        help_text="A custom type name (lower snake_case, at most 64 characters) that is no built-in type's."
    )
    properties = JSONObjectField(required=False, help_text="Checked against the type's latest registered schema.")


_VARIANTS = {name: _variant(name) for name in REGISTRY}


class EventSchema(OpenApiSerializerExtension):
    """The event: its common fields, and by `event_type` the properties each built-in type takes (one of)."""

    target_class = EventSerializer

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["description"] = (
            "One player event. The common fields are the same for every type; `event_type` chooses what "
            "`properties` must hold (see the variants). A body with several faults is answered with all of them."
        )
        # A valid whole event as the example: schemathesis builds its invalid variants from it,
        # so each one is refused for the fault it was given, not for a missing property.
        schema["properties"]["event_type"]["example"] = "install"
        schema["example"] = _INSTALL
        refs, mapping = [], {}
        for name, variant in _VARIANTS.items():
            component = auto_schema.resolve_serializer(variant, direction)
            refs.append(component.ref)
            mapping[name] = component.ref["$ref"]
        custom = auto_schema.resolve_serializer(CustomEvent, direction)
        _exclude_builtin_names(custom)
        # Only a custom event may name a schema version (a built-in one is refused for it).
        custom.schema["properties"]["event_schema_version"] = schema["properties"].pop("event_schema_version")
        # Custom types are every other valid name, so they are matched by the last variant, not by the mapping.
        schema["oneOf"] = [*refs, custom.ref]
        schema["discriminator"] = {"propertyName": "event_type", "mapping": mapping}
        return schema


def _exclude_builtin_names(component: ResolvedComponent) -> None:
    event_type = component.schema["properties"]["event_type"]
    event_type["pattern"] = CUSTOM_EVENT_TYPE_PATTERN
    event_type["not"] = {"enum": list(REGISTRY)}


class EventAnswer(serializers.Serializer):
    """What a stored (or suppressed) event is answered with."""

    event_id = serializers.UUIDField(
        required=False,
        help_text="The stored event's id (for a duplicate, the original's). A suppressed event carries only "
        "the id the client sent, if any.",
    )
    status = serializers.ChoiceField(
        choices=[
            ("accepted", "stored, to be delivered"),
            ("duplicate", "already stored: nothing changed"),
            ("suppressed", "the player was erased: neither stored nor delivered"),
        ]
    )


class EventOutcome(serializers.Serializer):
    """The outcome of one event of a batch, in the order sent."""

    index = serializers.IntegerField(min_value=0, help_text="Position of the event in the batch, from 0.")
    event_id = serializers.UUIDField(required=False, help_text="As for one event; absent when rejected.")
    status = serializers.ChoiceField(choices=["accepted", "duplicate", "rejected", "suppressed"])
    errors = serializers.JSONField(required=False, help_text="Only when rejected: the errors keyed by field.")


class EventBatch(serializers.Serializer):
    """Up to 500 events sent together; each is accepted or rejected on its own."""

    sent_at = RFC3339DateTimeField(
        required=False,
        allow_null=True,
        help_text="When the client sent the batch (RFC 3339): corrects the clock of events without their own.",
    )
    events = serializers.ListField(child=EventSerializer(), min_length=1, max_length=MAX_BATCH_EVENTS)


class BatchAnswer(serializers.Serializer):
    """The counts of a batch's outcomes, and each event's outcome."""

    accepted = serializers.IntegerField(min_value=0)
    duplicates = serializers.IntegerField(min_value=0)
    rejected = serializers.IntegerField(min_value=0)
    suppressed = serializers.IntegerField(min_value=0, help_text="Events of erased players.")
    results = EventOutcome(many=True)


class EventOutcomeSchema(OpenApiSerializerExtension):
    """A rejected outcome's `errors` are the field errors of a 400."""

    target_class = EventOutcome

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["properties"]["errors"] = {**FIELD_ERRORS, "description": "Only when rejected: the errors by field."}
        return schema


_PURCHASE = {
    "event_id": "5f0b6c1e-8a59-4c0e-9d55-0c8e3a1c2b01",
    "event_type": "purchase",
    "player_id": "player-42",
    "occurred_at": "2026-11-25T10:00:00Z",
    "platform": "android",
    "properties": {"transaction_id": "GPA.5678", "product_id": "coins_500", "price": "4.99", "currency": "EUR"},
}
_INSTALL = {
    "event_id": "5f0b6c1e-8a59-4c0e-9d55-0c8e3a1c2b02",
    "event_type": "install",
    "player_id": "player-42",
    "occurred_at": "2026-11-25T09:58:00Z",
    "sent_at": "2026-11-25T09:58:01Z",
    "properties": {"store": "google_play", "country": "DE"},
}

# 400 on one event: its fields' errors, or a body that is no JSON object.
_INVALID_EVENT = OpenApiResponse(
    {"oneOf": [FIELD_ERRORS, ERROR]},
    description="The event is invalid: every bad field named with its errors (nested for `properties`), or the "
    "body is not JSON (`detail`).",
    examples=[
        OpenApiExample(
            "invalid event",
            value={
                "player_id": ["This field may not be blank."],
                "properties": {"price": ["Must be greater than 0."]},
            },
            response_only=True,
            status_codes=["400"],
        )
    ],
)

single_event = extend_schema(
    operation_id="send_event",
    summary="Send one event",
    description=(
        "Stores one event and answers once it is committed. Sending the same `event_id` again (or a purchase's "
        "`transaction_id`) answers `duplicate` and stores nothing. Retry on `429` and `503` (after `Retry-After`) "
        "and on network errors, never on another `4xx`."
    ),
    tags=[EVENTS_TAG],
    parameters=[RETRY_AFTER],
    request=EventSerializer,
    responses={
        202: OpenApiResponse(EventAnswer, description="Stored (`accepted`), already stored, or suppressed."),
        400: _INVALID_EVENT,
        **error_answers(body_limit=conf.MAX_EVENT_BODY_BYTES),
    },
    examples=[
        OpenApiExample("purchase", value=_PURCHASE, request_only=True),
        OpenApiExample(
            "accepted",
            value={"event_id": _PURCHASE["event_id"], "status": "accepted"},
            response_only=True,
            status_codes=["202"],
        ),
    ],
)

event_batch = extend_schema(
    operation_id="send_event_batch",
    summary="Send a batch of events",
    description=(
        "Stores up to 500 events in one request. Each event is judged on its own: the valid ones are stored even "
        "when others are rejected, so the answer is `200` with each event's outcome; only a bad envelope is `400`."
    ),
    tags=[EVENTS_TAG],
    parameters=[RETRY_AFTER],
    request=EventBatch,
    responses={
        200: OpenApiResponse(BatchAnswer, description="Each event's outcome, in the order sent."),
        400: OpenApiResponse(
            {"oneOf": [FIELD_ERRORS, ERROR]},
            description="The envelope is invalid (no `events` list, empty, over 500 events, a bad `sent_at`), "
            "or the body is not JSON.",
            examples=[
                OpenApiExample(
                    "empty batch",
                    value={"events": ["This list may not be empty."]},
                    response_only=True,
                    status_codes=["400"],
                )
            ],
        ),
        **error_answers(body_limit=conf.MAX_BODY_BYTES),
    },
    examples=[
        OpenApiExample(
            "two events, one invalid",
            value={"events": [_INSTALL, {"event_type": "install", "player_id": ""}]},
            request_only=True,
        ),
        OpenApiExample(
            "one accepted, one rejected",
            value={
                "accepted": 1,
                "duplicates": 0,
                "rejected": 1,
                "suppressed": 0,
                "results": [
                    {"index": 0, "event_id": _INSTALL["event_id"], "status": "accepted"},
                    {
                        "index": 1,
                        "status": "rejected",
                        "errors": {
                            "player_id": ["This field may not be blank."],
                            "occurred_at": ["This field is required."],
                        },
                    },
                ],
            },
            response_only=True,
            status_codes=["200"],
        ),
    ],
)
