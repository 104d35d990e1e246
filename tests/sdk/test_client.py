"""Tests for the Python SDK against a local HTTP server standing in for the tracker."""

from __future__ import annotations

import json
import random
import sys
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from devtools.processes import free_port
from sdk import InvalidEventError, Tracker, __version__, validate_event
from sdk.client import (
    InsecureEndpointWarning,
    TrackerAuthError,
    TrackerClient,
    TrackerConnectionError,
    TrackerRejectedError,
    TrackerUnavailableError,
    main,
)
from sdk.gameplay import Play, PlayerBase, Tally
from tests.sdk.helpers import Answer, FakeTracker, RecordedRequest, answer

API_KEY = "test-key"


@pytest.fixture
def tracker(fake_server: FakeTracker) -> FakeTracker:
    fake_server.reset()
    return fake_server


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TRACKER_API_KEY", raising=False)
    monkeypatch.delenv("TRACKER_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .local/dev_api_key


@pytest.fixture
def client(tracker: FakeTracker) -> Iterator[TrackerClient]:
    with TrackerClient(base_url=tracker.url, api_key=API_KEY) as tracker_client:
        yield tracker_client


def parse_timestamp(value: str) -> datetime:
    assert value.endswith("Z")
    return datetime.fromisoformat(value)


def floor_to_millisecond(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


# Requests on the wire


def test_send_posts_gzipped_json_with_auth_and_sdk_headers(client, tracker):
    event = client.install("player-1", country="FR")

    client.send(event)

    (request,) = tracker.requests
    assert request.method == "POST"
    assert request.path == "/v1/events"
    assert request.headers["Content-Encoding"] == "gzip"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert request.headers["User-Agent"] == f"playertrack/{__version__} python/{python}"
    sent = request.json
    assert sent.pop("sent_at")
    assert sent == event


def test_bodies_are_plain_json_when_gzip_is_off(tracker):
    with TrackerClient(base_url=tracker.url, api_key=API_KEY, gzip=False) as client:
        event = client.track("install", "player-1")
        client.send(event)

    (request,) = tracker.requests
    assert request.headers.get("Content-Encoding") is None
    assert json.loads(request.raw_body)["event_id"] == event["event_id"]


def test_requests_reuse_one_connection(client, tracker):
    client.send(client.track("install", "player-1"))
    client.send_batch([client.track("install", "player-2")])

    first, second = tracker.requests
    assert first.client_port == second.client_port


def test_url_and_key_come_from_the_environment(tracker, monkeypatch):
    monkeypatch.setenv("TRACKER_URL", tracker.url + "/")
    monkeypatch.setenv("TRACKER_API_KEY", "env-key")

    with TrackerClient() as client:
        client.send(client.track("install", "player-1"))

    (request,) = tracker.requests
    assert request.path == "/v1/events"
    assert request.headers["Authorization"] == "Bearer env-key"


def test_client_without_an_api_key_is_refused():
    with pytest.raises(ValueError, match="TRACKER_API_KEY"):
        TrackerClient(base_url="http://127.0.0.1:1")


def test_leaving_the_with_block_closes_the_session(tracker, monkeypatch):
    closed = []
    with TrackerClient(base_url=tracker.url, api_key=API_KEY) as client:
        monkeypatch.setattr(client.session, "close", lambda: closed.append(True))

    assert closed == [True]


# Building events


def test_track_generates_an_event_id_that_a_resend_keeps(client, tracker):
    event = client.track("install", "player-1")

    client.send(event)
    client.send(event)  # what a caller's retry does

    assert uuid.UUID(event["event_id"]).version == 4
    assert [request.json["event_id"] for request in tracker.requests] == [event["event_id"]] * 2


def test_each_event_gets_its_own_event_id(client):
    first = client.track("install", "player-1")
    second = client.track("install", "player-1")

    assert first["event_id"] != second["event_id"]


def test_a_given_event_id_is_kept(client):
    event_id = uuid.uuid4()

    event = client.track("install", "player-1", event_id=event_id)

    assert event["event_id"] == str(event_id)


def test_fields_left_as_none_are_omitted(client):
    event = client.track("install", "player-1", platform="ios", app_version=None)

    assert set(event) == {
        "event_id",
        "event_type",
        "player_id",
        "occurred_at",
        "platform",
    }


def test_occurred_at_defaults_to_now_in_utc_with_z(client):
    before = datetime.now(UTC)
    event = client.track("install", "player-1")
    after = datetime.now(UTC)

    assert floor_to_millisecond(before) <= parse_timestamp(event["occurred_at"]) <= after


def test_occurred_at_with_another_offset_is_sent_in_utc(client):
    paris_summer = timezone(timedelta(hours=2))
    occurred_at = datetime(2025, 7, 1, 14, 30, 5, 123456, tzinfo=paris_summer)

    event = client.track("install", "player-1", occurred_at=occurred_at)

    assert event["occurred_at"] == "2025-07-01T12:30:05.123Z"


def test_naive_occurred_at_is_refused(client):
    with pytest.raises(ValueError, match="time zone"):
        client.track("install", "player-1", occurred_at=datetime(2025, 7, 1, 14, 30))  # noqa: DTZ001 (naive on purpose)


def test_install_puts_its_fields_in_properties(client):
    event = client.install(
        "player-1",
        store="google_play",
        country="DE",
        platform="android",
        properties={"referrer": "friend"},
    )

    assert event["event_type"] == "install"
    assert event["platform"] == "android"
    assert event["properties"] == {
        "referrer": "friend",
        "store": "google_play",
        "country": "DE",
    }


def test_purchase_price_is_sent_as_a_string(client, tracker):
    event = client.purchase(
        "player-1",
        transaction_id="tx-1",
        product_id="gems_100",
        price=Decimal("4.99"),
        currency="EUR",
    )

    client.send(event)

    sent = tracker.requests[0].json["properties"]
    assert sent == {
        "transaction_id": "tx-1",
        "product_id": "gems_100",
        "price": "4.99",
        "currency": "EUR",
        "quantity": 1,
    }


def test_purchase_price_given_as_a_string_is_sent_unchanged(client):
    event = client.purchase(
        "player-1",
        transaction_id="tx-1",
        product_id="gems_100",
        price="19.90",
        currency="USD",
    )

    assert event["properties"]["price"] == "19.90"


def test_purchase_price_in_exponent_notation_is_sent_as_plain_digits(client):
    event = client.purchase(
        "player-1",
        transaction_id="tx-1",
        product_id="gems",
        price=Decimal("1E+2"),
        currency="USD",
    )

    assert event["properties"]["price"] == "100"


def test_purchase_price_given_as_a_float_is_refused(client):
    with pytest.raises(InvalidEventError, match=r"properties\.price: .*float"):
        client.purchase(
            "player-1",
            transaction_id="tx-1",
            product_id="gems",
            price=4.99,
            currency="EUR",
        )


def test_purchase_price_that_is_not_a_number_is_refused(client):
    with pytest.raises(ValueError, match="decimal"):
        client.purchase(
            "player-1",
            transaction_id="tx-1",
            product_id="gems",
            price="4,99",
            currency="EUR",
        )


HELPERS = {
    "track_session_start": (
        {"session_id": "s-1"},
        "session_start",
        {"session_id": "s-1"},
        {},
    ),
    "track_session_end": (
        {"session_id": "s-1", "duration_ms": 61_000},
        "session_end",
        {"session_id": "s-1"},
        {"duration_ms": 61_000},
    ),
    "track_progression": (
        {"status": "complete", "level": "world1:level3", "score": 1200, "attempt": 2},
        "progression",
        {},
        {"status": "complete", "level": "world1:level3", "score": 1200, "attempt": 2},
    ),
    "track_resource": (
        {"flow": "sink", "resource": "gems", "amount": Decimal("25"), "item_type": "booster", "item_id": "hammer"},
        "resource",
        {},
        {"flow": "sink", "resource": "gems", "amount": "25", "item_type": "booster", "item_id": "hammer"},
    ),
    "track_ad_impression": (
        {
            "ad_network": "admob",
            "ad_format": "rewarded",
            "ad_unit": "level_end",
            "revenue": Decimal("0.0125"),
            "currency": "USD",
        },
        "ad_impression",
        {},
        {
            "ad_network": "admob",
            "ad_format": "rewarded",
            "ad_unit": "level_end",
            "revenue": "0.0125",
            "currency": "USD",
        },
    ),
}


@pytest.mark.parametrize(("helper", "case"), HELPERS.items(), ids=HELPERS.keys())
def test_each_typed_helper_builds_its_type_with_its_properties(client, tracker, helper, case):
    arguments, event_type, top_level, properties = case

    event = getattr(client, helper)("player-1", platform="ios", **arguments)
    client.send(event)

    assert event["event_type"] == event_type
    assert event["properties"] == properties
    assert {name: event[name] for name in top_level} == top_level
    assert event["platform"] == "ios"
    sent = tracker.requests[0].json
    assert sent.pop("sent_at")
    assert sent == event


def test_optional_properties_left_out_are_not_sent(client):
    event = client.track_ad_impression("player-1", ad_network="applovin", ad_format="banner")

    assert event["properties"] == {"ad_network": "applovin", "ad_format": "banner"}


def test_helper_properties_are_merged_with_extra_properties(client):
    event = client.track_progression(
        "player-1", status="fail", level="w1:l2", properties={"boss": "slime", "status": "ignored"}
    )

    assert event["properties"] == {"boss": "slime", "status": "fail", "level": "w1:l2"}


@pytest.mark.parametrize(
    ("value", "sent"), [(Decimal("2.50"), "2.50"), (Decimal("1E-5"), "0.00001"), (500, "500"), ("0.25", "0.25")]
)
def test_amount_and_revenue_go_out_as_decimal_strings(client, value, sent):
    resource = client.track_resource("player-1", flow="source", resource="gems", amount=value)
    ad = client.track_ad_impression("player-1", ad_network="admob", ad_format="native", revenue=value, currency="EUR")

    assert resource["properties"]["amount"] == sent
    assert ad["properties"]["revenue"] == sent


@pytest.mark.parametrize(
    ("helper", "arguments", "field"),
    [
        ("track_resource", {"flow": "source", "resource": "gems", "amount": 2.5}, "properties.amount"),
        ("track_ad_impression", {"ad_network": "x", "ad_format": "banner", "revenue": 0.01}, "properties.revenue"),
        ("track_resource", {"flow": "source", "resource": "gems", "amount": "many"}, "properties.amount"),
    ],
)
def test_an_inexact_or_non_numeric_amount_is_refused(client, helper, arguments, field):
    with pytest.raises(InvalidEventError) as caught:
        getattr(client, helper)("player-1", **arguments)

    assert set(caught.value.errors) == {field}


def test_track_takes_a_custom_type_name(client):
    event = client.track("level_up", "player-1", properties={"level": 3})

    assert (event["event_type"], event["properties"]) == ("level_up", {"level": 3})


def test_install_and_purchase_keep_their_names_beside_track_install_and_track_purchase(client):
    install = client.install("player-1", country="FR")
    purchase = client.track_purchase("player-1", transaction_id="tx", product_id="p", price="1", currency="EUR")

    assert (install["event_type"], install["properties"]) == ("install", {"country": "FR"})
    assert purchase["properties"]["price"] == "1"
    assert TrackerClient.install is TrackerClient.track_install
    assert TrackerClient.purchase is TrackerClient.track_purchase


def test_the_client_leaves_the_other_rules_to_the_tracker(client):
    event = client.track_progression("player-1", status="won", level="")

    assert event["properties"] == {"status": "won", "level": ""}


def test_decimals_and_datetimes_in_context_are_sent_as_strings(client, tracker):
    event = client.track(
        "install",
        "player-1",
        context={
            "balance": Decimal("0.10"),
            "first_seen": datetime(2025, 1, 2, tzinfo=UTC),
        },
    )

    client.send(event)

    assert tracker.requests[0].json["context"] == {
        "balance": "0.10",
        "first_seen": "2025-01-02T00:00:00.000Z",
    }


# Sending one event


def test_send_stamps_sent_at_without_changing_the_event(client, tracker):
    event = client.track("install", "player-1")

    before = datetime.now(UTC)
    client.send(event)
    after = datetime.now(UTC)

    sent_at = parse_timestamp(tracker.requests[0].json["sent_at"])
    assert floor_to_millisecond(before) <= sent_at <= after
    assert "sent_at" not in event


def test_send_returns_the_servers_answer(client, tracker):
    event = client.track("install", "player-1")
    tracker.respond = answer(202, {"event_id": event["event_id"], "status": "duplicate"})

    result = client.send(event)

    assert result.status_code == 202
    assert result.event_id == event["event_id"]
    assert result.status == "duplicate"
    assert result.body == {"event_id": event["event_id"], "status": "duplicate"}


# Sending batches


def test_batch_is_sent_in_one_request_with_sent_at(client, tracker):
    events = [client.track("install", "player-1"), client.track("install", "player-2")]

    before = datetime.now(UTC)
    result = client.send_batch(events)
    after = datetime.now(UTC)

    (request,) = tracker.requests
    assert request.path == "/v1/events/batch"
    assert request.json["events"] == events
    assert floor_to_millisecond(before) <= parse_timestamp(request.json["sent_at"]) <= after
    assert result.accepted == 2
    assert [item["event_id"] for item in result.results] == [e["event_id"] for e in events]


def test_batch_over_500_events_is_split_into_requests_of_at_most_500(client, tracker):
    events = [client.track("install", f"player-{n}") for n in range(1201)]

    result = client.send_batch(events)

    assert [len(request.json["events"]) for request in tracker.requests] == [
        500,
        500,
        201,
    ]
    assert result.accepted == 1201
    assert len(result.bodies) == 3


def test_split_batch_results_are_indexed_by_position_in_the_whole_list(client, tracker):
    events = [client.track("install", f"player-{n}") for n in range(501)]

    result = client.send_batch(events)

    assert [item["index"] for item in result.results] == list(range(501))
    assert result.results[500]["event_id"] == events[500]["event_id"]


def test_batch_too_large_for_one_body_is_split_by_size(client, tracker):
    blob = "x" * 7000
    events = [client.track("install", f"player-{n}", context={"blob": blob}) for n in range(300)]

    result = client.send_batch(events)

    assert len(tracker.requests) > 1
    assert all(len(request.body) <= 1024 * 1024 for request in tracker.requests)
    sent_ids = [e["event_id"] for request in tracker.requests for e in request.json["events"]]
    assert sent_ids == [event["event_id"] for event in events]
    assert result.accepted == 300


def test_batch_counts_and_per_event_errors_come_from_the_server(client, tracker):
    events = [client.track("install", "player-1"), client.track("purchase", "player-1")]
    errors = {"properties": {"price": ["This field is required."]}}
    tracker.respond = answer(
        200,
        {
            "accepted": 1,
            "duplicates": 0,
            "rejected": 1,
            "results": [
                {"index": 0, "event_id": events[0]["event_id"], "status": "accepted"},
                {"index": 1, "status": "rejected", "errors": errors},
            ],
        },
    )

    result = client.send_batch(events)

    assert (result.accepted, result.duplicates, result.rejected) == (1, 0, 1)
    assert result.results[1] == {"index": 1, "status": "rejected", "errors": errors}


def test_empty_batch_sends_nothing(client, tracker):
    result = client.send_batch([])

    assert tracker.requests == []
    assert (result.accepted, result.results) == (0, [])


# Errors


@pytest.mark.parametrize(
    ("status", "error_class", "retryable"),
    [
        (429, TrackerUnavailableError, True),
        (500, TrackerUnavailableError, True),
        (503, TrackerUnavailableError, True),
        (400, TrackerRejectedError, False),
        (413, TrackerRejectedError, False),
        # The key, not the request, was refused: worth sending again once the key is good.
        (401, TrackerAuthError, True),
        (403, TrackerAuthError, True),
    ],
)
def test_error_answers_raise_an_error_that_says_whether_to_retry(client, tracker, status, error_class, retryable):
    tracker.respond = answer(status, {"detail": "no"})

    with pytest.raises(error_class) as caught:
        client.send(client.track("install", "player-1"))

    assert caught.value.retryable is retryable
    assert caught.value.status_code == status
    assert caught.value.body == {"detail": "no"}


def test_retry_after_is_given_in_seconds(client, tracker):
    tracker.respond = answer(429, {"detail": "slow down"}, {"Retry-After": "30"})

    with pytest.raises(TrackerUnavailableError) as caught:
        client.send_batch([client.track("install", "player-1")])

    assert caught.value.retry_after == 30.0


def test_error_body_that_is_not_json_is_kept_as_text(client, tracker):
    tracker.respond = answer(502, "<html>Bad Gateway</html>")

    with pytest.raises(TrackerUnavailableError) as caught:
        client.send(client.track("install", "player-1"))

    assert caught.value.body == "<html>Bad Gateway</html>"
    assert "502" in str(caught.value)


def test_redirect_is_reported_instead_of_followed(client, tracker):
    tracker.respond = answer(301, {}, {"Location": "/elsewhere"})

    with pytest.raises(TrackerRejectedError) as caught:
        client.send(client.track("install", "player-1"))

    assert caught.value.status_code == 301
    assert len(tracker.requests) == 1


def test_unreachable_server_raises_a_retryable_connection_error():
    url = f"http://127.0.0.1:{free_port()}"
    with (
        TrackerClient(base_url=url, api_key=API_KEY) as client,
        pytest.raises(TrackerConnectionError) as caught,
    ):
        client.send(client.track("install", "player-1"))

    assert caught.value.retryable is True
    assert caught.value.status_code is None
    assert "Connection refused" in str(caught.value)


# The command line


def write_dev_key(key: str) -> None:
    Path(".local").mkdir()
    Path(".local/dev_api_key").write_text(key + "\n")


def test_main_sends_an_install_and_a_eur_4_99_purchase_in_one_batch(tracker, capsys):
    exit_code = main(["--url", tracker.url, "--api-key", "flag-key"])

    assert exit_code == 0
    (request,) = tracker.requests
    install, purchase = request.json["events"]
    assert install["event_type"] == "install"
    assert purchase["event_type"] == "purchase"
    assert purchase["properties"]["price"] == "4.99"
    assert purchase["properties"]["currency"] == "EUR"
    out = capsys.readouterr().out
    assert f"{install['event_id']}  accepted" in out
    assert f"{purchase['event_id']}  accepted" in out


def test_main_uses_a_new_transaction_id_each_run(tracker):
    main(["--url", tracker.url, "--api-key", "flag-key"])
    main(["--url", tracker.url, "--api-key", "flag-key"])

    first, second = (r.json["events"][1]["properties"]["transaction_id"] for r in tracker.requests)
    assert first != second


def test_main_reads_the_key_from_the_dev_api_key_file(tracker):
    write_dev_key("file-key")

    assert main(["--url", tracker.url]) == 0

    assert tracker.requests[0].headers["Authorization"] == "Bearer file-key"


def test_main_prefers_the_environment_key_to_the_file(tracker, monkeypatch):
    write_dev_key("file-key")
    monkeypatch.setenv("TRACKER_API_KEY", "env-key")

    main(["--url", tracker.url])

    assert tracker.requests[0].headers["Authorization"] == "Bearer env-key"


def test_main_prefers_the_flag_key_to_the_environment(tracker, monkeypatch):
    monkeypatch.setenv("TRACKER_API_KEY", "env-key")

    main(["--url", tracker.url, "--api-key", "flag-key"])

    assert tracker.requests[0].headers["Authorization"] == "Bearer flag-key"


def test_main_takes_the_url_from_the_environment(tracker, monkeypatch):
    monkeypatch.setenv("TRACKER_URL", tracker.url)

    assert main(["--api-key", "flag-key"]) == 0

    assert len(tracker.requests) == 1


def test_main_exits_1_when_an_event_is_rejected(tracker, capsys):
    def reject_the_purchase(request: RecordedRequest) -> Answer:
        install, _ = request.json["events"]
        return (
            200,
            {
                "accepted": 1,
                "duplicates": 0,
                "rejected": 1,
                "results": [
                    {"index": 0, "event_id": install["event_id"], "status": "accepted"},
                    {
                        "index": 1,
                        "status": "rejected",
                        "errors": {"currency": ["Unknown."]},
                    },
                ],
            },
            {},
        )

    tracker.respond = reject_the_purchase

    assert main(["--url", tracker.url, "--api-key", "flag-key"]) == 1

    assert "rejected" in capsys.readouterr().out


def test_main_exits_1_with_one_line_when_the_key_is_refused(tracker, capsys):
    tracker.respond = answer(401, {"detail": "Invalid API key."})

    assert main(["--url", tracker.url, "--api-key", "wrong"]) == 1

    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "401" in err


def test_main_exits_1_with_one_line_when_the_server_is_unreachable(capsys):
    exit_code = main(["--url", f"http://127.0.0.1:{free_port()}", "--api-key", "flag-key"])

    assert exit_code == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: cannot reach the tracker")
    assert captured.err.count("\n") == 1
    assert "Traceback" not in captured.err


def test_main_exits_1_with_one_line_when_no_key_is_found(capsys):
    assert main(["--url", "http://127.0.0.1:1"]) == 1

    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert ".local/dev_api_key" in err


# The simulator's players, built with this client's helpers


def test_simulated_players_make_valid_events_and_every_session_ends_under_its_own_id():
    events: list[dict] = []
    with TrackerClient(base_url="http://127.0.0.1:1", api_key=API_KEY) as builder:

        def track(kind: str, arguments: dict) -> str:
            events.append(getattr(builder, f"track_{kind}")(**arguments))
            return events[-1]["event_id"]

        rng = random.Random(4)
        tally = Tally()
        play = Play(PlayerBase(40, rng), rng, track, tally, offline_share=0.05, duplicate_share=0.05)
        for _ in range(1500):
            play.step()
        play.end_all()

    for event in events:
        validate_event(event)
    kinds = {event["event_type"] for event in events}
    assert kinds == {"install", "session_start", "progression", "resource", "ad_impression", "purchase", "session_end"}
    starts = {event["session_id"]: event for event in events if event["event_type"] == "session_start"}
    ends = {event["session_id"]: event for event in events if event["event_type"] == "session_end"}
    assert set(starts) == set(ends)
    for session_id, end in ends.items():
        lasted = parse_timestamp(end["occurred_at"]) - parse_timestamp(starts[session_id]["occurred_at"])
        assert abs(end["properties"]["duration_ms"] - lasted // timedelta(milliseconds=1)) <= 1  # ms rounding
    assert tally.offline_sessions > 0 and tally.duplicate_retries > 0
    assert tally.tracked == len(events)


# Transport security


@pytest.mark.parametrize(
    "url",
    ["http://tracker.example.com", "http://10.0.0.7:8000", "http://[2001:db8::1]/", "http://localhost.example.com"],
)
def test_plain_http_to_another_machine_warns_once_per_client_naming_the_game_line(url, caplog):
    with pytest.warns(InsecureEndpointWarning, match="unencrypted") as caught:
        TrackerClient(base_url=url, api_key=API_KEY).close()

    assert len(caught) == 1
    assert caught[0].filename == __file__  # the game's line, not the SDK's
    assert [record.levelname for record in caplog.records if "unencrypted" in record.message] == ["WARNING"]
    assert API_KEY not in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "https://tracker.example.com",
        "http://127.0.0.1:8000",
        "http://127.8.9.10",
        "http://[::1]:8000",
        "http://localhost:8000",
        "HTTP://LOCALHOST.",
    ],
)
def test_https_and_loopback_http_do_not_warn(url, caplog):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TrackerClient(base_url=url, api_key=API_KEY).close()

    assert "unencrypted" not in caplog.text


def test_the_background_tracker_warns_about_plain_http_too():
    with pytest.warns(InsecureEndpointWarning) as caught:
        Tracker(base_url="http://tracker.example.com", api_key=API_KEY, sync=True).close()

    assert caught[0].filename == __file__
