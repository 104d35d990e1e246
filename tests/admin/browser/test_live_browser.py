"""Live events, a player's timeline and an outage at a glance, in a real browser against a live server."""

import re
import time
import uuid
from datetime import timedelta

import pytest
import requests
from django.utils import timezone
from playwright.sync_api import expect

from events_app.api.keys import issue_api_key
from events_app.models import CallOutcome, DeliveryCall, DeliveryState, Event
from tests.admin.browser.test_admin_browser import beat, seed_pipeline
from tests.admin.helpers import set_state

pytestmark = pytest.mark.e2e

COULD_NOT_CONNECT = (
    'EndpointConnectionError: Could not connect to the endpoint URL: "https://firehose.eu-west-1.amazonaws.com/"'
)


def install(player_id: str, **fields) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "install",
        "player_id": player_id,
        "occurred_at": timezone.now().isoformat(),
        "platform": "android",
        "properties": {"store": "google_play", "country": "DE"},
        **fields,
    }


def purchase(player_id: str) -> dict:
    return {
        **install(player_id),
        "event_type": "purchase",
        "properties": {
            "transaction_id": f"GPA.{uuid.uuid4().hex[:12]}",
            "product_id": "gems_500",
            "price": "4.99",
            "currency": "EUR",
        },
    }


def send(live_server, key: str, events: list[dict]) -> requests.Response:
    """POST a batch of events to the live server's API as a game does; return its answer (the acknowledgement)."""
    return requests.post(
        f"{live_server.url}/v1/events/batch",
        json={"events": events},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
        proxies={"http": "", "https": ""},
    )


def test_live_view_shows_each_event_within_3_seconds_of_its_acknowledgement(live_server, operator_login, screenshot):
    _, key = issue_api_key(game_slug="space-raiders")
    issue_api_key(game_slug="moon-miners")
    page = operator_login()
    page.goto("/admin/events_app/game/")
    page.get_by_role("link", name="space-raiders").click()
    page.locator("#live-events-link").click()
    page.wait_for_url("**/admin/events_app/event/live/?game=space-raiders")
    expect(page.locator("#live-status")).to_contain_text("Live: updated")

    # Traffic: batches of players installing and paying, one refused event among them.
    for batch in range(4):
        players = [f"player-{batch}-{n}" for n in range(3)]
        answer = send(live_server, key, [install(player) for player in players] + [purchase(players[0])])
        acknowledged = time.monotonic()
        assert answer.status_code in (200, 201, 207), answer.text
        ids = Event.objects.filter(player_id__in=players).values_list("pk", flat=True)
        for pk in ids:
            expect(page.locator(f'#live-rows tr[data-id="e{pk}"]')).to_be_visible(timeout=3000)
        assert time.monotonic() - acknowledged < 3
    refused = send(live_server, key, [install("")])
    assert refused.status_code in (200, 207), refused.text  # acknowledged, the event refused
    rejected = page.locator("#live-rows tr.rejected")
    expect(rejected).to_have_count(1, timeout=3000)
    expect(rejected.locator("td.reason")).to_contain_text("player_id")
    expect(page.locator("#live-rows tr")).to_have_count(17)
    # Newest on top: the rejection came last.
    assert page.locator("#live-rows tr").first.get_attribute("class").startswith("rejected")
    screenshot("live-events.png")

    page.fill("#live-player", "player-3-0")
    expect(page.locator("#live-rows tr")).to_have_count(2)  # the install and the purchase
    page.fill("#live-type", "purchase")
    expect(page.locator("#live-rows tr")).to_have_count(1)
    page.fill("#live-type", "")
    page.fill("#live-player", "")
    expect(page.locator("#live-rows tr")).to_have_count(17)

    page.click("#live-pause")
    expect(page.locator("#live-pause")).to_have_text("Resume")
    expect(page.locator("#live-status")).to_have_text("Paused")
    send(live_server, key, [install("late-player")])
    page.click("#live-pause")
    (late,) = Event.objects.filter(player_id="late-player").values_list("pk", flat=True)
    expect(page.locator(f'#live-rows tr[data-id="e{late}"]')).to_be_visible(timeout=3000)

    page.locator('#live-rows tr[data-id] a:text-is("player-3-0")').first.click()
    page.wait_for_url(re.compile(r".*/timeline/\?game=\d+&player_id=player-3-0$"))
    expect(page.locator("#timeline tbody tr")).to_have_count(2)
    expect(page.locator("#timeline tbody tr").nth(1)).to_contain_text("gems_500 4.99 EUR")
    screenshot("player-timeline.png")


def test_the_outage_panel_turns_red_and_says_why_deliveries_fail(operator_login, screenshot):
    seed_pipeline(days=3, per_day=80, failed=0, dead=0, pending=0)
    page = operator_login()
    now = timezone.now()
    # 163 events failed, the oldest 21 s old; the calls to Firehose fail since 8 minutes.
    failed = list(Event.objects.order_by("-pk")[:163])
    Event.objects.filter(pk__in=[event.pk for event in failed]).update(received_at=now - timedelta(seconds=21))
    set_state(Event.objects.filter(pk__in=[event.pk for event in failed]), DeliveryState.FAILED, attempts=2)
    for minute in range(60, 0, -1):
        broken = minute <= 8
        DeliveryCall.objects.create(
            called_at=now - timedelta(minutes=minute),
            emitted_at=now - timedelta(minutes=minute),
            destination="firehose",
            sender="relay",
            events=40 if not broken else 20,
            failed_events=20 if broken else 0,
            records=40,
            bytes=32_000,
            outcome=CallOutcome.FAILED if broken else CallOutcome.DELIVERED,
            error=COULD_NOT_CONNECT if broken else "",
        )
    beat(seen_ago=timedelta(seconds=2), delivered_ago=timedelta(minutes=9))
    page.reload()

    level = page.locator("#pipeline-module #pipeline-level")
    expect(level).to_have_attribute("data-level", "red")
    expect(level).to_contain_text("Delivery outage: 163 failed.")
    expect(level.locator("#destination-error")).to_contain_text("Firehose: EndpointConnectionError")
    expect(level.locator("#destination-error-when")).to_contain_text("failing since")
    heading = page.locator("#pipeline-module > h2").evaluate("h => getComputedStyle(h).backgroundColor")
    assert heading == "rgb(176, 0, 32)"
    screenshot("admin-index-outage.png")

    page.goto("/admin/events_app/event/dashboard/")
    expect(page.locator("#card-backlog #pipeline-level")).to_have_attribute("data-level", "red")
    expect(page.locator('#chart-delivery rect.bar[data-series="failed"]')).to_have_count(8)
    screenshot("dashboard-delivery-outage.png", full_page=True)


def test_last_error_is_on_screen_at_1366_px_with_the_sidebar_open(operator_login, page, screenshot):
    seed_pipeline(days=2, per_day=20)
    # Real player ids are often UUIDs: the widest column after the error.
    for event in Event.objects.filter(issue__state=DeliveryState.FAILED):
        Event.objects.filter(pk=event.pk).update(player_id=str(uuid.uuid4()))
    operator_login()
    page.set_viewport_size({"width": 1366, "height": 768})

    page.goto("/admin/events_app/event/?delivery_state=failed&received=all")
    page.click("#toggle-nav-sidebar")  # the fixture starts with it folded

    expect(page.locator("#nav-sidebar")).to_be_visible()
    screenshot("event-list-failed-1366.png")
    cell = page.locator("#result_list tbody tr").first.locator(".field-last_error_excerpt").bounding_box()
    results = page.locator("#changelist .results").bounding_box()  # scrolls its overflow out of sight
    assert cell["x"] + cell["width"] <= min(results["x"] + results["width"], 1366)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366  # nothing off to the right
