"""What every operation of the OpenAPI document shares: the error bodies and the error answers of the native API."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from events_app.api.errors import body_too_large_message

# Raw schemas, added to the document's components by the postprocessing hook (openapi_hooks).
COMPONENTS = {
    "Error": {
        "type": "object",
        "description": "A request refused as a whole: `detail` says why.",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
    "FieldErrors": {
        "type": "object",
        "description": (
            "Errors keyed by field: a list of messages, or for an object field (`properties`, `context`) its own "
            "keys' errors in the same form. `non_field_errors` holds what concerns the event as a whole."
        ),
        "additionalProperties": {
            "anyOf": [
                {
                    "type": "array",
                    "items": {"anyOf": [{"type": "string"}, {"$ref": "#/components/schemas/FieldErrors"}]},
                },
                {"$ref": "#/components/schemas/FieldErrors"},
            ]
        },
        "example": {
            "player_id": ["This field may not be blank."],
            "properties": {"price": ["Must be greater than 0."]},
        },
    },
}
ERROR = {"$ref": "#/components/schemas/Error"}
FIELD_ERRORS = {"$ref": "#/components/schemas/FieldErrors"}

RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    description="Seconds to wait before retrying.",
    response=[429, 503],
)


UNSUPPORTED_BODY = "The body is not `application/json`, or its `Content-Encoding` is not gzip or none."


def error_answers(
    *, body_limit: int, error: dict = ERROR, unsupported: str = UNSUPPORTED_BODY
) -> dict[int, OpenApiResponse]:
    """Return the answers of an ingestion endpoint other than its success and 400, with `error` as their body.

    `unsupported` says which bodies answer 415.
    """
    return {
        401: OpenApiResponse(error, description="The API key is missing, malformed, unknown or revoked."),
        413: OpenApiResponse(
            error, description=body_too_large_message(body_limit).replace("Request body is", "The body is")
        ),
        415: OpenApiResponse(error, description=unsupported),
        429: OpenApiResponse(
            error,
            description="Over the key's rate limit, or too many unknown keys from this address: retry after "
            "`Retry-After` seconds.",
        ),
        503: OpenApiResponse(
            error, description="The database is unavailable: nothing was stored; retry after `Retry-After`."
        ),
    }
