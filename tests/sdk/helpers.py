"""SDK test helpers: a scriptable stand-in for the tracker, a fault-injecting proxy, the real app under gunicorn.

Processes start through devtools.processes."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from devtools.processes import BIN, ROOT, free_port, start, stop, wait_for, wait_until_up

# What a stand-in answers: (status, JSON body or text, headers), or CLOSE to hang up without answering.
Answer = tuple[int, Any, dict[str, str]]
CLOSE = "close the connection without answering"


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: Message
    raw_body: bytes
    client_port: int

    @property
    def body(self) -> bytes:
        if self.headers.get("Content-Encoding") == "gzip":
            return gzip.decompress(self.raw_body)
        return self.raw_body

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event_ids(self) -> list[str]:
        return [event["event_id"] for event in self.json["events"]]


def accept_everything(request: RecordedRequest) -> Answer:
    payload = request.json
    if request.path == "/v1/events/batch":
        results = [
            {"index": index, "event_id": event.get("event_id"), "status": "accepted"}
            for index, event in enumerate(payload["events"])
        ]
        return 200, {"accepted": len(results), "duplicates": 0, "rejected": 0, "results": results}, {}
    return 202, {"event_id": payload.get("event_id"), "status": "accepted"}, {}


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Callable[[RecordedRequest], Answer]:
    return lambda request: (status, body, headers or {})


def answers(*script: Answer | str | Callable, then: Callable[[RecordedRequest], Answer | str] = accept_everything):
    """Return a responder that gives the scripted answers (or calls scripted responders) in turn, then `then`."""
    pending = list(script)
    lock = threading.Lock()

    def respond(request: RecordedRequest) -> Answer | str:
        with lock:
            step = pending.pop(0) if pending else None
        if step is None:
            return then(request)
        return step(request) if callable(step) else step

    return respond


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is visible

    def do_POST(self) -> None:
        stand_in: FakeTracker = self.server.stand_in  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        request = RecordedRequest(self.command, self.path, self.headers, body, self.client_address[1])
        stand_in.requests.append(request)
        reply = stand_in.respond(request)
        if reply == CLOSE:
            self.close_connection = True
            return
        status, body, headers = reply
        is_text = isinstance(body, str)
        data = body.encode() if is_text else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if is_text else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakeTracker:
    """A local HTTP server that records every request and answers it with `respond` (accept everything by default)."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.stand_in = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.reset()

    def start(self) -> FakeTracker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join()

    def reset(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.respond: Callable[[RecordedRequest], Answer | str] = accept_everything

    def sent_event_ids(self) -> list[str]:
        """Return the event_id of every event in every batch request received, repeats included."""
        batches = [request for request in self.requests if request.path.endswith("/batch")]
        return [event_id for request in batches for event_id in request.event_ids]

    def wait_for_requests(self, count: int, timeout: float = 30.0) -> None:
        wait_for(lambda: len(self.requests) >= count, timeout=timeout, what=f"{count} requests")


def forward_to(upstream: str) -> Callable[[RecordedRequest], Answer | str]:
    """Return a responder that passes the request to `upstream` and relays its answer (a proxy)."""
    session = requests.Session()

    def forward(request: RecordedRequest) -> Answer:
        headers = {
            name: request.headers[name]
            for name in ("Authorization", "Content-Type", "Content-Encoding", "User-Agent")
            if request.headers.get(name)
        }
        response = session.post(upstream + request.path, data=request.raw_body, headers=headers, timeout=60)
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        return response.status_code, body, {}

    return forward


def forward_then_hang_up(upstream: str) -> Callable[[RecordedRequest], str]:
    """Return a responder that passes the request on, then drops the answer: the client cannot know it was stored."""
    forward = forward_to(upstream)

    def respond(request: RecordedRequest) -> str:
        forward(request)
        return CLOSE

    return respond


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps (or a test moves it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def spool_count(path: Path) -> int:
    """Return how many events wait in the spool file at `path` (read from outside the tracker)."""
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
        try:
            return db.execute("SELECT count(*) FROM spooled_event").fetchone()[0]
        except sqlite3.OperationalError:  # the table is not made yet
            return 0


# The real app.


@dataclass
class LiveTracker:
    """The app under gunicorn on a temporary SQLite file, without AWS (events are only stored: no worker runs)."""

    db_path: Path
    env: dict[str, str]
    key: str = ""
    url: str = ""
    processes: list[subprocess.Popen] = field(default_factory=list)

    @classmethod
    def create(cls, folder: Path) -> LiveTracker:
        db_path = folder / "app.sqlite3"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tracking_project.settings",
            "DJANGO_DEBUG": "1",
            "DATABASE_URL": f"sqlite:///{db_path}",
            "EVENTS_LOG_LEVEL": "WARNING",
        }
        live = cls(db_path=db_path, env=env)
        live.manage("migrate", "-v", "0")
        live.key = live.manage("create_api_key", "sdk-game").stdout.strip().splitlines()[-1]
        return live

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=self.env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def serve(self, port: int | None = None, *, wait: bool = True) -> str:
        """Start gunicorn (on `port`, else a free one); return its base URL."""
        port = port or free_port()
        process = start(
            [
                str(BIN / "gunicorn"),
                "tracking_project.wsgi",
                "-k",
                "gthread",
                "-w",
                "2",
                "--threads",
                "2",
                "-b",
                f"127.0.0.1:{port}",
                "--no-control-socket",
                "--graceful-timeout",
                "5",
            ],
            self.env,
        )
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"
        if wait:
            wait_until_up(f"{url}/healthz", process, timeout=120)
        return url

    def stop_all(self) -> None:
        for process in self.processes:
            stop(process)

    def copies(self, event_ids: Iterable[str]) -> dict[str, int]:
        """Return how many audit rows each of `event_ids` has (0 for none)."""
        ids = list(event_ids)
        wanted = {uuid.UUID(event_id).hex: event_id for event_id in ids}
        counts = dict.fromkeys(ids, 0)
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=30)) as db:
            for (stored,) in db.execute("SELECT event_id FROM events_app_event"):
                original = wanted.get(uuid.UUID(str(stored)).hex)
                if original is not None:
                    counts[original] += 1
        return counts

    def payloads(self, event_ids: Iterable[str]) -> dict[str, dict]:
        """Return the stored record (the Firehose line) of each of `event_ids` that has one."""
        wanted = {uuid.UUID(event_id).hex: event_id for event_id in event_ids}
        found = {}
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=30)) as db:
            for stored, payload in db.execute("SELECT event_id, payload FROM events_app_event"):
                original = wanted.get(uuid.UUID(str(stored)).hex)
                if original is not None:
                    found[original] = json.loads(payload)
        return found

    def all_payloads(self) -> list[dict]:
        """Return the stored record of every event, in the order they were stored."""
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=30)) as db:
            return [
                json.loads(payload) for (payload,) in db.execute("SELECT payload FROM events_app_event ORDER BY id")
            ]

    def row_count(self) -> int:
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=30)) as db:
            return db.execute("SELECT count(*) FROM events_app_event").fetchone()[0]


def fail_batches_holding(player_id: str, status: int = 500) -> Callable[[RecordedRequest], Answer]:
    """Return a responder that answers `status` to any batch holding an event of `player_id` (a poison event).

    The others are accepted, as a tracker with a bug that one event triggers would do.
    """

    def respond(request: RecordedRequest) -> Answer:
        if any(event.get("player_id") == player_id for event in request.json["events"]):
            return status, {"detail": "A server error occurred."}, {}
        return accept_everything(request)

    return respond
