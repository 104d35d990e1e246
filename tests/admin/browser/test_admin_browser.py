"""The operator console in a real browser: the pipeline panel, events and resends, the dashboard, custom schemas."""

import json
import random
import re
import uuid
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.db.models import F, Sum
from django.utils import timezone
from playwright.sync_api import expect

from events_app.api.keys import issue_api_key
from events_app.event_types import custom
from events_app.ingest.service import ingest_events
from events_app.models import DeliveryIssue, DeliveryState, Event, Heartbeat, IssueState, RejectedEvent
from tests.admin.helpers import SLOW_DOWN, count_sent, relay_past, set_state

pytestmark = pytest.mark.e2e

FX_TO_USD = {"USD": Decimal(1), "EUR": Decimal("1.08"), "GBP": Decimal("1.27")}


LEVEL_UP = {"type": "object", "properties": {"level": {"type": "integer", "minimum": 1}}, "required": ["level"]}


def custom_event(event_type: str, properties: dict) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "occurred_at": timezone.now().isoformat(),
        "player_id": "player-1",
        "properties": properties,
    }


def seed_pipeline(*, days: int = 30, per_day: int = 40, failed: int = 6, dead: int = 3, pending: int = 4) -> None:
    """Store a month of installs, purchases and ad impressions for two games, mostly delivered, some not yet.

    The relay has passed (and counted in EventHour) every event but the last `pending`
    stored; of the others, the most recently received `failed` and `dead` ones have a
    delivery issue in that state.
    """
    rng = random.Random(7)
    now = timezone.now()
    keys = [issue_api_key(game_slug="space-raiders")[0], issue_api_key(game_slug="moon-miners")[0]]
    # One batch a day for the month, and a smaller one each hour of the last day.
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    slots = [(midnight - timedelta(days=day, hours=rng.uniform(1, 23)), per_day) for day in range(days - 1)]
    slots += [(now - timedelta(hours=hour, minutes=rng.uniform(0, 59)), per_day / 8) for hour in range(24)]
    for received_at, size in slots:
        for share, api_key in zip((0.65, 0.35), keys, strict=True):
            count = max(1, round(size * share * rng.uniform(0.6, 1.4)))
            raw = [random_event(rng, occurred_at=received_at - timedelta(minutes=2)) for _ in range(count)]
            assert ingest_events(api_key=api_key, raw_events=raw, received_at=received_at).rejected == 0
            if rng.random() < 0.2:  # a client retrying a batch it had no answer for: duplicates
                ingest_events(api_key=api_key, raw_events=raw, received_at=received_at + timedelta(seconds=30))
    for currency, rate in FX_TO_USD.items():
        Event.objects.filter(currency=currency).update(revenue_base=F("revenue") * rate, base_currency="USD")
    waiting = list(Event.objects.order_by("-pk")[:pending])
    relay_past(Event.objects.exclude(pk__in=[event.pk for event in waiting]).order_by("-pk")[:1])
    # What the relay passed is counted per hour (EventHour), as it counts what it sends.
    count_sent(Event.objects.exclude(pk__in=[event.pk for event in waiting]))
    recent = list(
        Event.objects.exclude(pk__in=[event.pk for event in waiting]).order_by("-received_at")[: failed + dead]
    )
    set_state(recent[:failed], DeliveryState.FAILED, attempts=3, last_error=SLOW_DOWN, next_attempt_at=now)
    set_state(recent[failed:], DeliveryState.DEAD, attempts=12, last_error=SLOW_DOWN, next_attempt_at=None)
    for minutes in range(12):
        RejectedEvent.objects.create(
            game=keys[minutes % 2].game,
            received_at=now - timedelta(minutes=7 * minutes),
            errors={"player_id": ["This field may not be blank."]},
            body='{"event_type": "install", "player_id": ""}',
        )


def random_event(rng: random.Random, *, occurred_at) -> dict:
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "install",
        "occurred_at": occurred_at.isoformat(),
        "player_id": f"player-{rng.randint(1, 5000)}",
        "platform": rng.choice(["ios", "android", "web"]),
    }
    draw = rng.random()
    if draw < 0.2:
        event["event_type"] = "ad_impression"
        event["properties"] = {"ad_network": rng.choice(["admob", "applovin"]), "ad_format": "rewarded"}
        if rng.random() < 0.8:
            event["properties"].update(revenue=rng.choice(["0.01", "0.02", "0.05"]), currency="USD")
    elif draw < 0.45:
        event["event_type"] = "purchase"
        event["properties"] = {
            "transaction_id": f"GPA.{uuid.uuid4().hex[:12]}",
            "product_id": "gems",
            "price": rng.choice(["0.99", "4.99", "9.99"]),
            "currency": rng.choice(list(FX_TO_USD)),
        }
    return event


def page_day_start():
    """Return the start of the dashboard's 30 days (UTC midnight 29 days ago)."""
    return timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=29)


def issue_events(state: str, **filters) -> set[int]:
    """Return the ids of the events whose delivery issue is in `state`."""
    return set(DeliveryIssue.objects.filter(state=state, **filters).values_list("event_id", flat=True))


def test_operator_filters_failed_events_and_resends_them(operator_login, screenshot):
    seed_pipeline(days=3, per_day=20)
    page = operator_login()

    page.get_by_role("link", name="Events", exact=True).click()
    page.wait_for_url("**/admin/events_app/event/")
    expect(page.locator("#result_list .state-badge.state-delivered").first).to_be_visible()
    screenshot("event-list.png")
    page.click("#changelist-filter >> text=Failed (will retry)")
    page.wait_for_url("**delivery_state=failed**")
    expect(page.locator("#result_list tbody tr")).to_have_count(6)
    expect(page.locator("#result_list .state-badge.state-failed")).to_have_count(6)
    screenshot("event-list-failed.png")

    page.check("#action-toggle")
    page.select_option("select[name=action]", "resend_selected")
    page.click("button[name=index]")

    expect(page.locator("ul.messagelist")).to_contain_text("Resent 6 events")
    expect(page.locator("#result_list tbody tr")).to_have_count(0)  # none failed any more
    resent = DeliveryIssue.objects.filter(resent_at__isnull=False)
    assert resent.count() == 6
    assert set(resent.values_list("state", "attempts", "last_error")) == {(IssueState.PENDING, 0, "")}


def test_operator_resends_every_dead_event_of_one_game_after_confirming(operator_login):
    seed_pipeline(days=3, per_day=20)
    page = operator_login()
    every_dead = issue_events(IssueState.DEAD)
    dead = issue_events(IssueState.DEAD, game__slug="space-raiders")
    assert dead

    page.goto("/admin/events_app/event/")
    page.click("#changelist-filter >> text=Dead (gave up)")
    page.click("#changelist-filter >> text=space-raiders")
    page.wait_for_url("**game__id__exact=*")
    page.click("#resend-matching-link")
    expect(page.locator("#resend-count")).to_have_text(str(len(dead)))
    page.click("#confirm-resend")

    expect(page.locator("ul.messagelist")).to_contain_text(f"Resent {len(dead)} event")
    assert issue_events(IssueState.PENDING, resent_at__isnull=False) == dead
    assert issue_events(IssueState.DEAD) == every_dead - dead  # the other game's are left alone


def test_event_page_shows_the_record_and_its_history_and_resends_it(operator_login, screenshot):
    seed_pipeline(days=2, per_day=10)
    page = operator_login()
    event = Event.objects.get(pk=min(issue_events(IssueState.DEAD)))

    page.goto(f"/admin/events_app/event/{event.pk}/change/")
    assert event.event_id.hex[:8] in page.locator(".field-firehose_line pre").inner_text().replace("-", "")
    expect(page.locator(".field-delivery .state-badge")).to_have_text("dead")
    expect(page.locator(".field-issue_summary")).to_contain_text("Dead (gave up), 12 attempts")
    expect(page.locator(".field-issue_summary")).to_contain_text("last error: " + SLOW_DOWN)
    expect(page.locator(".field-delivered_by")).to_contain_text("no call has delivered it")
    expect(page.locator(".field-firehose_line")).to_contain_text("given up on. A resend sends it as this line")
    screenshot("event-detail.png", full_page=True)
    page.click("#resend-button")

    expect(page.locator("ul.messagelist")).to_contain_text("Resent 1 event")
    expect(page.locator(".field-delivery .state-badge")).to_have_text("pending")
    expect(page.locator(".field-issue_summary")).to_contain_text("Pending (resent), 0 attempts")
    expect(page.locator(".field-issue_summary")).to_contain_text("resent ")


def test_dashboard_is_linked_from_the_admin_index_and_draws_its_charts(operator_login, screenshot):
    seed_pipeline()
    page = operator_login()
    beat(seen_ago=timedelta(seconds=1), delivered_ago=timedelta(seconds=4))  # a healthy worker, for the screenshot

    page.click("#dashboard-link")
    page.wait_for_url("**/dashboard/")

    for chart in ("#chart-hourly", "#chart-daily", "#chart-revenue-purchase", "#chart-revenue-ad_impression"):
        bars = page.locator(f"{chart} svg rect.bar")
        assert bars.count() > 10, chart
        box = bars.first.bounding_box()
        assert box is not None and box["height"] > 0 and box["width"] > 0, chart
    assert page.locator("#accepted-month").inner_text() == f"{Event.objects.count() - 4:,}"  # all but the pending
    assert page.locator("#backlog-failed").inner_text() == "6"
    assert page.locator("#revenue-total").inner_text().endswith("USD")
    for event_type in ("purchase", "ad_impression"):
        pending = Event.objects.order_by("-pk").values("pk")[:4]  # not relayed yet: not counted
        total = (
            Event.objects.filter(event_type=event_type, received_at__gte=page_day_start())
            .exclude(pk__in=pending)
            .aggregate(total=Sum("revenue_base"))["total"]
        )
        assert page.locator(f"#revenue-total-{event_type}").inner_text() == f"{total:,.2f} USD", event_type
    screenshot("dashboard.png", full_page=True)

    page.select_option("#dashboard-game", "moon-miners")
    page.wait_for_url("**game=moon-miners")
    for chart in ("#chart-revenue-purchase", "#chart-revenue-ad_impression"):
        assert page.locator(f"{chart} [data-series=space-raiders]").count() == 0, chart
        assert page.locator(f"{chart} [data-series=moon-miners]").count() > 0, chart


def test_read_only_operator_sees_events_but_no_way_to_resend(operator_login):
    seed_pipeline(days=2, per_day=10)
    page = operator_login("reader", superuser=False, permissions=("view_event", "view_game", "view_rejectedevent"))
    event = Event.objects.get(pk=min(issue_events(IssueState.FAILED)))

    page.goto("/admin/events_app/event/?delivery_state=failed")
    expect(page.locator("#result_list tbody tr")).to_have_count(6)
    assert page.locator("#resend-matching-link").count() == 0
    assert page.locator("select[name=action] option[value=resend_selected]").count() == 0
    page.goto(f"/admin/events_app/event/{event.pk}/change/")
    assert page.locator("#resend-button").count() == 0


def test_operator_registers_a_custom_schema_for_a_game_and_finds_its_events(operator_login, screenshot):
    custom.clear_cache()  # compiled schemas are cached per process, by game id
    api_key, _ = issue_api_key(game_slug="space-raiders")
    game = api_key.game
    page = operator_login()

    page.goto(f"/admin/events_app/game/{game.pk}/change/")
    expect(page.locator("#no-custom-types")).to_be_visible()
    page.click("#register-schema-link")
    page.fill("#id_event_type", "level_up")
    page.fill("#id_schema", '{"type": "object", "properties": {"level": {"type": "intgr"}}}')
    page.click("#register-schema")
    expect(page.locator(".field-schema .errorlist")).to_contain_text("Not a valid JSON Schema")
    screenshot("schema-register.png", full_page=True)
    page.fill("#id_schema", json.dumps(LEVEL_UP))
    page.click("#register-schema")

    expect(page.locator("ul.messagelist")).to_contain_text("Registered level_up version 1 for space-raiders")
    expect(page.locator("#schema-json")).to_contain_text('"minimum": 1')
    screenshot("schema-detail.png", full_page=True)
    page.click("#register-version-link")
    expect(page.locator("#prefilled-from")).to_contain_text("register it as version 2")

    raw = [custom_event("level_up", {"level": n}) for n in (1, 2, 3)] + [custom_event("install", {})]
    assert ingest_events(api_key=api_key, raw_events=raw, received_at=timezone.now()).rejected == 0
    count_sent(Event.objects.filter(game=game))  # as the relay counts them when it sends them
    page.goto(f"/admin/events_app/game/{game.pk}/change/")
    expect(page.locator("#custom-type-level_up")).to_contain_text("1")
    expect(page.locator("#type-count-level_up")).to_have_text("3")
    page.select_option("#id_unknown_events", "accept")
    page.click("input[name=_continue]")
    expect(page.locator("ul.messagelist")).to_contain_text("was changed successfully")
    game.refresh_from_db()
    assert game.unknown_events == "accept"
    screenshot("game-detail.png", full_page=True)

    page.click("#type-count-level_up")
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    expect(page.locator("#changelist-filter")).to_contain_text("level_up")
    page.locator("#result_list tbody tr th a").first.click()
    expect(page.locator(".field-event_schema")).to_contain_text("level_up version 1")


def beat(*, seen_ago: timedelta, delivered_ago: timedelta | None) -> None:
    """Record a delivery worker's heartbeat as if it last ran and last delivered that long ago."""
    now = timezone.now()
    Heartbeat.objects.update_or_create(
        sender="worker",
        defaults={
            "last_seen_at": now - seen_ago,
            "last_delivery_at": now - delivered_ago if delivered_ago is not None else None,
        },
    )


def test_admin_index_shows_the_pipeline_and_warns_when_the_worker_is_gone(operator_login, screenshot):
    seed_pipeline(days=2, per_day=10)
    page = operator_login()
    beat(seen_ago=timedelta(seconds=3), delivered_ago=timedelta(seconds=20))
    page.reload()

    panel = page.locator("#pipeline-module")
    expect(panel.locator("#backlog-pending")).to_have_text("4")
    expect(panel.locator("#backlog-failed")).to_have_text("6")
    expect(panel.locator("#backlog-dead")).to_have_text("3")
    expect(panel.locator("#oldest-undelivered")).not_to_have_text("none")
    # A live server: a second or two may pass between the heartbeat and the page.
    expect(panel.locator("#last-delivery")).to_have_text(re.compile(r"^2\d seconds ago$"))
    expect(panel.locator("#worker-last-seen")).to_have_text(re.compile(r"^\d seconds ago$"))
    assert panel.locator("#worker-warning").count() == 0
    screenshot("admin-index.png")

    beat(seen_ago=timedelta(minutes=9), delivered_ago=timedelta(minutes=9))
    page.reload()
    warning = panel.locator("#worker-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("Worker not seen for 9\xa0minutes")
    assert panel.locator("tr.worker-stale").evaluate("row => getComputedStyle(row.cells[1]).color") == "rgb(176, 0, 32)"
    screenshot("admin-index-worker-gone.png")

    panel.locator("#backlog-failed").click()
    page.wait_for_url("**delivery_state=failed&received=all")
    expect(page.locator("#result_list tbody tr")).to_have_count(6)


def test_dashboard_during_an_outage_ages_the_waiting_events(operator_login, screenshot):
    # Firehose down for 47 minutes: the relay's cursor waits before the 66 events received
    # since (pending, no row written per event); nothing failed before the outage.
    seed_pipeline(failed=0, dead=0, pending=66)
    page = operator_login()
    now = timezone.now()
    outage = list(Event.objects.order_by("pk").values_list("pk", flat=True))[-66:]
    for position, pk in enumerate(outage):
        Event.objects.filter(pk=pk).update(received_at=now - timedelta(minutes=47 * (65 - position) / 65))
    beat(seen_ago=timedelta(seconds=1), delivered_ago=timedelta(minutes=47))

    page.goto("/admin/events_app/event/dashboard/")

    expect(page.locator("#backlog-pending")).to_have_text("66")
    expect(page.locator("#backlog-failed")).to_have_text("0")
    expect(page.locator("#oldest-undelivered")).to_have_text("47\xa0minutes")
    expect(page.locator("#last-delivery")).to_have_text("47\xa0minutes ago")
    assert page.locator("#worker-warning").count() == 0  # the worker runs; Firehose is what fails
    screenshot("dashboard-outage.png")


def test_event_list_shows_last_error_next_attempt_and_what_was_bought(operator_login, screenshot):
    seed_pipeline(days=2, per_day=20)
    page = operator_login()

    page.goto("/admin/events_app/event/?delivery_state=failed")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(6)
    error = rows.first.locator(".field-last_error_excerpt .last-error")
    expect(error).to_have_text(SLOW_DOWN)
    expect(error).to_have_attribute("title", SLOW_DOWN)
    expect(rows.first.locator(".field-attempts")).to_have_text("3")
    assert rows.first.locator(".field-next_attempt").inner_text().endswith(" UTC")
    screenshot("event-list-failed.png")
    results = page.locator("#changelist .results").bounding_box()
    cell = rows.first.locator(".field-last_error_excerpt").bounding_box()
    assert cell["x"] + cell["width"] <= results["x"] + results["width"]  # in view, not scrolled off

    page.goto("/admin/events_app/event/?event_type=purchase")
    purchase = page.locator("#result_list tbody tr").first.locator(".field-purchase")
    expect(purchase.locator(".product")).to_have_text("gems")
    assert purchase.locator(".price").inner_text().split()[1] in FX_TO_USD


def test_rejection_reasons_and_key_times_read_in_full(operator_login, screenshot):
    api_key, _ = issue_api_key(game_slug="space-raiders", name="ios-production")
    RejectedEvent.objects.create(
        game=api_key.game,
        received_at=timezone.now(),
        errors={"player_id": ["This field may not be blank."], "occurred_at": ["Datetime has wrong format."]},
        body='{"event_type": "install", "player_id": "", "occurred_at": "yesterday", "properties": '
        + '{"store": "app_store", "country": "FR", "campaign": "'
        + "x" * 200
        + '"}}',
    )
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    page = operator_login()

    page.goto("/admin/events_app/rejectedevent/")
    screenshot("rejected-events.png")
    reason = page.locator("#result_list td.field-reason").first
    assert reason.bounding_box()["width"] > 300  # a sentence, not a word per line

    page.goto("/admin/events_app/apikey/")
    header = page.locator("#result_list thead th.column-revoked")
    assert header.evaluate("th => th.scrollWidth <= th.clientWidth")
    assert page.locator("#result_list td.field-revoked").first.inner_text().endswith(" UTC")
    screenshot("api-keys.png")
