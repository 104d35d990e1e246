"""CORS for the Segment endpoints: answers any web page may read, and preflights that allow the SDKs' own headers."""

import re

from django.utils.cache import patch_vary_headers
from rest_framework import status
from rest_framework.response import Response

# Allowed whatever a preflight asks: what Segment's and RudderStack's web SDKs send.
DEFAULT_ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Content-Encoding",
    "X-Retry-Count",
    "AnonymousId",
    "SentAt",
)
# A preflight's Access-Control-Request-Headers is echoed only within these bounds, so a
# client can never make the server reflect an arbitrary or unbounded value.
MAX_REQUESTED_HEADERS = 32
MAX_REQUESTED_HEADERS_LENGTH = 1024
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def allow_any_origin(response: Response) -> None:
    """Let web pages of any origin read the answer: analytics.js calls from the game's own site.

    Without it a browser hides even a 200 from analytics.js, which then retries a call
    already stored. No cookies are involved, so any origin is safe.
    """
    response["Access-Control-Allow-Origin"] = "*"
    # analytics.js reads X-RateLimit-Reset on a 429; Segment's clients read Retry-After.
    response["Access-Control-Expose-Headers"] = "Retry-After, X-RateLimit-Reset"
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS and response.has_header("Retry-After"):
        response["X-RateLimit-Reset"] = response["Retry-After"]


def preflight_response(requested_headers: str) -> Response:
    """Return the answer to a browser's CORS preflight that asked to send `requested_headers`.

    The SDKs add headers of their own (RudderStack's JS SDK: `AnonymousId`, `SentAt`)
    and new versions add more: a fixed list would make the browser block every call of
    an SDK that adds one. So the requested names are allowed as asked, when each is a
    plausible header name and there are few enough; otherwise the default list.
    """
    response = Response(status=status.HTTP_204_NO_CONTENT)
    response["Access-Control-Allow-Methods"] = "POST, PUT, OPTIONS"
    response["Access-Control-Allow-Headers"] = ", ".join(allowed_headers(requested_headers))
    response["Access-Control-Max-Age"] = "86400"
    # The answer depends on the request's header: a cache must not give it to another.
    patch_vary_headers(response, ["Access-Control-Request-Headers"])
    return response


def allowed_headers(requested_headers: str) -> list[str]:
    """Return the defaults plus the requested names; the defaults alone for an implausible or overlong request."""
    if len(requested_headers) > MAX_REQUESTED_HEADERS_LENGTH:
        return list(DEFAULT_ALLOWED_HEADERS)
    names = [name.strip() for name in requested_headers.split(",") if name.strip()]
    if len(names) > MAX_REQUESTED_HEADERS or not all(_HEADER_NAME.fullmatch(name) for name in names):
        return list(DEFAULT_ALLOWED_HEADERS)
    known = {name.lower() for name in DEFAULT_ALLOWED_HEADERS}
    extra = []
    for name in names:
        if name.lower() not in known:
            known.add(name.lower())
            extra.append(name)
    return [*DEFAULT_ALLOWED_HEADERS, *extra]
