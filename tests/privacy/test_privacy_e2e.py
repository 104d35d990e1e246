"""Player erasure with real processes: erased by the command, later events refused over HTTP and absent from S3."""

import uuid
from datetime import UTC, datetime

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.e2e


def install(player_id: str) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "install",
        "player_id": player_id,
        "occurred_at": datetime.now(UTC).isoformat(),
        "properties": {"store": "app_store"},
    }


def suppressed_count(url: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "events_received_total" and sample.labels.get("status") == "suppressed"
    )


def test_an_erased_players_later_events_are_suppressed_and_never_reach_s3(deployment):
    key = deployment.create_key("privacy-game")
    headers = {"Authorization": f"Bearer {key}"}
    url = deployment.serve()  # deliver_events sends: S3 is read after it ran
    before = [install("player-1"), install("player-2")]
    assert requests.post(f"{url}/v1/events/batch", json={"events": before}, headers=headers, timeout=10).ok

    erased = deployment.manage("erase_player", "privacy-game", "player-1").stdout

    assert "deleted events=1 issues=0 rejected_events=0" in erased
    assert "record:player_id::STRING = 'player-1';" in erased
    single, later, other = install("player-1"), install("player-1"), install("player-2")
    answer = requests.post(f"{url}/v1/events", json=single, headers=headers, timeout=10)
    batch = requests.post(f"{url}/v1/events/batch", json={"events": [later, other]}, headers=headers, timeout=10)
    assert (answer.status_code, answer.json()) == (202, {"event_id": single["event_id"], "status": "suppressed"})
    assert [result["status"] for result in batch.json()["results"]] == ["suppressed", "accepted"]
    assert suppressed_count(url) == 2

    deployment.manage("deliver_events", "--once", timeout=60)

    in_s3 = set(deployment.s3_event_ids())
    assert {before[1]["event_id"], other["event_id"]} <= in_s3
    assert not in_s3 & {before[0]["event_id"], single["event_id"], later["event_id"]}
    assert deployment.stored_event_ids() == {before[1]["event_id"], other["event_id"]}
