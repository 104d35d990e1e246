"""Run by tests/ops/test_sentry.py in a process of its own (Sentry patches Django and boto3 for good).

Sets Sentry up as settings.py does with SENTRY_DSN, with a transport that keeps the
envelopes instead of sending them; makes ingestion fail inside a request that
carries a key, a body, a cookie and a query string; prints, as one JSON line, the
key it used and every event Sentry would have sent. Run as `python -m tests.ops.sentry_probe`
from the project folder, with PROBE_MARKER (a string that must not be sent) and
DATABASE_URL (an empty SQLite file).
"""

import io
import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracking_project.test_settings")

import django

django.setup()

import sentry_sdk  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from sentry_sdk.transport import Transport  # noqa: E402

from events_app.api import views  # noqa: E402
from events_app.api.keys import issue_api_key  # noqa: E402
from events_app.ops.sentry import init_sentry  # noqa: E402


class KeepEnvelopes(Transport):
    """A transport that keeps the events it is given."""

    def __init__(self, options=None):
        super().__init__(options)
        self.events: list[dict] = []

    def capture_envelope(self, envelope):
        self.events += [item.payload.json for item in envelope.items if item.type in ("event", "transaction")]


def failing_ingest(**kwargs):
    raw_events = kwargs["raw_events"]  # frames hold the body and the key: neither may be sent  # noqa: F841
    raise RuntimeError("ingest failed")


def main() -> None:
    marker = os.environ["PROBE_MARKER"]  # not in argv: Sentry reports sys.argv
    call_command("migrate", verbosity=0)
    _, key = issue_api_key(game_slug="sentry-game")
    transport = KeepEnvelopes()
    init_sentry(dsn="https://public@sentry.invalid/1", environment="test", transport=transport)
    views.ingest_events = failing_ingest

    body = json.dumps({"event_type": "install", "player_id": marker, "occurred_at": "2026-01-01T00:00:00Z"}).encode()
    # Through the WSGI handler, as under gunicorn: that is where Sentry reads the request.
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/events",
        "QUERY_STRING": f"player={marker}",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.1.2.3",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_USER_AGENT": "probe/1",
        "HTTP_AUTHORIZATION": f"Bearer {key}",
        "HTTP_X_REQUEST_ID": "sentry-req-1",
        "HTTP_COOKIE": f"sessionid={marker}",
        "HTTP_X_API_KEY": key,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    statuses = []
    b"".join(get_wsgi_application()(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    sentry_sdk.flush()
    print(json.dumps({"status": statuses[0], "key": key, "events": transport.events}, default=str))


if __name__ == "__main__":
    main()
