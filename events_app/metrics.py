"""Prometheus instruments: what the app counts and times (a leaf: it imports no domain module).

Counters and histograms are prometheus-client's, in multiprocess mode whenever
PROMETHEUS_MULTIPROC_DIR is set: each process writes its figures to a file there
and `/metrics` sums them all, whichever gunicorn worker answers the scrape.
gunicorn's master empties the directory at start and forgets dead workers
(tracking_project/gunicorn_hooks.py; it makes a private one when the variable is
unset). The delivery worker is another process kind: it serves its own figures on
EVENTS_WORKER_METRICS_PORT (`ops.exposition.start_exporter`), so give it no
PROMETHEUS_MULTIPROC_DIR of the web server's. The figures read from the database and
the `/metrics` view live in `events_app.ops.exposition`.

Label values are bounded: event types are the built-in names, `custom` or
`invalid`; routes are URL names, the admin's all `admin`.
"""

import logging
import os
import time

from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    Counter,
    Histogram,
    disable_created_metrics,
)

logger = logging.getLogger(__name__)

# The `_created` series double every counter for little use (multiprocess mode has none anyway).
disable_created_metrics()

MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if MULTIPROCESS_DIR:
    # prometheus-client opens its files there on the first value; a missing directory
    # would fail the first request that counts something.
    os.makedirs(MULTIPROCESS_DIR, exist_ok=True)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

EVENTS_RECEIVED = Counter(
    "events_received", "Events submitted to the API, by type and what became of them.", ["event_type", "status"]
)
DELIVERY_OUTCOMES = Counter(
    "events_delivery_outcomes",
    "Events a sender tried to deliver, by outcome: delivered, failed (will retry), dead (gave up), "
    "deferred (not sent in this pass: the destination took nothing, or the lease ran short).",
    ["sender", "destination", "outcome"],
)
DESTINATION_CALLS = Counter(
    "events_destination_calls",
    "Calls to the destination (PutRecordBatch on Firehose): ok, partial (some records refused) or error.",
    ["destination", "sender", "result"],
)
DESTINATION_CALL_SECONDS = Histogram(
    "events_destination_call_seconds",
    "Time one destination call took.",
    ["destination", "sender"],
    buckets=CALL_BUCKETS,
)
CACHE_ERRORS = Counter(
    "events_cache_errors",
    "Calls to the shared cache (Redis) that failed and were answered without it, by operation.",
    ["operation"],
)
AUTH_FAILURES = Counter(
    "events_auth_failures",
    "Requests refused for an unknown or revoked key, by answer: 401, or 429 once their address failed too often.",
    ["status"],
)
REQUEST_SECONDS = Histogram(
    "events_http_request_duration_seconds",
    "Time Django took to answer, by route (URL name), method and status code.",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)

OK, PARTIAL, ERROR = "ok", "partial", "error"


def record_delivery(*, sender: str, destination: str, counts) -> None:
    """Count the outcomes of one delivery batch (a DeliveryCounts)."""
    for outcome in ("delivered", "failed", "dead", "deferred"):
        value = getattr(counts, outcome)
        if value:
            DELIVERY_OUTCOMES.labels(sender, destination, outcome).inc(value)


def timed_send(destination, records: list, *, policy) -> list:
    """Return `destination.send(records, policy=policy)`, counting the call, its result and time; errors propagate."""
    started = time.perf_counter()
    result = ERROR
    try:
        outcomes = destination.send(records, policy=policy)
        result = PARTIAL if any(outcomes) else OK
        return outcomes
    finally:
        DESTINATION_CALL_SECONDS.labels(destination.name, policy.name).observe(time.perf_counter() - started)
        DESTINATION_CALLS.labels(destination.name, policy.name, result).inc()


def cache_error(operation: str) -> None:
    """Count one failed call to the shared cache (`get_many`, `count`, ...: a fixed set of names)."""
    CACHE_ERRORS.labels(operation).inc()


def auth_failure(status: int) -> None:
    """Count one request refused for its key, answered `status` (401 or 429)."""
    AUTH_FAILURES.labels(str(status)).inc()


class RequestMetricsMiddleware:
    """Time every request into REQUEST_SECONDS, labelled by route, method and status."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        REQUEST_SECONDS.labels(_route(request), method_label(request.method), str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response


# HTTP's methods; any other token a client makes up is counted as "other", so that no
# client can add series (and grow every scrape) by inventing methods.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


def method_label(method: str | None) -> str:
    """Return the method label of a request: one of HTTP_METHODS, else "other"."""
    return method if method in HTTP_METHODS else "other"


def _route(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    name = match.view_name or match.route or "unnamed"
    return "admin" if name.startswith("admin:") else name
