"""CPU time of parsing a request body: the parser before the size and duplicate-key fixes beside today's, one run.

Usage: .venv/bin/python bench/parse.py [--repeat 7]

Each body goes through the whole parser (Content-Length check, streamed read, JSON
parse, duplicate-key check) of each version, as the endpoint named would; the figure
is the best CPU time of --repeat runs, in milliseconds. "before" is the parser of
commit 25caed1, reproduced below: one 1 MiB limit for both endpoints, and a colon
count that could be fooled into a full second parse by the stdlib's json (whose
hook runs once per object). The bodies:
- a typical single event (~300 bytes) and a typical 1 MiB batch (~2 KB events),
- 1 MiB bodies sent to POST /v1/events (one event may be 32 KiB),
- 1 MiB batches that forced the second parse: a repeated key in the last of 100,000
  small objects, and strings holding the text `\\u003a` (an escaped backslash).
"""

import argparse
import io
import json
import os
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracking_project.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")

import django  # noqa: E402

django.setup()

import orjson  # noqa: E402
from rest_framework.exceptions import APIException  # noqa: E402

from events_app import conf  # noqa: E402
from events_app.api.parsers import EventJSONParser  # noqa: E402
from events_app.api.views import EventBatchView, EventView  # noqa: E402

# --- The parser before (25caed1), trimmed to what a plain body goes through -----------


class _Refused(Exception):
    pass


def _before_unique_pairs(pairs):
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Refused("duplicate key")
    return result


_before_checker = json.JSONDecoder(object_pairs_hook=_before_unique_pairs)


def before_parse(body: bytes) -> object:
    """Parse as 25caed1 did: 1 MiB for every endpoint, then orjson, then maybe the stdlib."""
    if len(body) > conf.MAX_BODY_BYTES:
        raise _Refused("413")
    stream = io.BytesIO(body)
    chunks, total = [], 0
    while chunk := stream.read(64 * 1024):
        total += len(chunk)
        if total > conf.MAX_BODY_BYTES:
            raise _Refused("413")
        chunks.append(chunk)
    body = b"".join(chunks)
    data = orjson.loads(body)
    kept = orjson.dumps(data).count(b":")
    written = body.count(b":") + body.count(b"\\u003a") + body.count(b"\\u003A")
    if written != kept:
        _before_checker.decode(body.decode())
    return data


# --- Today's parser -------------------------------------------------------------------


class _Request:
    def __init__(self, body: bytes):
        self.META = {"CONTENT_LENGTH": str(len(body))}


def after_parse(body: bytes, view) -> object:
    """Parse through EventJSONParser as the view's request would be."""
    context = {"view": view, "request": _Request(body)}
    return EventJSONParser().parse(io.BytesIO(body), "application/json", context)


# --- Bodies ---------------------------------------------------------------------------


def _event(pad: int = 0) -> dict:
    return {
        "event_id": "0b7c7a4e-6f7e-4c43-9a1e-5f0a2c3b1d9e",
        "event_type": "purchase",
        "player_id": "player-123456",
        "occurred_at": "2026-01-01T12:00:00.000Z",
        "platform": "android",
        "app_version": "1.4.2",
        "properties": {"transaction_id": "GPA.1234-5678", "product_id": "gems_500", "price": "4.99", "currency": "EUR"},
        "context": {"device": {"model": "Pixel 8", "os": "Android 15"}, "pad": "x" * pad},
    }


def _fill(prefix: bytes, item: bytes, suffix: bytes, size: int) -> bytes:
    count = (size - len(prefix) - len(suffix)) // (len(item) + 1)
    return prefix + b",".join([item] * count) + suffix


def bodies() -> list[tuple[str, str, bytes, object]]:
    mib = conf.MAX_BODY_BYTES
    typical_batch = _fill(b'{"events":[', orjson.dumps(_event(pad=1700)), b"]}", mib)
    late_repeat = _fill(b'{"events":[', b'{"k":1}', b',{"k":1,"k":2}]}', mib)
    escaped = _fill(b'{"events":[', orjson.dumps(_event(pad=0) | {"note": "\\u003a"}), b"]}", mib)
    one_big_event = orjson.dumps(_event(pad=mib - 600))
    return [
        ("typical single event", "/v1/events", orjson.dumps(_event()), EventView),
        ("typical batch, 1 MiB", "/v1/events/batch", typical_batch, EventBatchView),
        ("1 MiB body, one event", "/v1/events", one_big_event, EventView),
        ("1 MiB body, key repeated at the end", "/v1/events", late_repeat, EventView),
        ("1 MiB batch, key repeated at the end", "/v1/events/batch", late_repeat, EventBatchView),
        ("1 MiB batch, text \\\\u003a in strings", "/v1/events/batch", escaped, EventBatchView),
    ]


def cpu_ms(function, repeat: int) -> tuple[float, str]:
    best, outcome = float("inf"), ""
    for _ in range(repeat):
        started = time.process_time()
        try:
            function()
            outcome = "parsed"
        except (_Refused, APIException, ValueError, zlib.error) as exc:
            outcome = f"refused ({getattr(exc, 'status_code', None) or exc})"
        best = min(best, time.process_time() - started)
    return best * 1000, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print("| body | endpoint | size | before: CPU ms | after: CPU ms | before -> after |")
    print("|---|---|---|---|---|---|")
    for name, path, body, view in bodies():
        before, before_outcome = cpu_ms(lambda body=body: before_parse(body), args.repeat)
        after, after_outcome = cpu_ms(lambda body=body, view=view: after_parse(body, view), args.repeat)
        print(
            f"| {name} | `{path}` | {len(body):,} B | {before:.2f} | {after:.2f} | "
            f"{before_outcome} -> {after_outcome} |"
        )


if __name__ == "__main__":
    main()
