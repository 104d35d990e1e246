"""Error reports to Sentry, set up only when SENTRY_DSN is set, carrying no request body, key or secret.

The Django and boto3 integrations report unhandled errors and failing AWS calls.
What a report could leak is cut at the source, not trusted to Sentry's scrubbing:
no request bodies (`max_request_body_size="never"`), no local variables of the
stack frames (a frame of ingest holds the events, one of authentication the key),
no cookies, query strings or user; of the request headers only a few harmless
ones are kept, and the report is tagged with the request id to find its log lines.
"""

from collections.abc import Callable

import sentry_sdk
from sentry_sdk.integrations.boto3 import Boto3Integration
from sentry_sdk.integrations.django import DjangoIntegration

from events_app.logs import current_request_id, redact_keys

# Headers worth seeing in a report; every other header (Authorization above all) is dropped.
KEPT_HEADERS = frozenset({"content-type", "content-encoding", "content-length", "user-agent", "x-request-id"})


def init_sentry(
    *, dsn: str, environment: str | None = None, traces_sample_rate: float = 0.0, transport: Callable | None = None
) -> None:
    """Start reporting errors to the Sentry project of `dsn` (`transport`: a callable taking envelopes, for tests)."""
    options = {"transport": transport} if transport is not None else {}
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration(), Boto3Integration()],
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=False,
        traces_sample_rate=traces_sample_rate,
        before_send=scrub_event,
        before_send_transaction=scrub_event,
        **options,
    )


def scrub_event(event: dict, hint: dict | None = None) -> dict:
    """Return `event` without request data, cookies, query string or headers other than KEPT_HEADERS."""
    request = event.get("request")
    if isinstance(request, dict):
        for key in ("data", "cookies", "query_string", "env"):
            request.pop(key, None)
        if isinstance(request.get("url"), str):
            request["url"] = redact_keys(request["url"])  # Segment's settings URL holds the write key
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {name: value for name, value in headers.items() if name.lower() in KEPT_HEADERS}
    event.pop("user", None)
    for crumb in (event.get("breadcrumbs") or {}).get("values", []):
        if isinstance(crumb.get("message"), str):
            crumb["message"] = redact_keys(crumb["message"])
    request_id = current_request_id()
    if request_id:
        event.setdefault("tags", {})["request_id"] = request_id
    return event
