"""Segment's own Python library against a live gunicorn: its calls land in S3 (on moto) as mapped NDJSON lines."""

import gzip
import uuid

import orjson
import pytest
import requests
from segment.analytics import Client

from events_app.segment.mapping import event_id_for

pytestmark = pytest.mark.e2e


def context() -> dict:
    # A new dict per call: the library writes its own `library` entry into the one it is given.
    return {"os": {"name": "iOS", "version": "17.2"}, "app": {"version": "2.3.1", "build": "231"}}


def test_segments_python_library_and_a_kotlin_style_upload_land_in_s3_mapped(deployment, tmp_path):
    key = deployment.create_key("segment-game")
    schema = tmp_path / "level_up.json"
    schema.write_text('{"type": "object", "properties": {"level": {"type": "integer"}}, "required": ["level"]}')
    deployment.manage("event_schema", "segment-game", "level_up", str(schema))
    url = deployment.serve(workers=1)

    failures = []
    client = Client(key, host=url, gzip=True, upload_interval=0.05, on_error=lambda error, _: failures.append(error))
    install_id = str(uuid.uuid4())
    client.track(
        "player-7", "Application Installed", {"build": "231"}, context(), anonymous_id="anon-7", message_id=install_id
    )
    client.identify("player-7", {"name": "Ada", "guild": "Knights"}, context(), anonymous_id="anon-7")
    order = {"order_id": "ord-1", "revenue": 12.99, "currency": "EUR", "products": [{"product_id": "gem_pack_small"}]}
    client.track("player-7", "Order Completed", order, context(), message_id="order-msg-1")
    client.track("player-7", "Level Up", {"level": 3}, context())
    client.screen("player-7", name="Main Menu", properties={"from": "boot"}, context=context())
    client.flush()  # returns once every queued call was answered
    client.join()

    # analytics-kotlin's upload: gzip, text/plain, chunked, the write key in the body, to /b.
    kotlin = {
        "type": "screen",
        "anonymousId": "anon-8",
        "name": "Shop",
        "messageId": str(uuid.uuid4()),
        "timestamp": "2026-03-01T11:59:00.5Z",
        "context": {"os": {"name": "Android"}},
    }
    body = gzip.compress(orjson.dumps({"batch": [kotlin], "sentAt": "2026-03-01T11:59:01.2Z", "writeKey": key}))
    chunked = requests.post(
        f"{url}/v1/b",
        data=iter([body[:40], body[40:]]),
        timeout=10,
        headers={"Content-Type": "text/plain", "Content-Encoding": "gzip"},
    )

    assert failures == []
    assert (chunked.status_code, chunked.json()) == (200, {"success": True})
    deployment.manage("deliver_events", "--once", timeout=60)
    lines = {(line["event_type"], line["player_id"]): line for line in deployment.s3_lines()}
    assert set(lines) == {
        ("install", "player-7"),
        ("identify", "player-7"),
        ("purchase", "player-7"),
        ("level_up", "player-7"),
        ("screen", "player-7"),
        ("screen", "anon-8"),
    }

    install = lines["install", "player-7"]
    assert install["event_id"] == install_id
    assert (install["platform"], install["app_version"], install["properties"]) == ("ios", "2.3.1", {"build": "231"})
    assert install["context"]["library"]["name"] == "analytics-python"
    assert install["context"]["segment"]["anonymousId"] == "anon-7"
    assert install["sent_at"] is not None  # the library's batch sentAt

    purchase = lines["purchase", "player-7"]
    assert purchase["event_id"] == event_id_for("order-msg-1")
    assert (purchase["price"], purchase["quantity"], purchase["currency"], purchase["revenue"]) == (
        "12.99",
        1,
        "EUR",
        "12.99",
    )
    assert (purchase["properties"]["transaction_id"], purchase["properties"]["product_id"]) == (
        "ord-1",
        "gem_pack_small",
    )

    assert (lines["level_up", "player-7"]["properties"], lines["level_up", "player-7"]["event_schema_version"]) == (
        {"level": 3},
        1,
    )
    assert lines["identify", "player-7"]["properties"] == {"name": "Ada", "guild": "Knights"}
    assert lines["screen", "player-7"]["properties"] == {"from": "boot", "name": "Main Menu"}
    shop = lines["screen", "anon-8"]
    assert (shop["platform"], shop["occurred_at"], shop["sent_at"]) == (
        "android",
        "2026-03-01T11:59:00.500000Z",
        "2026-03-01T11:59:01.200000Z",
    )
