"""Exposition: the `/metrics` view, the delivery worker's exporter, and the figures read from the database.

The backlog, the oldest pending event and the dead count come from the database at
scrape time, at most once per EVENTS_METRICS_CACHE_SECONDS (through Django's cache:
per deployment with REDIS_URL, else per process), however often Prometheus asks.
Both ask for `Authorization: Bearer EVENTS_METRICS_TOKEN` when it is set; without a
token, production (EVENTS_METRICS_PUBLIC off) serves neither.
"""

import hmac
import logging
import socket
import threading
import time
from collections.abc import Iterable
from wsgiref.simple_server import WSGIRequestHandler, make_server

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.multiprocess import MultiProcessCollector

from events_app import conf, logstore, sharedcache
from events_app.delivery.status import backlog, relay_lag
from events_app.metrics import MULTIPROCESS_DIR
from events_app.models import DeliveryCursor, DeliveryIssue, Event, IssueState

logger = logging.getLogger(__name__)

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
    # undelivered event"), the relays' lag, and one row from the front of the received_at index.
    due = backlog()
    lag = relay_lag()
    # The oldest event a purge could take: passed by the relays, with no issue still to deliver (or dead).
    stored = (
        Event.objects.exclude(logstore.not_relayed(list(DeliveryCursor.objects.all())))
        .exclude(Exists(DeliveryIssue.objects.filter(event_id=OuterRef("pk")).exclude(state=IssueState.DELIVERED)))
        .order_by("pk")  # ids follow arrival: the primary key's front, no sort of the log
        .values_list("received_at", flat=True)
        .first()
    )
    return {
        "backlog": due.pending + due.failed,
        "dead": due.dead,
        "oldest_due_at": due.oldest_undelivered_at.timestamp() if due.oldest_undelivered_at else None,
        "oldest_delivered_at": stored.timestamp() if stored else None,
        "relay_lag_events": lag.events,
        # PostgreSQL: days after today whose partition exists (no DEFAULT partition: a missing day fails inserts).
        "partition_days_ahead": logstore.days_ahead() if logstore.partitioned() else None,
        "relay_lag_from": lag.oldest_received_at.timestamp() if lag.oldest_received_at else None,
    }


class DatabaseCollector:
    """The gauges read at scrape time: the database figures (cached)."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
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
            "Age of the oldest event still stored: above the retention, purge_events is not running.",
            _age(figures["oldest_delivered_at"], now),
        )
        if figures.get("partition_days_ahead") is not None:
            yield GaugeMetricFamily(
                "events_log_partition_days_ahead",
                "Days after today whose partition of the log exists (PostgreSQL); under 2, run ensure_partitions.",
                figures["partition_days_ahead"],
            )
        yield GaugeMetricFamily(
            "events_relay_lag_events", "Events stored that no relay has sent yet.", figures["relay_lag_events"]
        )
        yield GaugeMetricFamily(
            "events_relay_lag_seconds",
            "How long the oldest event no relay has sent yet has waited; 0 when the relays are caught up.",
            _age(figures["relay_lag_from"], now),
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
    if MULTIPROCESS_DIR:
        MultiProcessCollector(registry, path=MULTIPROCESS_DIR)
    else:
        registry.register(_ThisProcess())
    if include_database:
        registry.register(DatabaseCollector())
    return generate_latest(registry)


CLOSED = (
    "metrics are closed in production without a token: set EVENTS_METRICS_TOKEN (scrapers send it as "
    "`Authorization: Bearer ...`), or EVENTS_METRICS_PUBLIC=1 to serve them to anyone"
)


def metrics_closed() -> bool:
    """Return True if metrics may not be served: no EVENTS_METRICS_TOKEN, and EVENTS_METRICS_PUBLIC off (production)."""
    return not conf.metrics_token() and not conf.metrics_public()


def authorized(header: str) -> bool:
    """Return True if an Authorization header value lets its request read the metrics (EVENTS_METRICS_TOKEN)."""
    token = conf.metrics_token()
    if not token:
        return conf.metrics_public()
    return hmac.compare_digest(header.encode(), f"Bearer {token}".encode())


_warned_single_process = False
_warned_closed = False


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics, Prometheus text format; with EVENTS_METRICS_TOKEN set, only for `Authorization: Bearer <token>`."""
    global _warned_single_process, _warned_closed
    if metrics_closed():
        if not _warned_closed:
            _warned_closed = True
            logger.warning("metrics: /metrics answers 403: %s", CLOSED)
        return JsonResponse({"detail": CLOSED}, status=403)
    if not authorized(request.META.get("HTTP_AUTHORIZATION", "")):
        response = JsonResponse({"detail": "A valid bearer token is required for /metrics."}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    under_gunicorn = request.META.get("SERVER_SOFTWARE", "").startswith("gunicorn")
    if not MULTIPROCESS_DIR and under_gunicorn and not _warned_single_process:
        _warned_single_process = True
        logger.warning(
            "metrics: PROMETHEUS_MULTIPROC_DIR is unset, so /metrics shows only the worker process that answers; "
            "gunicorn.conf.py needs the hooks of tracking_project/gunicorn_hooks.py"
        )
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


class _QuietHandler(WSGIRequestHandler):
    """No line per scrape on stderr (wsgiref's default)."""

    def log_message(self, format, *args):
        pass


def start_exporter(port: int, *, addr: str | None = None):
    """Serve this process's figures (no database gauges) on `port` from a thread: the delivery worker's.

    Binds EVENTS_WORKER_METRICS_ADDR (loopback) unless `addr` is given, and asks for
    the same bearer token as `/metrics`. Raises ImproperlyConfigured when metrics are
    closed (production without a token, EVENTS_METRICS_PUBLIC off). Returns the server
    (its `shutdown()` stops it).
    """
    if metrics_closed():
        raise ImproperlyConfigured(f"EVENTS_WORKER_METRICS_PORT is set, but {CLOSED}")
    addr = conf.worker_metrics_addr() if addr is None else addr
    registry = CollectorRegistry(auto_describe=False)
    if MULTIPROCESS_DIR:
        MultiProcessCollector(registry, path=MULTIPROCESS_DIR)
    else:
        registry.register(_ThisProcess())
    metrics_app = make_wsgi_app(registry)

    def app(environ, start_response):
        if not authorized(environ.get("HTTP_AUTHORIZATION", "")):
            start_response(
                "401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Bearer realm="metrics"')]
            )
            return [b"A valid bearer token is required for /metrics.\n"]
        return metrics_app(environ, start_response)

    family = socket.AF_INET6 if ":" in addr else socket.AF_INET  # wsgiref binds IPv4 unless told
    server_class = type("MetricsServer", (ThreadingWSGIServer,), {"address_family": family})
    server = make_server(addr, port, app, server_class=server_class, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-exporter", daemon=True).start()
    logger.info("metrics exporter listening on %s:%d", addr, port)
    return server
