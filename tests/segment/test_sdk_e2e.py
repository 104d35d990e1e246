"""The real SDKs against a live gunicorn, on each database: every call type they make lands in S3 (on moto) mapped.

Segment's Python library; Segment's and RudderStack's Node SDKs (one node process);
analytics.js and RudderStack's JS SDK in Debian's chromium, each running the snippet
docs/segment.md shows, bundled from npm, on a page of another origin than the API.
One server per database serves them all: starting one costs more than their calls.
"""

import gzip
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import requests
from playwright.sync_api import sync_playwright
from segment.analytics import Client

from events_app.segment.mapping import event_id_for
from tests.segment.sdk_harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Exchange,
    LossyProxy,
    require_chromium,
    require_node_modules,
    run_node_sdks,
    static_site,
    write_game_page,
)

pytestmark = pytest.mark.e2e

LEVEL_UP_SCHEMA = '{"type": "object", "properties": {"level": {"type": "integer"}}, "required": ["level"]}'

# Each SDK's context.library.name, which tells their lines apart.
PYTHON = "analytics-python"
SEGMENT_NODE = "@segment/analytics-node"
RUDDERSTACK_NODE = "analytics-node"  # RudderStack's Node SDK names itself so
ANALYTICS_JS = "analytics.js"
RUDDERSTACK_JS = "RudderLabs JavaScript SDK"

# js/node_sdks.mjs: each Node SDK's player and the tag in its ids.
NODE_SDKS = {SEGMENT_NODE: ("node-segment-player", "segment"), RUDDERSTACK_NODE: ("node-rudder-player", "rudderstack")}


@dataclass(frozen=True)
class WebSDK:
    """A web SDK, and what its snippet in docs/segment.md sends."""

    library: str
    package: str
    player: str
    guest: str  # the id its alias links to the player
    order_id: str
    traits: dict
    app_version: str | None


WEB_SDKS = [
    WebSDK(
        ANALYTICS_JS,
        "@segment/analytics-next",
        player="player-42",
        guest="guest-42",
        order_id="order-1001",
        traits={"name": "Ada", "guild": "Knights"},
        app_version="1.4.0",  # its snippet adds the game's context.app
    ),
    WebSDK(
        RUDDERSTACK_JS,
        "@rudderstack/analytics-js/bundled",
        player="player-43",
        guest="guest-43",
        order_id="order-1002",
        traits={"name": "Grace", "guild": "Knights"},
        app_version=None,  # its context.app names the SDK itself
    ),
]
# The posts each snippet makes: page, identify, two tracks, group, alias.
WEB_POSTS = 6


def test_every_sdk_delivers_every_call_type_into_s3_mapped(deployment, tmp_path, subtests):
    key = deployment.create_key("sdk-game")
    schema = tmp_path / "level_up.json"
    schema.write_text(LEVEL_UP_SCHEMA)
    deployment.manage("event_schema", "sdk-game", "level_up", str(schema))
    url = deployment.serve()

    with subtests.test("Segment's Python library sends"):
        assert send_with_segments_python_library(url, key) == []
    with subtests.test("a raw upload as analytics-kotlin makes it is taken"):
        assert send_as_analytics_kotlin(url, key) == (200, {"success": True})
    node_ran = False
    with subtests.test("Segment's and RudderStack's Node SDKs send"):
        require_node_modules()
        assert run_node_sdks(url, key) == {"segment": [], "rudderstack": []}
        node_ran = True
    web_exchanges = {}
    with subtests.test("analytics.js and RudderStack's JS SDK send from a page of another origin"):
        require_node_modules()
        require_chromium()
        web_exchanges = send_from_the_browser(url, key, tmp_path / "site")

    deployment.manage("deliver_events", "--once", timeout=60)
    lines = deployment.s3_lines()
    by_library: dict[str, list[dict]] = {}
    for line in lines:
        by_library.setdefault(line["context"].get("library", {}).get("name"), []).append(line)

    with subtests.test(PYTHON):
        check_python_library(by_library.pop(PYTHON, []))
    with subtests.test("analytics-kotlin's upload"):
        check_kotlin_upload(by_library.pop(None, []))
    for library, (player, tag) in NODE_SDKS.items():
        with subtests.test(library):
            if not node_ran:
                pytest.skip("the Node SDKs did not run")
            check_node_sdk(by_library.pop(library, []), player=player, tag=tag)
    for sdk in WEB_SDKS:
        with subtests.test(sdk.library):
            if sdk.library not in web_exchanges:
                pytest.skip("the web SDKs did not run")
            check_web_sdk(by_library.pop(sdk.library, []), sdk)
            check_cors_path_and_retry(web_exchanges[sdk.library])
    assert by_library == {}  # no line from anything else


# Sending


def python_context() -> dict:
    # A new dict per call: the library writes its own `library` entry into the one it is given.
    return {"os": {"name": "iOS", "version": "17.2"}, "app": {"version": "2.3.1", "build": "231"}}


def send_with_segments_python_library(url: str, key: str) -> list:
    """Make every call type with analytics-python (gzip); return the failures it reported."""
    failures = []
    client = Client(key, host=url, gzip=True, upload_interval=0.05, on_error=lambda error, _: failures.append(error))
    install_id = "7c0e6a52-3c2f-4c55-9d43-8f1b0f2e4a10"
    client.track(
        "player-7",
        "Application Installed",
        {"build": "231"},
        python_context(),
        anonymous_id="anon-7",
        message_id=install_id,
    )
    client.identify("player-7", {"name": "Ada", "guild": "Knights"}, python_context(), anonymous_id="anon-7")
    order = {"order_id": "ord-1", "revenue": 12.99, "currency": "EUR", "products": [{"product_id": "gem_pack_small"}]}
    client.track("player-7", "Order Completed", order, python_context(), message_id="order-msg-1")
    for _ in range(2):  # the same messageId twice, as a retry after a lost answer sends it
        client.track("player-7", "Level Up", {"level": 3}, python_context(), message_id="python-level-up-msg")
    client.screen("player-7", name="Main Menu", properties={"from": "boot"}, context=python_context())
    client.page("player-7", category="Store", name="Shop", properties={"path": "/shop"}, context=python_context())
    client.group("player-7", "guild-7", {"name": "Knights"}, python_context())
    client.alias("anon-7", "player-7", python_context())
    client.flush()  # returns once every queued call was answered
    client.join()
    return failures


def send_as_analytics_kotlin(url: str, key: str) -> tuple[int, dict]:
    """Upload one batch as analytics-kotlin does: gzip, text/plain, chunked, the write key in the body, to /b."""
    message = {
        "type": "screen",
        "anonymousId": "anon-8",
        "name": "Shop",
        "messageId": str(uuid.uuid4()),
        "timestamp": "2026-03-01T11:59:00.5Z",
        "context": {"os": {"name": "Android"}},
    }
    body = gzip.compress(orjson.dumps({"batch": [message], "sentAt": "2026-03-01T11:59:01.2Z", "writeKey": key}))
    response = requests.post(
        f"{url}/v1/b",
        data=iter([body[:40], body[40:]]),
        timeout=10,
        headers={"Content-Type": "text/plain", "Content-Encoding": "gzip"},
    )
    return response.status_code, response.json()


def send_from_the_browser(url: str, key: str, site: Path) -> dict[str, list[Exchange]]:
    """Open each web SDK's page (its docs snippet) in chromium; return, per SDK, the exchanges its proxy saw.

    The page comes from one loopback origin and the API sits behind a proxy on
    another, so every call takes the browser's CORS path to the server. The proxy
    loses the server's answer to the first Level Up: the SDK must send it again.
    """
    site.mkdir()
    exchanges = {}
    with static_site(site) as origin, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for sdk in WEB_SDKS:
                with LossyProxy(url, marker=b'"Level Up"').running() as proxy:
                    path = write_game_page(site, sdk.player, package=sdk.package, write_key=key, host=proxy.url)
                    context = browser.new_context()
                    requested, console = [], []
                    context.on("request", lambda request, seen=requested: seen.append(request.url))
                    context.on("console", lambda message, seen=console: seen.append(message.text))
                    page = context.new_page()
                    page.goto(origin + path)
                    deadline = time.monotonic() + 30
                    while answered_posts(proxy) < WEB_POSTS:
                        assert time.monotonic() < deadline, (
                            f"{sdk.library}'s calls not all answered in 30 s; console: {console}; "
                            f"exchanges: {proxy.exchanges()}"
                        )
                        page.wait_for_timeout(50)  # (Playwright's own wait: its events keep coming in)
                    context.close()
                    # Nothing but the page and the API: no CDN, no vendor's servers.
                    assert [url for url in requested if not url.startswith((origin, proxy.url))] == []
                    exchanges[sdk.library] = proxy.exchanges()
        finally:
            browser.close()
    return exchanges


def answered_posts(proxy: LossyProxy) -> int:
    posts = [exchange for exchange in proxy.exchanges() if exchange.method == "POST"]
    return sum(1 for exchange in posts if exchange.status == 200 and not exchange.lost)


# What landed in S3


def lines_by_type(lines: list[dict], expected: dict[str, int]) -> dict[str, dict]:
    """Assert `lines` hold each event type as many times as `expected` says; return the lines by type."""
    assert Counter(line["event_type"] for line in lines) == expected
    return {line["event_type"]: line for line in lines}


def check_python_library(lines: list[dict]) -> None:
    line = lines_by_type(
        lines,
        {"install": 1, "identify": 1, "purchase": 1, "level_up": 1, "screen": 1, "page": 1, "group": 1, "alias": 1},
    )
    assert {(one["player_id"], one["platform"], one["app_version"]) for one in lines} == {("player-7", "ios", "2.3.1")}
    install = line["install"]
    assert install["event_id"] == "7c0e6a52-3c2f-4c55-9d43-8f1b0f2e4a10"
    assert install["properties"] == {"build": "231"}
    assert install["context"]["segment"]["anonymousId"] == "anon-7"
    assert install["sent_at"] is not None  # the library's batch sentAt
    purchase = line["purchase"]
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
    assert line["level_up"]["event_id"] == event_id_for("python-level-up-msg")  # sent twice, stored once
    assert (line["level_up"]["properties"], line["level_up"]["event_schema_version"]) == ({"level": 3}, 1)
    assert line["identify"]["properties"] == {"name": "Ada", "guild": "Knights"}
    assert line["screen"]["properties"] == {"from": "boot", "name": "Main Menu"}
    assert line["page"]["properties"] == {"path": "/shop", "name": "Shop", "category": "Store"}
    assert line["group"]["properties"] == {"name": "Knights", "groupId": "guild-7"}
    assert line["alias"]["properties"] == {"previousId": "anon-7"}


def check_kotlin_upload(lines: list[dict]) -> None:
    shop = lines_by_type(lines, {"screen": 1})["screen"]
    assert (shop["player_id"], shop["platform"], shop["occurred_at"], shop["sent_at"]) == (
        "anon-8",
        "android",
        "2026-03-01T11:59:00.500000Z",
        "2026-03-01T11:59:01.200000Z",
    )


def check_node_sdk(lines: list[dict], *, player: str, tag: str) -> None:
    line = lines_by_type(
        lines, {"purchase": 1, "level_up": 1, "identify": 1, "page": 1, "screen": 1, "group": 1, "alias": 1}
    )
    # The game's context.app and context.os, whatever the SDK adds.
    assert {(one["player_id"], one["platform"], one["app_version"]) for one in lines} == {(player, "android", "4.5.6")}
    purchase = line["purchase"]
    assert (purchase["price"], purchase["quantity"], purchase["currency"]) == ("4.99", 1, "EUR")
    assert (purchase["properties"]["transaction_id"], purchase["properties"]["product_id"]) == (
        f"{tag}-order-1",
        "gems_100",
    )
    level_up = line["level_up"]
    assert level_up["event_id"] == event_id_for(f"{tag}-level-up-msg")  # sent twice, stored once
    assert (level_up["properties"], level_up["context"]["segment"]["anonymousId"]) == ({"level": 3}, f"{tag}-anon")
    assert line["identify"]["properties"] == {"name": "Ada", "guild": "Knights"}
    assert line["page"]["properties"] == {"path": "/shop", "name": "Shop", "category": "Store"}
    assert line["screen"]["properties"] == {"from": "boot", "name": "Main Menu"}
    assert line["group"]["properties"] == {"name": "Knights", "groupId": "guild-7"}
    assert line["alias"]["properties"] == {"previousId": f"{tag}-anon"}


def check_web_sdk(lines: list[dict], sdk: WebSDK) -> None:
    # The Level Up was sent twice (its first answer lost) with one messageId: stored once.
    line = lines_by_type(lines, {"page": 1, "alias": 1, "identify": 1, "level_up": 1, "purchase": 1, "group": 1})
    assert {(one["platform"], one["app_version"]) for one in lines} == {("web", sdk.app_version)}
    # One anonymousId, the SDK's own, on every call: it links the page seen before sign-in.
    (anonymous,) = {one["context"]["segment"]["anonymousId"] for one in lines}
    assert line["page"]["player_id"] in (anonymous, sdk.player)
    assert {one["player_id"] for one in lines if one["event_type"] != "page"} == {sdk.player}
    assert line["alias"]["properties"] == {"previousId": sdk.guest}
    assert (line["page"]["properties"]["name"], line["page"]["properties"]["category"]) == ("Shop", "Store")
    assert line["identify"]["properties"] == sdk.traits
    assert line["level_up"]["properties"] == {"level": 3}
    purchase = line["purchase"]
    assert (purchase["price"], purchase["currency"], purchase["properties"]["transaction_id"]) == (
        "4.99",
        "EUR",
        sdk.order_id,
    )
    assert (line["group"]["properties"]["groupId"], line["group"]["properties"]["name"]) == ("guild-7", "Knights")


def check_cors_path_and_retry(exchanges: list[Exchange]) -> None:
    # Each post went through the browser's preflight, answered by the server itself.
    preflights = [exchange for exchange in exchanges if exchange.method == "OPTIONS"]
    assert preflights
    assert {exchange.status for exchange in preflights} == {204}
    posts = [exchange for exchange in exchanges if exchange.method == "POST"]
    assert all(exchange.headers.get("access-control-allow-origin") == "*" for exchange in posts)
    # The Level Up reached the server twice: the SDK sent it again after the lost answer.
    assert [(exchange.status, exchange.lost) for exchange in posts if exchange.marked] == [(200, True), (200, False)]
