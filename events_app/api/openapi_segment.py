"""The OpenAPI description of the Segment-compatible endpoints: typed calls, the batch, the SDK settings.

Attached from outside the Segment views (OpenApiViewExtension, targets named by their
path) so the views keep only their behaviour. The calls are raw schemas: they describe
Segment's wire format, which no serializer of ours validates (the mapping reads it).
"""

from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.request import Request

from events_app.api.openapi_common import RETRY_AFTER, error_answers
from sdk.contract import MAX_BODY_BYTES

SEGMENT_TAG = "segment"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


_ID = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
_OBJECT = {"type": "object", "additionalProperties": {}}
_TIMESTAMP = {"type": "string", "description": "ISO 8601 with an offset, e.g. 2026-11-25T10:00:00.000Z or +0000."}

# What every call may carry (Segment's "common fields"); the player is userId, else anonymousId.
_COMMON = {
    "userId": {**_ID, "description": "The player: becomes `player_id` (at most 128 characters)."},
    "anonymousId": {**_ID, "description": "The player when there is no userId."},
    "messageId": {**_ID, "description": "Idempotency key: a repeated messageId is stored once."},
    "timestamp": {**_TIMESTAMP, "description": "When it happened (`occurred_at`); else originalTimestamp."},
    "originalTimestamp": _TIMESTAMP,
    "sentAt": _TIMESTAMP,
    "context": {
        **_OBJECT,
        "description": "Device, app, library...: `os.name` gives `platform`, `app.version` "
        "gives `app_version`; kept as the event's context.",
    },
    "integrations": _OBJECT,
    "writeKey": {"type": "string", "description": "The API key, when not in Authorization (analytics.js)."},
}
_CALLS = {
    "track": (
        "An action of the player: `Order Completed` becomes a `purchase`, `Application Installed` an `install`, "
        "any other name the type of its snake_case (`Level Up`: `level_up`).",
        {"event": {"type": "string", "minLength": 1}, "properties": _OBJECT},
        ["event"],
    ),
    "identify": ("Who the player is: `traits` (else `context.traits`) become the properties.", {"traits": _OBJECT}, []),
    "page": (
        "A web page view.",
        {"name": {"type": "string"}, "category": {"type": "string"}, "properties": _OBJECT},
        [],
    ),
    "screen": (
        "A screen view in an app.",
        {"name": {"type": "string"}, "category": {"type": "string"}, "properties": _OBJECT},
        [],
    ),
    "group": (
        "The player joined a group: `groupId` and `traits` become the properties.",
        {"groupId": _ID, "traits": _OBJECT},
        ["groupId"],
    ),
    "alias": (
        "Two ids of the player merged: `previousId` joins `userId`.",
        {"previousId": _ID},
        ["previousId", "userId"],
    ),
}


def _call_schema(call: str) -> dict:
    description, fields, required = _CALLS[call]
    return {
        "type": "object",
        "description": f"Segment `{call}`: {description}",
        "properties": {"type": {"type": "string", "enum": [call]}, **_COMMON, **fields},
        **({"required": required} if required else {}),
        "anyOf": [{"required": ["userId"]}, {"required": ["anonymousId"]}],
    }


def _name(call: str) -> str:
    return f"Segment{call.title()}"


COMPONENTS = {
    **{_name(call): _call_schema(call) for call in _CALLS},
    "SegmentMessage": {
        "description": "One call of a batch, by its `type`.",
        "oneOf": [_ref(_name(call)) for call in _CALLS],
        "discriminator": {
            "propertyName": "type",
            "mapping": {call: f"#/components/schemas/{_name(call)}" for call in _CALLS},
        },
    },
    "SegmentBatch": {
        "type": "object",
        "description": "Segment's batch: up to 2,500 calls, at most 500 KiB as JSON. `context` and `sentAt` apply "
        "to every call that does not give its own.",
        "properties": {
            "batch": {"type": "array", "items": _ref("SegmentMessage")},
            "sentAt": _TIMESTAMP,
            "context": _OBJECT,
            "writeKey": _COMMON["writeKey"],
        },
        "required": ["batch"],
    },
    "SegmentSuccess": {
        "type": "object",
        "properties": {"success": {"type": "boolean", "enum": [True]}},
        "required": ["success"],
    },
    "SegmentError": {
        "type": "object",
        "description": "Segment's error body: Segment's libraries log `code` and `message`.",
        "properties": {
            "success": {"type": "boolean", "enum": [False]},
            "code": {"type": "string", "example": "malformed_batch"},
            "message": {"type": "string"},
        },
        "required": ["success", "code", "message"],
    },
    "SegmentSettings": {
        "type": "object",
        "description": "Settings that point Segment's SDKs at this host (`integrations['Segment.io'].apiHost`).",
        "properties": {
            "integrations": {
                "type": "object",
                "properties": {
                    "Segment.io": {
                        "type": "object",
                        "properties": {
                            "apiKey": {"type": "string"},
                            "apiHost": {"type": "string"},
                            "protocol": {"type": "string", "enum": ["http", "https"]},
                        },
                        "required": ["apiKey", "apiHost", "protocol"],
                    }
                },
                "required": ["Segment.io"],
            },
        },
        "required": ["integrations"],
        "additionalProperties": {},
    },
}

_ERROR = _ref("SegmentError")
_SUCCESS = OpenApiResponse(
    _ref("SegmentSuccess"),
    description="Taken: the valid calls are stored; an invalid one is listed among the game's rejected events, as "
    "Segment does, so SDKs never retry it.",
    examples=[OpenApiExample("taken", value={"success": True}, response_only=True, status_codes=["200"])],
)


def _answers(bad_request: str) -> dict:
    return {
        200: _SUCCESS,
        400: OpenApiResponse(
            _ERROR,
            description=bad_request,
            examples=[
                OpenApiExample(
                    "malformed",
                    value={
                        "success": False,
                        "code": "malformed_batch",
                        "message": 'Expected a JSON object with "batch".',
                    },
                    response_only=True,
                    status_codes=["400"],
                )
            ],
        ),
        **error_answers(body_limit=MAX_BODY_BYTES, error=_ERROR, unsupported=_UNSUPPORTED),
    }


# What Segment's and RudderStack's SDKs send: JSON, whatever the type they declare.
_UNSUPPORTED = (
    "The body's declared type is none of `application/json`, `text/plain`, `application/x-www-form-urlencoded` "
    "or none (JSON is read under each of these), or its `Content-Encoding` is not gzip or none."
)

_TRACK = {
    "type": "track",
    "userId": "player-7",
    "event": "Order Completed",
    "messageId": "order-msg-1",
    "timestamp": "2026-11-25T10:00:00.000Z",
    "properties": {"order_id": "ord-1", "revenue": 12.99, "currency": "EUR"},
}
_EXAMPLES = {
    "track": _TRACK,
    "identify": {"userId": "player-7", "messageId": "identify-msg-1", "traits": {"name": "Ada", "guild": "north"}},
    "page": {"anonymousId": "anon-3", "messageId": "page-msg-1", "name": "Pricing", "properties": {"path": "/pricing"}},
    "screen": {"userId": "player-7", "messageId": "screen-msg-1", "name": "Shop", "context": {"os": {"name": "iOS"}}},
    "group": {"userId": "player-7", "messageId": "group-msg-1", "groupId": "guild-9", "traits": {"name": "North"}},
    "alias": {"userId": "player-7", "messageId": "alias-msg-1", "previousId": "anon-3"},
}


def _batch_schema():
    return extend_schema(
        operation_id="segment_batch",
        summary="Send a batch of Segment calls",
        description="Segment's batch endpoint (also at `/v1/b` and `/v1/import`, and with `PUT`). Authenticated "
        "by the API key as Basic user name, as Bearer token, or as `writeKey` in the body.",
        tags=[SEGMENT_TAG],
        parameters=[RETRY_AFTER],
        request={"application/json": _ref("SegmentBatch")},
        responses=_answers("The body is no JSON object with a `batch` list, a bad `context`, or over 500 KiB."),
        examples=[
            OpenApiExample(
                "a track and an identify",
                value={
                    "batch": [_TRACK, {"type": "identify", **_EXAMPLES["identify"]}],
                    "sentAt": "2026-11-25T10:00:01.000Z",
                },
                request_only=True,
            )
        ],
    )


def _call_schema_for(call: str):
    return extend_schema(
        operation_id=f"segment_{call}",
        summary=f"Send a Segment {call} call",
        description=f"{_CALLS[call][0]} Also at `/v1/{call[0]}` (analytics.js) and with `PUT`.",
        tags=[SEGMENT_TAG],
        parameters=[RETRY_AFTER],
        request={"application/json": _ref(_name(call))},
        responses=_answers("The body is no JSON object, or over 32 KiB."),
        examples=[OpenApiExample(call, value=_EXAMPLES[call], request_only=True)],
    )


_settings_schema = extend_schema(
    operation_id="segment_settings",
    summary="Settings for Segment's SDKs",
    description="What analytics.js and the mobile SDKs fetch at start-up (their `cdnHost` pointed here): the "
    "settings that send every call to this host.",
    tags=[SEGMENT_TAG],
    responses={
        200: OpenApiResponse(
            _ref("SegmentSettings"),
            description="The settings, naming this host as `apiHost`.",
            examples=[
                OpenApiExample(
                    "settings",
                    value={
                        "integrations": {
                            "Segment.io": {
                                "apiKey": "<write key>",
                                "apiHost": "tracker.example.com/v1",
                                "protocol": "https",
                            }
                        },
                        "plan": {"track": {"__default": {"enabled": True, "integrations": {}}}},
                    },
                    response_only=True,
                    status_codes=["200"],
                )
            ],
        ),
        401: OpenApiResponse(_ERROR, description="The write key in the path is unknown or revoked."),
        429: error_answers(body_limit=MAX_BODY_BYTES, error=_ERROR)[429],
        503: error_answers(body_limit=MAX_BODY_BYTES, error=_ERROR)[503],
    },
    parameters=[RETRY_AFTER],
)


class SegmentBatchViewSchema(OpenApiViewExtension):
    target_class = "events_app.segment.views.SegmentBatchView"

    def view_replacement(self):
        class Described(self.target_class):
            @_batch_schema()
            def post(self, request: Request):
                return super().post(request)

        return Described


class SegmentCallViewSchema(OpenApiViewExtension):
    """One view class serves the six calls (its `call_type`): each endpoint gets its call's description."""

    target_class = "events_app.segment.views.SegmentCallView"

    def view_replacement(self):
        # Each call's method is a distinct function, so its description stays its own.
        described = {}
        for call in _CALLS:

            def post(self, request: Request):
                return super(type(self), self).post(request)

            described[call] = _call_schema_for(call)(post)

        class Described(self.target_class):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.post = described[self.call_type].__get__(self)

        return Described


class SegmentSettingsViewSchema(OpenApiViewExtension):
    target_class = "events_app.segment.views.SegmentSettingsView"

    def view_replacement(self):
        class Described(self.target_class):
            @_settings_schema
            def get(self, request: Request, write_key: str):
                return super().get(request, write_key)

        return Described
