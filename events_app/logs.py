"""Log output: text or one JSON object per line (EVENTS_LOG_FORMAT), the request id on every line of a request.

`logging_config()` builds the LOGGING setting (tracking_project/settings.py calls it
before Django is set up, so this module imports nothing of Django's at the top).
`RequestIdMiddleware` takes the caller's `X-Request-ID` or makes one, returns it in
the answer, and `RequestIdFilter` stamps it on every record logged while the
request runs, in any module, through a context variable.

What is logged is what the code passes to `logging`: counts, slugs, key prefixes,
error classes. Nothing logs a request body, a header or a key; the access log
(tracking_project/gunicorn_hooks.py) leaves out query strings and the Basic-auth
user name, which on the Segment endpoints is the API key itself, and every line has
what looks like an API key cut down to its prefix (a key can be in a URL path).
"""

import contextvars
import logging
import re
import threading
import time
import uuid

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

LOG_FORMATS = ("text", "json")
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_META = "HTTP_X_REQUEST_ID"
# An id from upstream (a load balancer, the SDK) is kept only if it is safe to log as
# it is: no spaces, quotes or newlines that could forge a log line.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@=+/-]{1,128}")

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# The tracker's API keys (events_app.models: API_KEY_PREFIX + 43 url-safe characters).
# One can travel in a URL (Segment's `GET /v1/projects/{writeKey}/settings`), so paths
# and messages are cut down to the key's prefix, as the admin shows it, before any log.
API_KEY_PATTERN = re.compile(r"(pet_[A-Za-z0-9_-]{8})[A-Za-z0-9_-]{8,}")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = ["levelname", "name", "message"]
JSON_RENAMED = {"levelname": "level", "name": "logger"}
# Attributes some callers attach that must not reach a line: Django's `django.request`
# logger passes the request object itself.
JSON_RESERVED = [*RESERVED_ATTRS, "request"]


def redact_keys(text: str) -> str:
    """Return `text` with every API key cut down to its visible prefix (`pet_abcdefgh...`)."""
    return API_KEY_PATTERN.sub(r"\1...", text) if "pet_" in text else text


# C0 and C1 controls, DEL and the Unicode line separators: any of them in a logged value
# (a path with %0a, a header) could end a line and start a forged one, or drive a terminal.
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """Return `text` with every control character written as an escape (`\\n`, `\\x1b`), so one record is one line."""
    return _CONTROL_CHARACTERS.sub(lambda match: match.group().encode("unicode_escape").decode(), text)


class RedactKeysFilter(logging.Filter):
    """Make every record's message safe to log: API keys cut to their prefix, control characters escaped.

    Django logs 4xx paths, and a path can hold a key; a client's path or header can
    hold a newline. Tracebacks are formatted apart from the message and keep theirs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        safe = escape_controls(redact_keys(message))
        if safe != message:
            record.msg, record.args = safe, None
        return True


class LogThrottle:
    """Let a recurring line through at most once per `seconds` in this process, counting the times held back.

    For what can happen on every request (a lost cache, unknown keys): one line a
    minute says as much as thousands, without flooding the log or its bill.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._next = 0.0
        self._held = 0
        self._lock = threading.Lock()

    def due(self) -> int | None:
        """Return how many times were held back since the last line if one may be logged now, else None."""
        now = time.time()  # not monotonic: tests move it with time-machine
        with self._lock:
            if now < self._next:
                self._held += 1
                return None
            held, self._held = self._held, 0
            self._next = now + self.seconds
            return held

    def reset(self) -> None:
        """Let the next line through (tests)."""
        with self._lock:
            self._next, self._held = 0.0, 0


def current_request_id() -> str | None:
    """Return the id of the request this thread is answering, or None outside a request."""
    return _request_id.get()


class RequestIdFilter(logging.Filter):
    """Add `request_id` to every record: the current request's id (JSON: only inside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Django logs 4xx and 5xx answers (`django.request`) after the middleware has
        # returned, passing the request itself.
        request_id = _request_id.get() or getattr(getattr(record, "request", None), "request_id", None)
        if request_id is not None:
            record.request_id = request_id
        return True


class RequestIdMiddleware:
    """Give every request an id (the caller's `X-Request-ID` if usable, else a new one) and return it in the answer."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get(_REQUEST_ID_META, "")
        # A client's id is kept unless it looks like an API key (a misplaced header would log it).
        usable = _VALID_REQUEST_ID.fullmatch(incoming) and not API_KEY_PATTERN.search(incoming)
        request_id = incoming if usable else uuid.uuid4().hex
        request.request_id = request_id
        token = _request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


def json_formatter(**extra) -> logging.Formatter:
    """Return the formatter of JSON lines: time (UTC, ISO 8601), level, logger, message, then any extra fields."""
    return JsonFormatter(
        JSON_FIELDS, rename_fields=JSON_RENAMED, timestamp="time", reserved_attrs=JSON_RESERVED, **extra
    )


def logging_config(*, log_format: str, level: str) -> dict:
    """Return the LOGGING setting for `log_format` (`text` or `json`), the app's loggers at `level`.

    Raises ValueError for any other format, so a typo fails at startup instead of
    silently logging text to a pipeline that expects JSON.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"EVENTS_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    formatters = {
        "text": {"()": "logging.Formatter", "fmt": TEXT_FORMAT, "defaults": {"request_id": "-"}},
        "json": {"()": "events_app.logs.json_formatter"},
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "events_app.logs.RequestIdFilter"},
            "redact_keys": {"()": "events_app.logs.RedactKeysFilter"},
        },
        "formatters": {log_format: formatters[log_format]},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["request_id", "redact_keys"],
            },
        },
        "root": {"handlers": ["console"], "level": "WARNING"},
        "loggers": {
            "events_app": {"level": level, "propagate": True},
            # Django's own console handler (debug only, plain text) would print a second,
            # non-JSON copy of its lines: they go through ours alone.
            "django": {"handlers": [], "level": "INFO", "propagate": True},
        },
    }
