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
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from devtools.processes import child_python, free_port, read_line, wait_for
from sdk import (
    EventRejectedError,
    EventSetAsideError,
    InvalidEventError,
    RetryPolicy,
    Tracker,
    TrackerAuthError,
    validate_event,
)
from sdk.simulate import main as simulate
from tests.sdk.helpers import (
    FakeClock,
    FakeTracker,
    LiveTracker,
    RecordedRequest,
    answers,
    fail_batches_holding,
    forward_then_hang_up,
    forward_to,
    spool_count,
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
            "player-42",
            transaction_id=f"GPA.{install_id}",
            product_id="coins_500",
            price=Decimal("1200"),
            currency="JPY",
            quantity=3,
            platform="android",
            context={"level": 7},
        )
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


def test_the_helpers_of_the_other_builtin_types_are_stored_with_their_fields(live):
    session = f"sess-{uuid.uuid4()}"
    with Tracker(base_url=live.url, api_key=live.key, flush_interval=3600) as tracker:
        ids = {
            "session_start": tracker.track_session_start("player-7", session_id=session, platform="ios"),
            "progression": tracker.track_progression(
                "player-7", status="complete", level="world1:level3", score=1200, attempt=2, session_id=session
            ),
            "resource": tracker.track_resource(
                "player-7",
                flow="sink",
                resource="gems",
                amount=Decimal("25"),
                item_type="booster",
                item_id="hammer",
                session_id=session,
            ),
            "ad_impression": tracker.track_ad_impression(
                "player-7",
                ad_network="admob",
                ad_format="rewarded",
                ad_unit="level_end",
                revenue=Decimal("0.0125"),
                currency="usd",
                session_id=session,
            ),
            "session_end": tracker.track_session_end("player-7", session_id=session, duration_ms=61_000),
        }
        assert tracker.flush(timeout=60)
    assert (tracker.stats().accepted, tracker.stats().failed) == (5, 0)

    stored = live.payloads(ids.values())
    lines = {event_type: stored[event_id] for event_type, event_id in ids.items()}
    assert {line["event_type"] for line in lines.values()} == set(ids)
    assert {line["session_id"] for line in lines.values()} == {session}
    assert {line["player_id"] for line in lines.values()} == {"player-7"}
    assert lines["session_start"]["platform"] == "ios"
    assert lines["session_end"]["properties"] == {"duration_ms": 61_000}
    assert lines["progression"]["properties"] == {
        "status": "complete",
        "level": "world1:level3",
        "score": 1200,
        "attempt": 2,
    }
    assert lines["resource"]["properties"] == {
        "flow": "sink",
        "resource": "gems",
        "amount": "25",
        "item_type": "booster",
        "item_id": "hammer",
    }
    ad = lines["ad_impression"]
    assert ad["properties"] == {
        "ad_network": "admob",
        "ad_format": "rewarded",
        "ad_unit": "level_end",
        "revenue": "0.0125",
        "currency": "USD",
    }
    assert (ad["revenue"], ad["currency"]) == ("0.0125", "USD")  # sub-cent ad revenue is kept


def test_the_server_names_the_same_bad_fields_as_the_sdk_for_each_new_type(live, proxy):
    errors = Errors()
    bad = {
        "session_start": ({"event_type": "session_start"}, {"session_id"}),
        "session_end": (
            {"event_type": "session_end", "session_id": "s", "properties": {"duration_ms": -1}},
            {"properties.duration_ms"},
        ),
        "progression": (
            {"event_type": "progression", "properties": {"status": "won", "level": ""}},
            {"properties.status", "properties.level"},
        ),
        "resource": (
            {"event_type": "resource", "properties": {"flow": "source", "resource": "gems", "amount": "0"}},
            {"properties.amount"},
        ),
        "ad_impression": (
            {
                "event_type": "ad_impression",
                "properties": {"ad_network": "admob", "ad_format": "banner", "revenue": "0.01"},
            },
            {"properties.currency"},
        ),
        "custom type name": ({"event_type": "Level Up"}, {"event_type"}),
    }
    local: dict[str, set[str]] = {}
    for name, (fields, _) in bad.items():
        event = {"player_id": "player-1", "occurred_at": "2025-01-01T00:00:00Z", **fields}
        with pytest.raises(InvalidEventError) as caught:
            validate_event(event)
        local[name] = set(caught.value.errors)
    # validate=False: what the server says of the same events.
    with Tracker(base_url=proxy.url, api_key=live.key, flush_interval=3600, on_error=errors, validate=False) as tracker:
        ids = {
            name: tracker.track(
                fields["event_type"],
                "player-1",
                session_id=fields.get("session_id"),
                properties=fields.get("properties"),
            )
            for name, (fields, _) in bad.items()
        }
        assert tracker.flush(timeout=60)

    by_id = {error.event_id: error.errors for error, _ in errors.calls}
    server = {name: flat_fields(by_id[event_id]) for name, event_id in ids.items()}
    assert server == local == {name: fields for name, (_, fields) in bad.items()}
    assert set(live.copies(ids.values()).values()) == {0}


def flat_fields(errors: dict, prefix: str = "") -> set[str]:
    """Return the dotted paths of the server's nested errors ({"properties": {"level": [...]}} -> properties.level)."""
    fields = set()
    for key, value in errors.items():
        fields |= flat_fields(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}"}
    return fields


def test_a_custom_type_is_stored_with_its_schema_version_and_a_bad_one_is_named_by_path(live, tmp_path):
    schema = {
        "type": "object",
        "properties": {"level": {"type": "integer", "minimum": 1}, "hero": {"type": "string"}},
        "required": ["level"],
    }
    path = tmp_path / "level_up.json"
    path.write_text(json.dumps(schema))
    version = int(live.manage("event_schema", "sdk-game", "level_up", str(path)).stdout.splitlines()[-1])
    errors = Errors()

    with Tracker(base_url=live.url, api_key=live.key, flush_interval=3600, on_error=errors) as tracker:
        good = tracker.track("level_up", "player-1", properties={"level": 4, "hero": "mage"})
        bad = tracker.track("level_up", "player-1", properties={"level": 0})
        unregistered = tracker.track("boss_defeated", "player-1", properties={"boss": "slime"})
        assert tracker.flush(timeout=60)

    line = live.payloads([good])[good]
    assert (line["event_type"], line["properties"]) == ("level_up", {"level": 4, "hero": "mage"})
    assert line["event_schema_version"] == version
    reasons = {error.event_id: error.errors for error, _ in errors.calls}
    assert set(reasons) == {bad, unregistered}
    assert set(reasons[bad]["properties"]) == {"level"}
    assert set(reasons[unregistered]) == {"event_type"}  # the game's default policy: reject
    assert live.copies([good, bad, unregistered]) == {good: 1, bad: 0, unregistered: 0}


def test_server_down_then_up_delivers_everything_once(live):
    port = free_port()
    tracker = Tracker(base_url=f"http://127.0.0.1:{port}", api_key=live.key, flush_interval=0.05, retry=QUICK_RETRIES)
    ids = [tracker.track_install(f"player-{n}") for n in range(300)]
    wait_for(lambda: tracker.stats().retried > 0, timeout=30, what="the SDK retrying against a server that is down")

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


def test_a_poison_event_in_the_spool_is_set_aside_while_every_other_event_is_stored_once(live, proxy, tmp_path):
    # The proxy stands for a tracker bug one event triggers: 500 to any batch holding it, the rest passed on.
    poison_rule = fail_batches_holding("poison")
    forward = forward_to(live.url)

    def respond(request: RecordedRequest):
        status, body, headers = poison_rule(request)
        return (status, body, headers) if status >= 500 else forward(request)

    proxy.respond = respond
    spool = tmp_path / "spool.sqlite3"
    errors = Errors()
    clock = FakeClock()
    tracker = Tracker(
        base_url=proxy.url,
        api_key=live.key,
        persist=spool,
        flush_interval=3600,
        on_error=errors,
        clock=clock,
        sleep=clock.sleep,
        retry=RetryPolicy(random=lambda: 1.0),  # the default policy, longest waits
    )
    poison = tracker.track_install("poison")
    ids = [tracker.track_install(f"player-{n}") for n in range(100)]
    tracker.flush(timeout=60)
    for round_ in range(4):  # the game goes on
        ids += [tracker.track_install(f"player-{round_}-{n}") for n in range(3)]
        tracker.flush(timeout=60)
    tracker.close()

    assert set(live.copies(ids).values()) == {1}
    assert live.copies([poison]) == {poison: 0}
    stats = tracker.stats()
    assert (stats.set_aside, stats.failed, stats.sent, stats.pending) == (1, 1, len(ids), 0)
    assert [type(error) for error, _ in errors.calls] == [EventSetAsideError]
    assert spool_count(spool) == 0
    reopened = Tracker(base_url=proxy.url, api_key=live.key, persist=spool, sync=True)
    assert [event.event_id for event in reopened.set_aside_events()] == [poison]
    reopened.close()


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


def test_a_refused_key_keeps_the_spooled_events_until_a_start_with_a_valid_key_stores_each_once(live, proxy, tmp_path):
    spool = tmp_path / "spool.sqlite3"
    errors = Errors()
    with Tracker(base_url=proxy.url, api_key="pet_revoked", persist=spool, on_error=errors) as refused:
        ids = [refused.track_install(f"player-{n}") for n in range(3)]
        assert refused.flush(timeout=10) is False
    # Closed (it asked once more): nothing dropped, nothing failed, everything still on disk.

    assert spool_count(spool) == 3
    assert errors.calls and all(isinstance(error, TrackerAuthError) for error, _ in errors.calls)
    assert {error.status_code for error, _ in errors.calls} <= {401, 403}
    assert [event["event_id"] for event in errors.calls[0][1]] == ids
    assert (refused.stats().failed, refused.stats().pending) == (0, 3)
    assert live.copies(ids) == dict.fromkeys(ids, 0)

    with Tracker(base_url=proxy.url, api_key=live.key, persist=spool) as tracker:
        assert tracker.flush(timeout=30) is True

    assert live.copies(ids) == dict.fromkeys(ids, 1)
    assert spool_count(spool) == 0


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
    offline = f"http://127.0.0.1:{free_port()}"
    with child_python(CRASHING_GAME, offline, str(spool)) as game:
        ids = json.loads(read_line(game))
        wait_for(lambda: spool_count(spool) == 80, timeout=30, what="80 events in the spool")
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
        [
            "--url",
            live.url,
            "--api-key",
            live.key,
            "--players",
            "30",
            "--duration",
            "1.5",
            "--rate",
            "200",
            "--seed",
            "7",
            "--duplicate-share",
            "0.05",
            "--offline-share",
            "0.02",
            "--no-progress",
        ]
    )

    out = capsys.readouterr().out
    assert code == 0, out
    accepted = int(re.search(r"accepted ([\d,]+)", out).group(1).replace(",", ""))
    duplicates, expected = re.search(r"duplicates ([\d,]+) \(expected ([\d,]+)\)", out).groups()
    assert duplicates == expected != "0"
    assert "rejected 0, failed 0, dropped 0" in out
    assert "events/s" in out
    assert live.row_count() - before == accepted
    lines = [line for line in live.all_payloads() if line["player_id"].startswith("sim-")]
    assert {line["event_type"] for line in lines} == {
        "install",
        "session_start",
        "progression",
        "resource",
        "ad_impression",
        "purchase",
        "session_end",
    }
    starts = {line["session_id"]: line for line in lines if line["event_type"] == "session_start"}
    ends = {line["session_id"]: line for line in lines if line["event_type"] == "session_end"}
    assert set(starts) == set(ends)  # every session ends, under its own id
    for session_id, end in ends.items():
        lasted = datetime.fromisoformat(end["occurred_at"]) - datetime.fromisoformat(starts[session_id]["occurred_at"])
        assert abs(end["properties"]["duration_ms"] - lasted // timedelta(milliseconds=1)) <= 1  # ms rounding
    in_session = [line for line in lines if line["event_type"] not in ("install", "session_start", "session_end")]
    assert {line["session_id"] for line in in_session} <= set(starts)
