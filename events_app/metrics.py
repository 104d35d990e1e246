"""Prometheus metrics: what the app counts, the figures read from the database, and the `/metrics` view.

Counters and histograms are prometheus-client's, in multiprocess mode whenever
PROMETHEUS_MULTIPROC_DIR is set: each process writes its figures to a file there
and `/metrics` sums them all, whichever gunicorn worker answers the scrape.
gunicorn's master empties the directory at start and forgets dead workers
(tracking_project/gunicorn_hooks.py; it makes a private one when the variable is
unset). The delivery worker is another process kind: it serves its own figures on
EVENTS_WORKER_METRICS_PORT (`start_exporter`), so give it no PROMETHEUS_MULTIPROC_DIR of
the web server's.

The backlog, the oldest pending event and the dead count come from the database at
scrape time, at most once per EVENTS_METRICS_CACHE_SECONDS (through Django's cache:
per deployment with REDIS_URL, else per process), however often Prometheus asks.
Label values are bounded: event types are the built-in names, `custom` or
`invalid`; routes are URL names, the admin's all `admin`.
"""

import hmac
import logging
import os
import time
from collections import Counter as Tally
from collections.abc import Iterable, Sequence

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from sdk.contract import is_custom_type_name

from . import conf, sharedcache

logger = logging.getLogger(__name__)

# The `_created` series double every counter for little use (multiprocess mode has none anyway).
disable_created_metrics()

_MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _MULTIPROCESS_DIR:
    # prometheus-client opens its files there on the first value; a missing directory
    # would fail the first request that counts something.
    os.makedirs(_MULTIPROCESS_DIR, exist_ok=True)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

EVENTS_RECEIVED = Counter(
    "events_received", "Events submitted to the API, by type and what became of them.", ["event_type", "status"]
)
DELIVERY_OUTCOMES = Counter(
    "events_delivery_outcomes",
    "Events a sender tried to deliver, by outcome: delivered, failed (will retry), dead (gave up), "
    "deferred (lease too short, left for the worker).",
    ["sender", "destination", "outcome"],
)
DESTINATION_CALLS = Counter(
    "events_destination_calls",
    "Calls to the destination (PutRecordBatch on Firehose): ok, partial (some records refused) or error.",
    ["destination", "sender", "result"],
)
DESTINATION_CALL_SECONDS = Histogram(
    "events_destination_call_seconds", "Time one destination call took.", ["destination", "sender"],
    buckets=CALL_BUCKETS,
)  # fmt: skip
BREAKER_OPENED = Counter("events_breaker_opened", "Times the forwarder's circuit breaker opened.")
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


def event_type_label(event_type: object) -> str:
    """Return the label of an event type: a built-in name, `custom`, or `invalid` for what is neither."""
    from .event_types import REGISTRY as EVENT_TYPES

    if isinstance(event_type, str) and event_type in EVENT_TYPES:
        return event_type
    return "custom" if is_custom_type_name(event_type) else "invalid"


def count_received(*, raw_events: Sequence, results: Sequence[dict]) -> None:
    """Count each submitted event under its type and the status it was answered with."""
    tally: Tally[tuple[str | None, str]] = Tally()
    for raw, result in zip(raw_events, results, strict=True):
        event_type = raw.get("event_type") if isinstance(raw, dict) else None
        tally[(event_type if isinstance(event_type, str) else None, result["status"])] += 1
    labelled: Tally[tuple[str, str]] = Tally()
    for (event_type, status), count in tally.items():  # a few distinct types per request: label each once
        labelled[(event_type_label(event_type), status)] += count
    for (label, status), count in labelled.items():
        EVENTS_RECEIVED.labels(label, status).inc(count)


def count_events(*, event_type: object, status: str, count: int = 1) -> None:
    """Count `count` events answered `status` without going through ingest (e.g. refused before mapping)."""
    if count:
        EVENTS_RECEIVED.labels(event_type_label(event_type), status).inc(count)


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


def breaker_opened() -> None:
    """Count one opening of the circuit breaker."""
    BREAKER_OPENED.inc()


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
        REQUEST_SECONDS.labels(_route(request), request.method or "", str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response


def _route(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    name = match.view_name or match.route or "unnamed"
    return "admin" if name.startswith("admin:") else name


# --- Figures from the database --------------------------------------------------------

_FIGURES_KEY = "events:metrics:database"
_LOCK_KEY = "events:metrics:database:lock"
_last_figures: dict | None = None  # this process's last figures, while another process refreshes them


def database_figures(*, now: float | None = None) -> dict:
    """Return the delivery figures read from the database, refreshed at most once per EVENTS_METRICS_CACHE_SECONDS.

    Keys: `backlog` (events pending or failed), `dead`, and the receive times (Unix
    seconds, None when there is none) of the oldest pending-or-failed event and of
    the oldest delivered one. Times rather than ages, so a cached figure still ages
    correctly. Raises DatabaseError if the database cannot be read.
    """
    global _last_figures
    ttl = conf.metrics_cache_seconds()
    figures = (sharedcache.get_many([_FIGURES_KEY]) or {}).get(_FIGURES_KEY) if ttl > 0 else None
    if figures is not None:
        return figures
    # One process refreshes; the others keep serving their last figures meanwhile.
    if ttl > 0 and sharedcache.add(_LOCK_KEY, 1, timeout=max(ttl, 1)) is False and _last_figures is not None:
        return _last_figures
    figures = _read_figures()
    if ttl > 0:
        sharedcache.set(_FIGURES_KEY, figures, timeout=ttl)
    _last_figures = figures
    return figures


def _read_figures() -> dict:
    # The dashboard's and the admin index's own figures (one source for "the oldest
    # undelivered event"), and one row from the front of the (state, received_at) index.
    from .dashboard import backlog
    from .models import DeliveryState, Event

    due = backlog()
    delivered = (
        Event.objects.filter(delivery_state=DeliveryState.DELIVERED)
        .order_by("received_at")
        .values_list("received_at", flat=True)
        .first()
    )
    return {
        "backlog": due.pending + due.failed,
        "dead": due.dead,
        "oldest_due_at": due.oldest_undelivered_at.timestamp() if due.oldest_undelivered_at else None,
        "oldest_delivered_at": delivered.timestamp() if delivered else None,
    }


class DatabaseCollector:
    """The gauges read at scrape time: database figures (cached) and the breaker's state."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from . import breaker

        now = time.time()
        try:
            figures = database_figures()
        except DatabaseError as exc:
            logger.warning("metrics: could not read the database: %s", exc.__class__.__name__)
            figures = None
        yield GaugeMetricFamily(
            "events_database_up",
            "1 if the last read of the delivery figures succeeded.",
            value=float(figures is not None),
        )
        yield GaugeMetricFamily(
            "events_breaker_open",
            "1 while the forwarder's circuit breaker is open (shared by all processes with REDIS_URL).",
            value=float(not breaker.forwarding_allowed()),
        )
        if figures is None:
            return
        yield GaugeMetricFamily("events_delivery_backlog", "Events pending or failed (to be sent).", figures["backlog"])
        yield GaugeMetricFamily(
            "events_dead", "Events the senders gave up on (dead) until resent or purged.", figures["dead"]
        )
        yield GaugeMetricFamily(
            "events_oldest_pending_seconds",
            "Age of the oldest pending or failed event, by its received_at; 0 when there is none.",
            _age(figures["oldest_due_at"], now),
        )
        yield GaugeMetricFamily(
            "events_oldest_delivered_seconds",
            "Age of the oldest delivered event still stored: above the retention, purge_events is not running.",
            _age(figures["oldest_delivered_at"], now),
        )


def _age(stamp: float | None, now: float) -> float:
    return max(0.0, now - stamp) if stamp is not None else 0.0


class _ThisProcess:
    """The default registry as one collector: this process's own figures when not in multiprocess mode."""

    def collect(self):
        yield from REGISTRY.collect()


def exposition(*, include_database: bool = True) -> bytes:
    """Return the metrics in Prometheus text format: every process's counters, then the database gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if _MULTIPROCESS_DIR:
        MultiProcessCollector(registry, path=_MULTIPROCESS_DIR)
    else:
        registry.register(_ThisProcess())
    if include_database:
        registry.register(DatabaseCollector())
    return generate_latest(registry)


_warned_single_process = False


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics, Prometheus text format; with EVENTS_METRICS_TOKEN set, only for `Authorization: Bearer <token>`."""
    global _warned_single_process
    token = conf.metrics_token()
    if token:
        given = request.META.get("HTTP_AUTHORIZATION", "").encode()
        if not hmac.compare_digest(given, f"Bearer {token}".encode()):
            response = JsonResponse({"detail": "A valid bearer token is required for /metrics."}, status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    under_gunicorn = request.META.get("SERVER_SOFTWARE", "").startswith("gunicorn")
    if not _MULTIPROCESS_DIR and under_gunicorn and not _warned_single_process:
        _warned_single_process = True
        logger.warning(
            "metrics: PROMETHEUS_MULTIPROC_DIR is unset, so /metrics shows only the worker process that answers; "
            "gunicorn.conf.py needs the hooks of tracking_project/gunicorn_hooks.py"
        )
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


def start_exporter(port: int, *, addr: str = "0.0.0.0"):
    """Serve this process's figures (no database gauges) on `port` from a thread: the delivery worker's.

    Returns the server (its `shutdown()` stops it).
    """
    from prometheus_client import start_http_server

    registry = CollectorRegistry(auto_describe=False)
    if _MULTIPROCESS_DIR:
        MultiProcessCollector(registry, path=_MULTIPROCESS_DIR)
    else:
        registry.register(_ThisProcess())
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    logger.info("metrics exporter listening on %s:%d", addr, port)
    return server
