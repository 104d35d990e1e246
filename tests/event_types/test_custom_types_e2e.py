"""Custom event types with real processes: a version registered by the command reaches every server process."""

import subprocess
import time
import uuid
from datetime import UTC, datetime

import pytest
import requests

from devtools.processes import MANAGE, ROOT

pytestmark = pytest.mark.e2e

SCHEMA_CACHE_SECONDS = 1.0
DEADLINE_SECONDS = 20.0  # a bound on the wait, not the measured figure: a new version must land well inside it


def level_up(level) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "level_up",
        "player_id": "player-1",
        "occurred_at": datetime.now(UTC).isoformat(),
        "properties": {"level": level},
    }


def post(url: str, key: str, body: dict) -> requests.Response:
    # A new connection per request (no session): nothing pins a process.
    return requests.post(f"{url}/v1/events", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10)


def until(predicate, *, deadline: float) -> float:
    """Poll `predicate` until true; return how long it took (fail at the deadline)."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < deadline, "condition not met before the deadline"
    return time.monotonic() - start


def test_a_new_schema_version_applies_in_every_server_process_within_seconds(deployment, tmp_path):
    key = deployment.create_key("schema-game")
    schema = tmp_path / "level_up.json"
    schema.write_text('{"type": "object", "properties": {"level": {"type": "integer"}}, "required": ["level"]}')
    assert deployment.manage("event_schema", "schema-game", "level_up", str(schema)).stdout.splitlines()[-1] == "1"
    # Two separate servers: two processes, each with its own schema cache.
    env = {"EVENTS_SCHEMA_CACHE_SECONDS": str(SCHEMA_CACHE_SECONDS)}
    servers = [deployment.serve(workers=1, **env), deployment.serve(workers=1, **env)]
    for url in servers:  # each process has compiled version 1
        assert post(url, key, level_up(3)).status_code == 202
        rejected = post(url, key, level_up("three"))
        assert rejected.status_code == 400
        assert set(rejected.json()["properties"]) == {"level"}

    schema.write_text('{"type": "object", "properties": {"level": {"type": "string"}}, "required": ["level"]}')
    # Version 2 refuses the integer levels just stored: registered anyway (--yes).
    registered = deployment.manage("event_schema", "schema-game", "level_up", str(schema), "--yes")
    assert registered.stdout.splitlines()[-1] == "2"

    waits = [
        until(lambda url=url: post(url, key, level_up("three")).status_code == 202, deadline=DEADLINE_SECONDS)
        for url in servers
    ]
    assert all(wait < DEADLINE_SECONDS for wait in waits)
    for url in servers:  # and it stays switched
        assert post(url, key, level_up(3)).status_code == 400

    deployment.manage("deliver_events", "--once", timeout=60)
    versions = {line["properties"]["level"]: line["event_schema_version"] for line in deployment.s3_lines()}
    assert versions[3] == 1
    assert versions["three"] == 2


def test_the_command_exits_1_with_the_reason_for_a_built_in_name_or_an_invalid_schema(deployment, tmp_path):
    deployment.create_key("schema-game")
    schema = tmp_path / "schema.json"
    schema.write_text('{"type": "object"}')
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": 12}')

    builtin = subprocess.run(
        [*MANAGE, "event_schema", "schema-game", "purchase", str(schema)],
        env=deployment.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    invalid = subprocess.run(
        [*MANAGE, "event_schema", "schema-game", "level_up", str(bad)],
        env=deployment.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert (builtin.returncode, invalid.returncode) == (1, 1)
    assert "built-in" in builtin.stderr
    assert "Not a valid JSON Schema" in invalid.stderr
    assert deployment.manage("event_schema", "schema-game", "--list").stdout == ""


def test_every_built_in_type_and_a_custom_one_land_in_s3_as_ndjson_lines(deployment):
    from tests.event_types.test_event_types import ACCEPTED

    key = deployment.create_key("lines-game")
    deployment.manage("event_schema", "lines-game", "--unknown-events", "accept")
    url = deployment.serve(EVENTS_INLINE_DELIVERY="1")  # accepted, and no effect: deliver_events forwards
    bodies = [*ACCEPTED.values(), {**level_up(9), "event_type": "boss_killed"}]

    answer = requests.post(
        f"{url}/v1/events/batch", json={"events": bodies}, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ).json()
    assert answer["accepted"] == len(bodies)
    assert deployment.s3_lines() == []  # no server process forwards
    deployment.manage("deliver_events", "--once", timeout=60)

    lines = {line["event_id"]: line for line in deployment.s3_lines()}
    assert set(lines) == {body["event_id"] for body in bodies}
    assert {line["event_type"] for line in lines.values()} == {body["event_type"] for body in bodies}
    assert lines[bodies[-1]["event_id"]]["event_schema_version"] is None
