"""The OpenAPI document's finishing step: shared components, the probes and metrics, the tags."""

from events_app.api import openapi_common, openapi_segment
from events_app.api.openapi_events import EVENTS_TAG

OPS_TAG = "ops"

TAGS = [
    {"name": EVENTS_TAG, "description": "Send game events: one, or up to 500 in a batch."},
    {
        "name": openapi_segment.SEGMENT_TAG,
        "description": "Segment's HTTP Tracking API, for the Segment and RudderStack SDKs a game already ships.",
    },
    {"name": OPS_TAG, "description": "Probes and metrics for the platform that runs the service."},
]

_STATUS = {
    "type": "object",
    "properties": {"status": {"type": "string"}, "database": {"type": "string"}},
    "required": ["status"],
}


def _json(description: str, example: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _STATUS, "example": example}}}


# Plain Django views (no DRF), so drf-spectacular does not find them: described here.
OPS_PATHS = {
    "/healthz": {
        "get": {
            "operationId": "health",
            "summary": "Liveness probe",
            "tags": [OPS_TAG],
            "security": [],
            "responses": {"200": _json("The process is up.", {"status": "ok"})},
        }
    },
    "/readyz": {
        "get": {
            "operationId": "readiness",
            "summary": "Readiness probe",
            "tags": [OPS_TAG],
            "security": [],
            "responses": {
                "200": _json("The database answers.", {"status": "ok", "database": "ok"}),
                "503": {
                    **_json("The database does not answer.", {"status": "unavailable", "database": "unreachable"}),
                    "headers": {"Retry-After": {"schema": {"type": "integer"}, "required": True}},
                },
            },
        }
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics",
            "description": "Prometheus' text format. With `EVENTS_METRICS_TOKEN` set, only for "
            "`Authorization: Bearer <token>`.",
            "tags": [OPS_TAG],
            "security": [],
            "responses": {
                "200": {
                    "description": "The metrics.",
                    "content": {
                        "text/plain": {
                            "schema": {"type": "string"},
                            "example": 'tracker_events_received_total{game="demo-game"} 42.0\n',
                        }
                    },
                },
                "401": {
                    "description": "`EVENTS_METRICS_TOKEN` is set and the request did not carry it.",
                    "content": {"application/json": {"schema": openapi_common.ERROR}},
                },
            },
        }
    },
}


def finish(result: dict, generator, request, public: bool) -> dict:
    """Add the shared components, the probes and metrics, and the tags' descriptions to the document."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(openapi_common.COMPONENTS)
    schemas.update(openapi_segment.COMPONENTS)
    result["paths"].update(OPS_PATHS)
    result["tags"] = TAGS
    return result
