"""The bare baseline for ingest, for comparison only: Django, parse JSON, executemany into SQLite.

Same durability as the project (WAL, synchronous=FULL, a transaction per request),
none of its rules: no authentication, validation, duplicates or delivery state.
Served by bench/end_to_end.py as `gunicorn -c gunicorn.conf.py bench.bare_django:application`
with BARE_DATABASE set to the SQLite file.
"""

import os
import sqlite3
import threading
import uuid

import orjson
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="benchmark-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

_local = threading.local()
SCHEMA = """
CREATE TABLE IF NOT EXISTS event (
    id INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, event_type TEXT NOT NULL, player_id TEXT NOT NULL,
    occurred_at TEXT NOT NULL, payload TEXT NOT NULL
)
"""


def _db() -> sqlite3.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = sqlite3.connect(os.environ["BARE_DATABASE"], timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(SCHEMA)
    return conn


def _store(events: list[dict]) -> list[str]:
    rows = [
        (e.get("event_id") or str(uuid.uuid4()), e["event_type"], e["player_id"], e["occurred_at"], orjson.dumps(e))
        for e in events
    ]
    conn = _db()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            "INSERT INTO event (event_id, event_type, player_id, occurred_at, payload) VALUES (?, ?, ?, ?, ?)", rows
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return [row[0] for row in rows]


@csrf_exempt
def one_event(request):
    (event_id,) = _store([orjson.loads(request.body)])
    return JsonResponse({"event_id": event_id, "status": "accepted"}, status=202)


@csrf_exempt
def batch(request):
    ids = _store(orjson.loads(request.body)["events"])
    results = [{"index": i, "event_id": event_id, "status": "accepted"} for i, event_id in enumerate(ids)]
    return HttpResponse(
        orjson.dumps({"accepted": len(ids), "duplicates": 0, "rejected": 0, "results": results}),
        content_type="application/json",
    )


def healthz(request):
    return JsonResponse({"status": "ok"})


urlpatterns = [path("v1/events", one_event), path("v1/events/batch", batch), path("healthz", healthz)]
application = get_wsgi_application()
