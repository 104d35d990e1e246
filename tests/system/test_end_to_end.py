"""End to end with real processes: moto's server as AWS, the app under gunicorn, the relay worker, the SDK over HTTP."""

import pytest

from devtools.processes import wait_for
from sdk.client import TrackerClient

pytestmark = pytest.mark.e2e


def test_sdk_events_travel_through_the_http_server_and_firehose_into_s3(deployment):
    key = deployment.create_key("e2e-game")
    url = deployment.serve()
    deployment.worker()
    with TrackerClient(base_url=url, api_key=key) as client:
        install = client.install("player-42", store="google_play", country="DE", platform="android")
        purchase = client.purchase(
            "player-42", transaction_id="GPA.1234", product_id="coins_500", price="1200", currency="JPY", quantity=3
        )
        batch = client.send_batch([install, purchase])
        again = client.send(purchase)

    assert (batch.accepted, batch.duplicates, batch.rejected) == (2, 0, 0)
    assert again.status == "duplicate"
    # The relay worker sends soon after the commit, never within the request.
    wait_for(lambda: len(deployment.s3_lines()) >= 2, timeout=30, what="both lines in S3")
    lines = {line["event_id"]: line for line in deployment.s3_lines()}
    assert set(lines) == {install["event_id"], purchase["event_id"]}
    assert lines[install["event_id"]]["properties"]["country"] == "DE"
    assert lines[purchase["event_id"]]["revenue"] == "3600"
    assert lines[purchase["event_id"]]["currency"] == "JPY"
    assert all(line["game"] == "e2e-game" for line in lines.values())
    assert deployment.stored_event_ids() == {install["event_id"], purchase["event_id"]}


def test_worker_process_delivers_events_the_server_only_stored(deployment):
    key = deployment.create_key("e2e-worker")
    url = deployment.serve()
    with TrackerClient(base_url=url, api_key=key) as client:
        events = [client.install(f"player-{i}") for i in range(50)]
        assert client.send_batch(events).accepted == 50
    assert deployment.s3_lines() == []

    worker = deployment.manage("deliver_events", "--once", timeout=60)

    assert "delivered=50" in worker.stdout
    assert sorted(line["event_id"] for line in deployment.s3_lines()) == sorted(e["event_id"] for e in events)


def test_events_reach_a_kinesis_data_stream_keyed_by_game_and_player(deployment):
    deployment.manage("ensure_firehose", EVENTS_DESTINATION="kinesis", KINESIS_STREAM_NAME="e2e-stream")
    key = deployment.create_key("e2e-kinesis")
    kinesis = {"EVENTS_DESTINATION": "kinesis", "KINESIS_STREAM_NAME": "e2e-stream"}
    url = deployment.serve(**kinesis)
    deployment.worker(**kinesis)
    with TrackerClient(base_url=url, api_key=key) as client:
        events = [client.install(f"player-{i % 4}") for i in range(40)]
        assert client.send_batch(events).accepted == 40

    wait_for(lambda: len(deployment.kinesis_lines("e2e-stream")) >= 40, timeout=30, what="40 lines in the stream")
    lines = deployment.kinesis_lines("e2e-stream")
    assert sorted(line["event_id"] for _, line in lines) == sorted(e["event_id"] for e in events)
    assert all(key == f"e2e-kinesis:{line['player_id']}" for key, line in lines)
    assert deployment.s3_lines() == []  # nothing went to Firehose
