"""What a hostile Segment batch context costs, against a plain batch of as many messages, in one run.

Usage: .venv/bin/python bench/segment_context.py [--messages 2500] [--keys 8000] [--repeat 5]

Each batch goes through the whole /v1/batch path in-process (Django's test client,
authentication, parsing, mapping, validation, storing in a temporary SQLite database),
each time with new message ids so every message is stored:
- plain: --messages tiny `track` messages, no batch context (the baseline);
- hostile: the same messages under a batch `context` of --keys small keys (the
  report's 415 KB body that once ran 3 s a message): refused as a whole, 400;
- under the limit: a batch context just under 8 KiB made of as many small keys as fit:
  every message stores it whole (what 8 KiB of context costs to store, nothing fitted);
- over the limit: the same, and each message's own context (one key) pushing the merged
  one over 8 KiB, so every message's context is fitted (keys dropped) before it is
  stored: the worst batch accepted.
Prints, for each, the best and median time of --repeat requests, the status, and the
log lines the request wrote with their longest length (at most one line a request).
"""

import argparse
import base64
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class Lines(logging.Handler):
    """Collects the lengths of the app's log lines of one request."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lengths: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING or record.name.startswith("events_app.segment"):
            self.lengths.append(len(record.getMessage()))


def messages(count: int, *, context: dict | None = None) -> list[dict]:
    """Return `count` tiny track messages with new ids (each with its own `context`, if given)."""
    batch = []
    for index in range(count):
        message = {"type": "track", "event": "Level Up", "userId": f"p{index % 50}", "messageId": str(uuid.uuid4())}
        if context is not None:
            message["context"] = context
        batch.append(message)
    return batch


def context_of(keys: int, *, start: int = 0) -> dict:
    return {f"k{index}": index for index in range(start, start + keys)}


def keys_within(limit: int) -> int:
    """Return how many small keys fit in a context of at most `limit` bytes as JSON."""
    keys = 1
    while len(orjson.dumps(context_of(keys + 1))) <= limit:
        keys += 1
    return keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2_500)
    parser.add_argument("--keys", type=int, default=8_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="segment-context-")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="tracking_project.settings",
        DJANGO_DEBUG="1",
        DATABASE_URL=f"sqlite:///{folder}/bench.sqlite3",
        EVENTS_LOG_LEVEL="WARNING",
        DJANGO_ALLOWED_HOSTS="testserver",
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from events_app.api.keys import issue_api_key
    from events_app.models import Game, UnknownEventPolicy
    from events_app.segment.mapping import MAX_BATCH_BYTES, MAX_CONTEXT_BYTES

    call_command("migrate", verbosity=0)
    _, key = issue_api_key(game_slug="bench-game")
    Game.objects.filter(slug="bench-game").update(unknown_events=UnknownEventPolicy.ACCEPT)  # level_up, unchecked
    client = Client(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{key}:".encode()).decode())
    lines = Lines()
    logging.getLogger().addHandler(lines)

    # Under: room left for the ids each message adds to its context (context.segment). Over: the
    # batch context just under the limit; the ids and each message's one key of its own push it over.
    under_keys = keys_within(MAX_CONTEXT_BYTES - 256)
    envelope_keys = keys_within(MAX_CONTEXT_BYTES - 16)
    own = {"pad": "x" * 24}
    cases = {
        "plain": lambda: {"batch": messages(args.messages)},
        "hostile": lambda: {"batch": messages(args.messages), "context": context_of(args.keys)},
        "under the limit": lambda: {"batch": messages(args.messages), "context": context_of(under_keys)},
        "over the limit": lambda: {"batch": messages(args.messages, context=own), "context": context_of(envelope_keys)},
    }
    print(
        f"{args.messages} messages a batch; hostile: a batch context of {args.keys} keys; under the limit: "
        f"{under_keys} keys in the batch context; over: {envelope_keys}, and one more in each message's; "
        f"best / median of {args.repeat}"
    )
    baseline = None
    for name, build in cases.items():
        times, statuses = [], set()
        longest, per_request = 0, 0
        for _ in range(args.repeat):
            body = orjson.dumps(build())
            assert len(body) <= MAX_BATCH_BYTES, f"{name}: {len(body)} bytes, over the batch limit"
            lines.lengths.clear()
            started = time.perf_counter()
            response = client.post("/v1/batch", body, content_type="application/json")
            times.append(time.perf_counter() - started)
            statuses.add(response.status_code)
            longest = max([longest, *lines.lengths])
            per_request = max(per_request, len(lines.lengths))
        best, median = min(times), statistics.median(times)
        baseline = baseline or best
        print(
            f"{name:>15}: {len(body) / 1024:6.0f} KiB  best {best * 1000:7.1f} ms  median {median * 1000:7.1f} ms  "
            f"x{best / baseline:4.2f} of plain  status {sorted(statuses)}  "
            f"log lines a request {per_request} (longest {longest} chars)"
        )


if __name__ == "__main__":
    main()
