"""Synchronous client for the player event tracker's HTTP API (v1)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import sys
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from gzip import compress as gzip_compress
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import requests

from . import __version__
from .contract import MAX_BATCH_EVENTS, MAX_BODY_BYTES
from .events import BuiltEvent, EventHelpers
from .validation import InvalidEventError, encode_json, format_price, format_timestamp

__all__ = [
    "BatchResult",
    "EventRejectedError",
    "EventSetAsideError",
    "InsecureEndpointWarning",
    "SendResult",
    "TrackerAuthError",
    "TrackerBadResponseError",
    "TrackerClient",
    "TrackerConnectionError",
    "TrackerError",
    "TrackerHTTPError",
    "TrackerRejectedError",
    "TrackerUnavailableError",
    "format_price",
    "format_timestamp",
    "main",
]

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = (3.05, 10)
DEV_API_KEY_FILE = Path(".local") / "dev_api_key"

EVENTS_PATH = "/v1/events"
BATCH_PATH = "/v1/events/batch"
# The server answers 413 to a body over 1 MiB once decompressed; keep room for
# the envelope around the events.
MAX_BATCH_BYTES = MAX_BODY_BYTES - 1024

USER_AGENT = f"playertrack/{__version__} python/{sys.version_info.major}.{sys.version_info.minor}"
# `python -m playertrack.client` once installed; `python -m sdk.client` inside the tracker's repository.
COMMAND = f"python -m {__package__}.client"

log = logging.getLogger("playertrack.client")
_SDK_FOLDER = os.path.dirname(os.path.abspath(__file__))


class InsecureEndpointWarning(UserWarning):
    """The tracker's URL is plain http:// to another machine: the API key and the events travel unencrypted."""


def is_plain_http_to_remote(base_url: str) -> bool:
    """Return True if `base_url` is http:// to a host other than loopback (127.0.0.0/8, ::1, localhost)."""
    parts = urlsplit(base_url)
    if parts.scheme.lower() != "http":
        return False
    host = (parts.hostname or "").rstrip(".").lower()
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: only "localhost" is known to stay on this machine
        return True


def _warn_if_plain_http(base_url: str) -> None:
    """Warn, once per client, that the API key would cross the network in clear text."""
    if not is_plain_http_to_remote(base_url):
        return
    message = (
        f"the tracker URL {base_url} is plain http:// to another machine: the API key and the "
        "players' events cross the network unencrypted; use https://"
    )
    log.warning("tracker: %s", message)
    warnings.warn(message, InsecureEndpointWarning, stacklevel=_caller_stacklevel())


def _caller_stacklevel() -> int:
    """Return the stacklevel of the first frame outside the SDK, so the warning names the game's line."""
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == _SDK_FOLDER:
        frame, level = frame.f_back, level + 1
    return level


class TrackerError(Exception):
    """The tracker could not take the events; `retryable` says whether to try again."""

    retryable: bool = False

    def __init__(self, message: str, *, status_code: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class TrackerConnectionError(TrackerError):
    """The tracker could not be reached, or did not answer in time."""

    # A read timeout may come after the server stored the events; sending them
    # again is still safe because their event_id makes the copy a duplicate.
    retryable = True


class TrackerHTTPError(TrackerError):
    """The tracker answered with a status other than 2xx."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, body=body)
        self.retry_after = retry_after


class TrackerRejectedError(TrackerHTTPError):
    """The tracker refused the request (4xx other than 429); sending it again will not help.

    Except TrackerAuthError (401, 403): the key, not the events, was refused.
    """

    retryable = False


class TrackerAuthError(TrackerRejectedError):
    """The tracker refused the API key: 401 (unknown, revoked or expired) or 403 (not allowed).

    Unlike the other rejections, the events are not at fault: a Tracker keeps them (in
    memory or in its spool), tries again slowly, and reports each refusal to on_error,
    so events survive a key rotated on the server until the game has a valid key.
    """

    retryable = True


class TrackerUnavailableError(TrackerHTTPError):
    """The tracker is throttling or failing (429 or 5xx); try again later."""

    retryable = True


class TrackerBadResponseError(TrackerError):
    """A 2xx answer that is not the tracker's JSON; try again later.

    Captive portals and misconfigured proxies answer 200 with an HTML page: the
    events most likely never reached the tracker, and their event_id makes a
    resend harmless if they did.
    """

    retryable = True


class EventRejectedError(TrackerError):
    """The tracker refused one event of a batch; `errors` holds its reasons, keyed by field."""

    retryable = False

    def __init__(self, message: str, *, errors: Any, event_id: str | None = None) -> None:
        super().__init__(message, status_code=200, body=errors)
        self.errors = errors
        self.event_id = event_id


class EventSetAsideError(TrackerError):
    """The tracker kept failing (5xx) on this one event while it took the others: set aside, never sent again.

    `last_error` is the tracker's last answer to it; `attempts`, how many times it was
    sent on its own. With persistence on, the event stays in the spool's set-aside
    table (`Tracker.set_aside_events()`).
    """

    retryable = False

    def __init__(self, message: str, *, event_id: str, attempts: int, last_error: TrackerError) -> None:
        super().__init__(message, status_code=last_error.status_code, body=last_error.body)
        self.event_id = event_id
        self.attempts = attempts
        self.last_error = last_error


@dataclass(frozen=True)
class SendResult:
    """The tracker's answer to one event sent with `TrackerClient.send`."""

    status_code: int
    body: dict[str, Any]

    @property
    def event_id(self) -> str | None:
        return self.body.get("event_id")

    @property
    def status(self) -> str | None:
        """Return "accepted", "duplicate" (both mean the tracker has the event) or "suppressed" (an erased player)."""
        return self.body.get("status")


@dataclass(frozen=True)
class BatchResult:
    """The tracker's answers to the events sent with `TrackerClient.send_batch`.

    `results` holds one entry per event as the server gave it, except that its
    "index" is the event's position in the list passed to `send_batch`, even
    when that list went out in several requests. `bodies` holds the server's
    answers as received, one per request.
    """

    accepted: int
    duplicates: int
    rejected: int
    results: list[dict[str, Any]]
    bodies: list[dict[str, Any]]
    suppressed: int = 0  # events of erased players: acknowledged, neither stored nor forwarded


class TrackerClient(EventHelpers[dict[str, Any]]):
    """Send player events to the tracker over one reused HTTP session.

    `track` and the `track_*` helpers (also `install` and `purchase`) return a new
    event, ready for `send` or `send_batch`; nothing is sent until then. Its event_id
    is fixed there, so sending the same event again (a retry) is recognised by the
    tracker as a duplicate.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        gzip: bool = True,
    ) -> None:
        api_key = api_key or os.environ.get("TRACKER_API_KEY")
        if not api_key:
            raise ValueError("an API key is required: pass api_key or set TRACKER_API_KEY")
        base_url = base_url or os.environ.get("TRACKER_URL") or DEFAULT_BASE_URL
        self.base_url = base_url.rstrip("/")
        _warn_if_plain_http(self.base_url)
        self.timeout = timeout
        self.gzip = gzip
        self.session = requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {api_key}",
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            }
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session and its pooled connections."""
        self.session.close()

    def _take(self, built: BuiltEvent) -> dict[str, Any]:
        """Return the built event; raise InvalidEventError if it could not be built as asked.

        Only what the builder checks raises here (an event_id that is no UUID, a naive
        or far-future occurred_at, an inexact price): this client sends what it is
        given and leaves the other rules to the tracker (`validate_event` checks them).
        """
        event, errors, _ = built
        if errors:
            raise InvalidEventError(errors)
        return event

    # The names of SDK 0.2.
    install = EventHelpers.track_install
    purchase = EventHelpers.track_purchase

    def send(self, event: Mapping[str, Any]) -> SendResult:
        """Send one event; raise a TrackerError unless the tracker acknowledged it."""
        payload = {**event, "sent_at": format_timestamp(_utc_now())}
        response = self._post(EVENTS_PATH, payload)
        return SendResult(status_code=response.status_code, body=_json_object(response))

    def send_batch(self, events: Iterable[Mapping[str, Any]]) -> BatchResult:
        """Send events in as few requests as the tracker's limits allow.

        Raise a TrackerError at the first request the tracker did not
        acknowledge; the requests before it were stored, and sending the whole
        list again is safe because each event keeps its event_id.
        """
        results: list[dict[str, Any]] = []
        bodies: list[dict[str, Any]] = []
        for start, chunk in _chunks(list(events), MAX_BATCH_EVENTS, MAX_BATCH_BYTES):
            payload = {"sent_at": format_timestamp(_utc_now()), "events": chunk}
            body = _json_object(self._post(BATCH_PATH, payload))
            bodies.append(body)
            for position, item in enumerate(body.get("results", [])):
                results.append({**item, "index": start + item.get("index", position)})
        return BatchResult(
            accepted=sum(body.get("accepted", 0) for body in bodies),
            duplicates=sum(body.get("duplicates", 0) for body in bodies),
            rejected=sum(body.get("rejected", 0) for body in bodies),
            results=results,
            bodies=bodies,
            suppressed=sum(body.get("suppressed", 0) for body in bodies),
        )

    def _post(self, path: str, payload: Mapping[str, Any]) -> requests.Response:
        """POST a JSON payload and return the 2xx response, or raise a TrackerError."""
        return self._post_bytes(path, encode_json(payload))

    def _post_bytes(
        self, path: str, data: bytes, *, timeout: float | tuple[float, float] | None = None
    ) -> requests.Response:
        """POST a JSON body and return the 2xx response, or raise a TrackerError.

        The single place that talks to the network; `Tracker` wraps its retries
        around it.
        """
        url = self.base_url + path
        headers = {}
        if self.gzip:
            data = gzip_compress(data, compresslevel=6, mtime=0)
            headers["Content-Encoding"] = "gzip"
        try:
            # A redirect would turn this POST into a GET and lose the body;
            # report it as an error instead of following it.
            response = self.session.post(
                url,
                data=data,
                headers=headers,
                timeout=timeout or self.timeout,
                allow_redirects=False,
            )
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as err:
            raise TrackerConnectionError(f"cannot reach the tracker at {url}: {_reason(err)}") from err
        except requests.RequestException as err:
            raise TrackerError(f"cannot send to {url}: {err}") from err
        if not 200 <= response.status_code < 300:
            raise _http_error(response)
        return response


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _chunks(
    events: list[Mapping[str, Any]], max_count: int, max_bytes: int
) -> Iterator[tuple[int, list[Mapping[str, Any]]]]:
    """Yield (index of the first event, events) groups within both limits."""
    start, chunk, size = 0, [], 0
    for index, event in enumerate(events):
        event_size = len(encode_json(event)) + 1  # the comma between events
        if chunk and (len(chunk) == max_count or size + event_size > max_bytes):
            yield start, chunk
            start, chunk, size = index, [], 0
        chunk.append(event)
        size += event_size
    if chunk:
        yield start, chunk


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise TrackerError(
            f"the tracker answered {response.status_code} without a JSON object",
            status_code=response.status_code,
            body=response.text,
        )
    return body


def _http_error(response: requests.Response) -> TrackerHTTPError:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    status = response.status_code
    detail = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    detail = detail.strip()[:500] or "(empty body)"
    message = f"the tracker answered {status} to {response.request.method} {response.url}: {detail}"
    if status in (401, 403):
        error_class: type[TrackerHTTPError] = TrackerAuthError
    elif status == 429 or status >= 500:
        error_class = TrackerUnavailableError
    else:
        error_class = TrackerRejectedError
    return error_class(
        message,
        status_code=status,
        body=body,
        retry_after=_retry_after(response.headers.get("Retry-After")),
    )


def _retry_after(value: str | None) -> float | None:
    """Return the seconds a Retry-After header asks to wait (delay or HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - _utc_now()).total_seconds())


def _reason(err: BaseException) -> str:
    """Return the innermost OS-level reason, e.g. "Connection refused"."""
    seen = set()
    current: BaseException | None = err
    reason = "timed out" if isinstance(err, requests.Timeout) else type(err).__name__
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            reason = current.strerror
        current = current.__cause__ or current.__context__ or _first_exception_arg(current)
    return reason


def _first_exception_arg(err: BaseException) -> BaseException | None:
    # requests and urllib3 wrap the socket error in args or .reason, not __cause__.
    reason = getattr(err, "reason", None)
    if isinstance(reason, BaseException):
        return reason
    return next((arg for arg in err.args if isinstance(arg, BaseException)), None)


def _find_api_key(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    if os.environ.get("TRACKER_API_KEY"):
        return os.environ["TRACKER_API_KEY"]
    try:
        return DEV_API_KEY_FILE.read_text(encoding="utf-8").strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def main(argv: list[str] | None = None) -> int:
    """Send a sample install and purchase in one batch; return 0 if both were accepted."""
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description=(
            "Send one sample install and one sample purchase (EUR 4.99) to the "
            "player event tracker in one batch and print what it answered."
        ),
        epilog=(
            "The API key comes from --api-key, else TRACKER_API_KEY, else the file "
            f"{DEV_API_KEY_FILE} in the current directory, which `make run` writes "
            "with the development key."
        ),
    )
    parser.add_argument(
        "--url",
        help=f"tracker base URL (default: TRACKER_URL, else {DEFAULT_BASE_URL})",
    )
    parser.add_argument(
        "--api-key",
        help=f"API key (default: TRACKER_API_KEY, else the contents of {DEV_API_KEY_FILE})",
    )
    args = parser.parse_args(argv)

    api_key = _find_api_key(args.api_key)
    if not api_key:
        print(
            f"error: no API key: pass --api-key, set TRACKER_API_KEY, or run `make run` to write {DEV_API_KEY_FILE}",
            file=sys.stderr,
        )
        return 1

    with TrackerClient(base_url=args.url, api_key=api_key) as client:
        context = {"source": COMMAND}
        events = [
            client.install(
                "sdk-sample-player",
                store="sample-store",
                campaign="sdk-sample",
                country="FR",
                platform="other",
                context=context,
            ),
            client.purchase(
                "sdk-sample-player",
                transaction_id=f"sdk-sample-{uuid.uuid4()}",
                product_id="sample.gems_100",
                price=Decimal("4.99"),
                currency="EUR",
                platform="other",
                context=context,
            ),
        ]
        try:
            result = client.send_batch(events)
        except TrackerError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1

    by_index = {item.get("index"): item for item in result.results}
    for index, event in enumerate(events):
        item = by_index.get(index, {})
        line = f"{event['event_type']:<9} {event['event_id']}  {item.get('status', 'no answer')}"
        if item.get("errors"):
            line += "  " + json.dumps(item["errors"], separators=(",", ":"))
        print(line)
    print(f"{result.accepted} accepted, {result.duplicates} duplicates, {result.rejected} rejected")
    all_accepted = all(by_index.get(i, {}).get("status") == "accepted" for i in range(len(events)))
    return 0 if all_accepted else 1


if __name__ == "__main__":
    sys.exit(main())
