"""The SDK against the real app under gunicorn: delivery, outages, throttling, rejections, crashes, exit, the simulator.

One server (SQLite file, no AWS) serves the module; each test checks the audit log
for its own event ids. Faults come from a local proxy in front of the server that
can hold, drop or answer requests itself.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from sdk import EventRejectedError, RetryPolicy, Tracker, TrackerRejectedError
from sdk.simulate import main as simulate
from tests.sdk_helpers import (
    FakeTracker,
    LiveTracker,
    RecordedRequest,
    answers,
    child_python,
    forward_then_hang_up,
    forward_to,
    poll_until,
    read_line,
    spool_count,
    unused_port,
)

pytestmark = pytest.mark.e2e

QUICK_RETRIES = RetryPolicy(base=0.05, cap=0.5, budget=120)


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[LiveTracker]:
    server = LiveTracker.create(tmp_path_factory.mktemp("live"))
    server.url = server.serve()
    yield server
    server.stop_all()


@pytest.fixture(scope="module")
def proxy_server() -> Iterator[FakeTracker]:
    proxy = FakeTracker().start()
    yield proxy
    proxy.stop()


@pytest.fixture
def proxy(proxy_server: FakeTracker, live: LiveTracker) -> FakeTracker:
    """A proxy to the live server that records requests; tests script faults with its `respond`."""
    proxy_server.reset()
    proxy_server.respond = forward_to(live.url)
    return proxy_server


class Errors:
    def __init__(self) -> None:
        self.calls: list[tuple[Exception, list[dict]]] = []

    def __call__(self, error: Exception, events: list[dict]) -> None:
        self.calls.append((error, events))


def test_events_arrive_with_the_right_fields(live):
    with Tracker(base_url=live.url, api_key=live.key, flush_interval=3600) as tracker:
        install_id = tracker.track_install(
            "player-42", store="google_play", country="de", platform="android", app_version="1.2.3"
        )
        purchase_id = tracker.track_purchase(
            "player-42", transaction_id=f"GPA.{install_id}", product_id="coins_500", price=Decimal("1200"),
            currency="JPY", quantity=3, platform="android", context={"level": 7},
        )  # fmt: skip
        assert tracker.flush(timeout=60)

    install, purchase = (live.payloads([install_id, purchase_id])[i] for i in (install_id, purchase_id))
    assert install["event_type"] == "install"
    assert install["player_id"] == "player-42"
    assert (install["platform"], install["app_version"]) == ("android", "1.2.3")
    assert install["properties"] == {"store": "google_play", "country": "DE"}
    assert install["game"] == "sdk-game"
    assert install["sent_at"] is not None  # so the server corrected the clock skew
    assert purchase["event_type"] == "purchase"
    assert (purchase["price"], purchase["quantity"], purchase["currency"]) == ("1200", 3, "JPY")
    assert purchase["revenue"] == "3600"
    assert purchase["context"] == {"level": 7}


def test_server_down_then_up_delivers_everything_once(live):
    port = unused_port()
    tracker = Tracker(base_url=f"http://127.0.0.1:{port}", api_key=live.key, flush_interval=0.05, retry=QUICK_RETRIES)
    ids = [tracker.track_install(f"player-{n}") for n in range(300)]
    poll_until(lambda: tracker.stats().retried > 0, timeout=30, what="the SDK retrying against a server that is down")

    live.serve(port)  # the server comes up
    assert tracker.flush(timeout=120)
    tracker.close()

    assert set(live.copies(ids).values()) == {1}
    stats = tracker.stats()
    assert (stats.sent, stats.failed, stats.dropped) == (300, 0, 0)


def test_an_answer_lost_after_the_server_stored_the_batch_is_retried_without_duplicates(live, proxy):
    proxy.respond = answers(forward_then_hang_up(live.url), then=forward_to(live.url))
    tracker = Tracker(base_url=proxy.url, api_key=live.key, flush_interval=3600, retry=QUICK_RETRIES)
    ids = [tracker.track_install(f"player-{n}") for n in range(50)]

    assert tracker.flush(timeout=60)
    tracker.close()

    assert [request.event_ids for request in proxy.requests] == [ids, ids]  # the same events, resent
    assert set(live.copies(ids).values()) == {1}
    stats = tracker.stats()
    assert (stats.sent, stats.duplicates, stats.retried) == (50, 50, 50)


def test_429_with_retry_after_is_honoured(live, proxy):
    arrivals: list[float] = []

    def throttle_once(request: RecordedRequest):
        arrivals.append(time.monotonic())
        if len(arrivals) == 1:
            return 429, {"detail": "Request was throttled."}, {"Retry-After": "1"}
        return forward_to(live.url)(request)

    proxy.respond = throttle_once
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    with Tracker(
        base_url=proxy.url, api_key=live.key, sync=True, sleep=sleep, retry=RetryPolicy(random=lambda: 0.0)
    ) as tracker:
        event_id = tracker.track_install("player-1")

    assert waits == [1.0]
    assert arrivals[1] - arrivals[0] >= 1.0
    assert live.copies([event_id]) == {event_id: 1}
    assert tracker.stats().retried == 1


def test_an_event_the_server_rejects_is_not_retried_and_goes_to_on_error_with_its_reasons(live, proxy):
    errors = Errors()
    # validate=False: what an SDK older than a server rule would send.
    with Tracker(base_url=proxy.url, api_key=live.key, flush_interval=3600, on_error=errors, validate=False) as tracker:
        kept = tracker.track_install("player-1")
        refused = tracker.track_purchase(
            "player-1", transaction_id=f"GPA.{kept}", product_id="gems", price="4.999", currency="EUR"
        )
        assert tracker.flush(timeout=60)
        assert tracker.flush(timeout=60)

    assert len(proxy.requests) == 1
    ((error, events),) = errors.calls
    assert isinstance(error, EventRejectedError)
    assert error.event_id == refused
    assert "price" in error.errors["properties"]
    assert [event["event_id"] for event in events] == [refused]
    assert live.copies([kept, refused]) == {kept: 1, refused: 0}
    assert tracker.stats().rejected == 1


def test_a_refused_key_is_not_retried_and_goes_to_on_error(live, proxy):
    errors = Errors()
    with Tracker(base_url=proxy.url, api_key="pet_wrong", sync=True, on_error=errors) as tracker:
        event_id = tracker.track_install("player-1")

    assert len(proxy.requests) == 1
    ((error, events),) = errors.calls
    assert isinstance(error, TrackerRejectedError)
    assert error.status_code == 401
    assert [event["event_id"] for event in events] == [event_id]
    assert (tracker.stats().failed, tracker.stats().retried) == (1, 0)


def test_a_full_queue_drops_and_counts_while_the_caller_never_waits(live, proxy):
    opened = threading.Event()

    def held(request: RecordedRequest):
        opened.wait(60)
        return forward_to(live.url)(request)

    proxy.respond = held
    tracker = Tracker(base_url=proxy.url, api_key=live.key, batch_size=10, max_queue_size=20, flush_interval=3600)
    try:
        first = [tracker.track_install(f"player-{n}") for n in range(10)]
        proxy.wait_for_requests(1)  # the sender is held in that request
        later: list[str | None] = []
        caller = threading.Thread(target=lambda: later.extend(tracker.track_install(f"p-{n}") for n in range(1000)))
        caller.start()
        caller.join(timeout=30)
        assert not caller.is_alive(), "track_* waited for the network"
    finally:
        opened.set()
    assert tracker.flush(timeout=60)
    tracker.close()

    kept = [event_id for event_id in later if event_id]
    assert len(kept) == 20
    assert tracker.stats().dropped == 980
    assert set(live.copies(first + kept).values()) == {1}


CRASHING_GAME = """
import json, sys, threading
from sdk import Tracker
tracker = Tracker(api_key="any", base_url=sys.argv[1], persist=sys.argv[2], flush_interval=3600, batch_size=500)
ids = [tracker.track_install(f"player-{n}") for n in range(40)]
ids += [tracker.track_purchase(f"player-{n}", transaction_id=f"GPA.{ids[n]}", product_id="gems", price="0.99",
                               currency="USD") for n in range(40)]
print(json.dumps(ids), flush=True)
threading.Event().wait()  # playing on, until killed
"""


def test_a_killed_game_sends_its_spooled_events_on_the_next_start(live, tmp_path):
    spool = tmp_path / "game" / "events.sqlite3"
    offline = f"http://127.0.0.1:{unused_port()}"
    with child_python(CRASHING_GAME, offline, str(spool)) as game:
        ids = json.loads(read_line(game))
        poll_until(lambda: spool_count(spool) == 80, timeout=30, what="80 events in the spool")
        game.send_signal(signal.SIGKILL)
        game.wait(timeout=30)

    with Tracker(base_url=live.url, api_key=live.key, persist=spool) as restarted:
        assert restarted.stats().restored == 80
        assert restarted.flush(timeout=60)

    assert live.copies(ids) == dict.fromkeys(ids, 1)
    assert spool_count(spool) == 0


EXITING_GAME = """
import json, sys
from sdk import Tracker
tracker = Tracker(api_key=sys.argv[2], base_url=sys.argv[1], flush_interval=3600)
print(json.dumps([tracker.track_install(f"player-{n}") for n in range(30)]), flush=True)
# no flush(), no close(): the interpreter's exit must send them
"""


def test_interpreter_exit_sends_what_waits(live):
    with child_python(EXITING_GAME, live.url, live.key) as game:
        ids = json.loads(read_line(game))
        assert game.wait(timeout=60) == 0

    assert live.copies(ids) == dict.fromkeys(ids, 1)


def test_the_simulator_reports_what_the_tracker_stored(live, capsys, tmp_path: Path):
    before = live.row_count()

    code = simulate(
        ["--url", live.url, "--api-key", live.key, "--players", "30", "--duration", "1.5", "--rate", "200",
         "--seed", "7", "--duplicate-share", "0.05", "--offline-share", "0.02", "--no-progress"]
    )  # fmt: skip

    out = capsys.readouterr().out
    assert code == 0, out
    accepted = int(re.search(r"accepted ([\d,]+)", out).group(1).replace(",", ""))
    duplicates, expected = re.search(r"duplicates ([\d,]+) \(expected ([\d,]+)\)", out).groups()
    assert duplicates == expected != "0"
    assert "rejected 0, failed 0, dropped 0" in out
    assert "events/s" in out
    assert live.row_count() - before == accepted
