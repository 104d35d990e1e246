"""The dashboard and the admin index's panel: events by type, intake, backlog, worker heartbeat, revenue, charts."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from unittest import mock

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from events_app.admin import charts
from events_app.admin.queries import build_dashboard
from events_app.delivery import engine, heartbeat
from events_app.delivery.destinations import firehose
from events_app.delivery.destinations.errors import DestinationError
from events_app.delivery.status import backlog, worker_health
from events_app.delivery.worker import run_worker
from events_app.ingest.service import ingest_events
from events_app.models import DeliveryIssue, DuplicateTally, Event, Heartbeat, RejectedEvent
from events_app.money.currency import clear_rate_cache
from tests.admin.helpers import count_sent, set_state

NOW = datetime(2026, 11, 25, 15, 40, tzinfo=UTC)
DASHBOARD_URL = reverse("admin:events_app_event_dashboard")


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture(autouse=True)
def _fresh_rates():
    """Rates are cached per process: forget what an earlier test looked up, so these events find none."""
    clear_rate_cache()
    yield
    clear_rate_cache()


def store_at(
    api_key, raw_events: list[dict], received_at: datetime, *, state: str | None = None, **fields
) -> list[Event]:
    """Ingest events as if received at `received_at` (occurred a minute before), then set `fields` on them.

    With `state`, the events are put in that delivery state (tests.admin.helpers.set_state):
    the relay passes them and every event stored before them, so store the ones that
    should stay pending last. The events are counted in EventHour (what the charts
    read) as a relay counts those it sends.
    """
    occurred = (received_at - timedelta(minutes=1)).isoformat()
    outcome = ingest_events(
        api_key=api_key, raw_events=[{**e, "occurred_at": occurred} for e in raw_events], received_at=received_at
    )
    assert outcome.rejected == 0, outcome.results
    events = Event.objects.filter(event_id__in=[r["event_id"] for r in outcome.results])
    if fields:
        events.update(**fields)
    events = list(events)
    count_sent(events)
    if state is not None:
        set_state(events, state)
    return events


def ad_impression(revenue: str | None = None) -> dict:
    """Return an ad_impression event, with revenue in EUR if given."""
    properties = {"ad_network": "admob", "ad_format": "rewarded"}
    if revenue is not None:
        properties.update(revenue=revenue, currency="EUR")
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "ad_impression",
        "player_id": "player-1",
        "occurred_at": NOW.isoformat(),
        "properties": properties,
    }


def bars(html: str, chart_id: str) -> list[dict]:
    """Return the bar segments (series, bucket, value) of one chart on the page."""
    section = html.split(f'id="{chart_id}"', 1)[1].split("</figure>", 1)[0]
    return [
        {"series": series, "bucket": bucket, "value": value}
        for series, bucket, value in re.findall(
            r'<rect class="bar"[^>]*data-series="([^"]*)" data-bucket="([^"]*)" data-value="([^"]*)"', section
        )
    ]


def test_admin_index_links_the_dashboard(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()

    assert f'href="{DASHBOARD_URL}"' in html


def test_dashboard_charts_events_per_hour_and_per_day_by_type(
    admin_client, game_key, frozen, make_install, make_purchase
):
    store_at(game_key[0], [make_install(), make_install()], NOW - timedelta(hours=2))
    store_at(game_key[0], [make_purchase()], NOW - timedelta(hours=2))
    store_at(game_key[0], [make_install()], NOW - timedelta(days=3))
    store_at(game_key[0], [make_install()], NOW - timedelta(days=45))  # outside both windows

    html = admin_client.get(DASHBOARD_URL).content.decode()

    assert {(b["series"], b["bucket"], b["value"]) for b in bars(html, "chart-hourly")} == {
        ("install", "13h", "2"),
        ("purchase", "13h", "1"),
    }
    assert {(b["series"], b["bucket"], b["value"]) for b in bars(html, "chart-daily")} == {
        ("install", "Nov 22", "1"),
        ("install", "Nov 25", "2"),
        ("purchase", "Nov 25", "1"),
    }
    assert '<svg viewBox="0 0 760 240" role="img"' in html


def test_dashboard_shows_accepted_duplicate_and_rejected_counts(
    admin_client, api, game_key, other_game_key, frozen, make_install, settings
):
    settings.EVENTS_REJECTIONS_MAX_AGE_DAYS = settings.EVENTS_REJECTION_RETENTION_DAYS = 30  # a month of them kept
    store_at(game_key[0], [make_install() for _ in range(3)], NOW - timedelta(hours=1))
    store_at(game_key[0], [make_install()], NOW - timedelta(days=5))
    for received_at in (NOW - timedelta(hours=3), NOW - timedelta(days=10)):
        RejectedEvent.objects.create(game=game_key[0].game, received_at=received_at, errors={"player_id": ["bad"]})
    retried = [make_install(), make_install()]
    assert api.post("/v1/events/batch", {"events": retried}, format="json").json()["accepted"] == 2
    assert api.post("/v1/events/batch", {"events": retried}, format="json").json()["duplicates"] == 2
    count_sent(Event.objects.filter(event_id__in=[e["event_id"] for e in retried]))  # as the relay sends them
    DuplicateTally.objects.create(game=other_game_key[0].game, received_at=NOW - timedelta(days=2), duplicates=5)

    response = admin_client.get(DASHBOARD_URL)

    data = response.context["dashboard"]
    assert (data.intake_day.accepted, data.intake_day.duplicates, data.intake_day.rejected) == (5, 2, 1)
    assert (data.intake_month.accepted, data.intake_month.duplicates, data.intake_month.rejected) == (6, 7, 2)
    assert not data.intake_month.rejected_is_lower_bound
    html = response.content.decode()
    assert 'id="duplicates-day">2<' in html and 'id="duplicates-month">7<' in html
    one_game = admin_client.get(DASHBOARD_URL, {"game": "moon-miners"}).context["dashboard"]
    assert (one_game.intake_month.accepted, one_game.intake_month.duplicates) == (0, 5)


def test_rejected_counts_are_marked_as_lower_bounds_once_old_rejections_were_dropped(settings, game_key, frozen):
    settings.EVENTS_REJECTIONS_KEPT = 2
    for hours in (1, 2):
        RejectedEvent.objects.create(game=game_key[0].game, received_at=NOW - timedelta(hours=hours), errors={})

    data = build_dashboard()

    assert data.intake_month.rejected_is_lower_bound


def test_rejected_counts_include_the_refusals_past_the_per_request_cap(api, settings, game_key, frozen, make_install):
    settings.EVENTS_REJECTIONS_PER_REQUEST = 3
    api.post("/v1/events/batch", {"events": [make_install(player_id="") for _ in range(10)]}, format="json")

    data = build_dashboard()

    assert RejectedEvent.objects.count() == 3
    assert data.intake_day.rejected == 10
    assert not data.intake_day.rejected_is_lower_bound
    assert data.intake_month.rejected_is_lower_bound  # 30 days, of which 7 are kept


def test_dashboard_shows_the_backlog_and_the_age_of_the_oldest_undelivered_event(
    admin_client, game_key, frozen, make_install
):
    store_at(game_key[0], [make_install()], NOW - timedelta(hours=1), state="delivered")
    store_at(game_key[0], [make_install(), make_install()], NOW - timedelta(hours=1), state="failed")
    store_at(game_key[0], [make_install()], NOW - timedelta(hours=1), state="dead")
    store_at(game_key[0], [make_install()], NOW - timedelta(hours=2, minutes=5))  # not relayed yet
    store_at(game_key[0], [make_install()], NOW - timedelta(minutes=1))

    response = admin_client.get(DASHBOARD_URL)

    backlog = response.context["dashboard"].backlog
    assert (backlog.pending, backlog.failed, backlog.dead) == (2, 2, 1)
    assert backlog.oldest_undelivered_age == timedelta(hours=2, minutes=5)
    html = response.content.decode()
    assert 'id="oldest-undelivered">2\xa0hours, 5\xa0minutes<' in html
    assert 'href="/admin/events_app/event/?delivery_state=failed&amp;received=all" id="backlog-failed">2<' in html
    assert 'href="/admin/events_app/event/?delivery_state=pending&amp;received=all" id="backlog-pending">2<' in html


def test_during_an_outage_the_oldest_failed_event_is_aged(admin_client, game_key, frozen, make_install):
    store_at(game_key[0], [make_install() for _ in range(3)], NOW - timedelta(minutes=47), state="failed")
    store_at(game_key[0], [make_install()], NOW - timedelta(minutes=5), state="failed")
    store_at(game_key[0], [make_install()], NOW - timedelta(hours=5), state="dead")  # given up: not aged

    response = admin_client.get(DASHBOARD_URL)

    backlog = response.context["dashboard"].backlog
    assert (backlog.pending, backlog.failed) == (0, 4)
    assert backlog.oldest_undelivered_age == timedelta(minutes=47)
    assert 'id="oldest-undelivered">47\xa0minutes<' in response.content.decode()


def test_oldest_undelivered_is_the_older_of_pending_and_failed(game_key, frozen, make_install):
    (failed,) = store_at(game_key[0], [make_install()], NOW - timedelta(minutes=9), state="failed")
    store_at(game_key[0], [make_install()], NOW - timedelta(minutes=3))  # not relayed yet

    assert backlog(now=NOW).oldest_undelivered_age == timedelta(minutes=9)
    DeliveryIssue.objects.filter(event_id=failed.pk).update(received_at=NOW - timedelta(minutes=1))
    assert backlog(now=NOW).oldest_undelivered_age == timedelta(minutes=3)


# -- worker heartbeat and the admin index's pipeline panel ----------------------------------------------------------


def test_the_worker_loop_records_when_it_was_last_seen_even_when_idle(db, frozen):
    assert worker_health(now=NOW).last_seen_at is None

    run_worker(once=True)

    assert Heartbeat.objects.get(sender="worker").last_seen_at == NOW
    health = worker_health(now=NOW + timedelta(seconds=30))
    assert (health.silent_for, health.is_stale, health.last_delivery_at) == (timedelta(seconds=30), False, None)


def test_a_successful_delivery_records_its_time_and_failures_do_not(game_key, moto_firehose, make_install):
    with time_machine.travel(NOW, tick=False):
        store_at(game_key[0], [make_install()], NOW - timedelta(seconds=2))
        assert engine.deliver_due().delivered == 1
    assert worker_health(now=NOW).last_delivery_at == NOW

    later = NOW + timedelta(minutes=10)
    with time_machine.travel(later, tick=False):
        store_at(game_key[0], [make_install()], later)
        with mock.patch.object(firehose.FirehoseDestination, "send", side_effect=DestinationError("down")):
            outage = engine.deliver_due()
        assert (outage.delivered, outage.deferred, outage.outages) == (0, 1, {0})  # waits for the next pass

    assert worker_health(now=later).last_delivery_at == NOW


def test_heartbeats_are_written_at_most_every_few_seconds_and_keep_the_latest(db, django_assert_num_queries):
    with time_machine.travel(NOW, tick=False):
        heartbeat.beat(sender="worker")
    with time_machine.travel(NOW + timedelta(seconds=2), tick=False), django_assert_num_queries(0):
        heartbeat.beat(sender="worker", delivered=True)  # noted, not written yet
    assert Heartbeat.objects.get(sender="worker").last_delivery_at is None
    with time_machine.travel(NOW + timedelta(seconds=6), tick=False):
        heartbeat.beat(sender="worker")

    row = Heartbeat.objects.get(sender="worker")
    assert (row.last_seen_at, row.last_delivery_at) == (NOW + timedelta(seconds=6), NOW + timedelta(seconds=2))


def test_a_process_with_an_older_time_does_not_move_the_heartbeat_back(db):
    Heartbeat.objects.create(sender="worker", last_seen_at=NOW, last_delivery_at=NOW)  # another process, later

    heartbeat.beat(sender="worker", delivered=True, now=NOW - timedelta(seconds=3))

    row = Heartbeat.objects.get(sender="worker")
    assert (row.last_seen_at, row.last_delivery_at) == (NOW, NOW)


def test_a_heartbeat_that_cannot_be_written_does_not_stop_the_worker(db, caplog):
    with mock.patch.object(heartbeat, "_write", side_effect=DatabaseError("locked")):
        heartbeat.beat(sender="worker")

    assert "heartbeat not written sender=worker" in caplog.text
    heartbeat.beat(sender="worker")  # written with the next beat
    assert Heartbeat.objects.filter(sender="worker").exists()


def test_admin_index_shows_the_pipeline_at_a_glance(admin_client, game_key, frozen, make_install):
    store_at(game_key[0], [make_install()], NOW - timedelta(hours=1), state="dead")
    store_at(game_key[0], [make_install()], NOW - timedelta(minutes=12), state="failed")
    store_at(game_key[0], [make_install(), make_install()], NOW - timedelta(minutes=3))  # not relayed yet
    Heartbeat.objects.create(
        sender="worker", last_seen_at=NOW - timedelta(seconds=4), last_delivery_at=NOW - timedelta(seconds=40)
    )

    html = admin_client.get(reverse("admin:index")).content.decode()

    panel = html.split('id="pipeline-module"', 1)[1].split('id="content-main"', 1)[0]
    assert 'href="/admin/events_app/event/?delivery_state=pending&amp;received=all" id="backlog-pending">2<' in panel
    assert 'href="/admin/events_app/event/?delivery_state=failed&amp;received=all" id="backlog-failed">1<' in panel
    assert 'href="/admin/events_app/event/?delivery_state=dead&amp;received=all" id="backlog-dead">1<' in panel
    assert 'href="/admin/events_app/event/?delivery_state=failed&amp;received=all">Failed events</a>' in html
    assert 'href="/admin/events_app/event/?delivery_state=dead&amp;received=all">Dead events</a>' in html
    assert 'id="oldest-undelivered">12\xa0minutes<' in panel
    assert "40 seconds ago</td>" in panel and 'id="last-delivery" title="2026-11-25 15:39:20 UTC"' in panel
    assert 'id="worker-last-seen" title="2026-11-25 15:39:56 UTC">4 seconds ago<' in panel
    assert 'class="worker-alive"' in panel and "worker-warning" not in panel
    assert f'href="{DASHBOARD_URL}" id="dashboard-link"' in panel


def test_admin_index_warns_when_the_worker_has_not_been_seen_for_minutes(admin_client, db, frozen):
    Heartbeat.objects.create(sender="worker", last_seen_at=NOW - timedelta(minutes=7, seconds=10))

    html = admin_client.get(reverse("admin:index")).content.decode()

    assert 'class="worker-stale"' in html
    assert 'id="worker-warning" role="alert">Worker not seen for 7\xa0minutes: failed events are not retried.' in html


def test_admin_index_warns_when_no_worker_was_ever_seen(admin_client, db):
    html = admin_client.get(reverse("admin:index")).content.decode()

    assert 'id="worker-last-seen">never<' in html
    assert "No delivery worker seen yet: failed events are not retried." in html
    assert 'id="last-delivery">never<' in html


def test_dashboard_shows_the_same_worker_state_as_the_index(admin_client, db, frozen):
    Heartbeat.objects.create(sender="worker", last_seen_at=NOW - timedelta(minutes=30))

    html = admin_client.get(DASHBOARD_URL).content.decode()

    assert "Worker not seen for 30\xa0minutes" in html


def test_admin_index_panel_needs_the_permission_to_view_events(client, db):
    user = User.objects.create_user("nobody", password="x-secret-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_game"))
    client.force_login(user)

    html = client.get(reverse("admin:index")).content.decode()

    assert 'id="pipeline-module"' not in html


def test_admin_index_panel_costs_a_fixed_number_of_queries(
    admin_client, game_key, make_install, django_assert_max_num_queries
):
    store_at(game_key[0], [make_install() for _ in range(20)], timezone.now(), state="failed")
    store_at(game_key[0], [make_install() for _ in range(20)], timezone.now())  # not relayed yet

    with django_assert_max_num_queries(12):  # session and user, app list, 4 backlog, 1 heartbeat
        assert admin_client.get(reverse("admin:index")).status_code == 200


def test_revenue_is_charted_per_day_and_game_in_the_base_currency(
    admin_client, game_key, other_game_key, frozen, make_purchase
):
    day = NOW - timedelta(days=1)
    store_at(game_key[0], [make_purchase(), make_purchase()], day, revenue_base=Decimal("5.50"), base_currency="USD")
    store_at(other_game_key[0], [make_purchase()], NOW, revenue_base=Decimal("1.25"), base_currency="USD")
    store_at(other_game_key[0], [make_purchase()], NOW)  # no exchange rate yet

    response = admin_client.get(DASHBOARD_URL)

    html = response.content.decode()
    assert {(b["series"], b["bucket"], Decimal(b["value"])) for b in bars(html, "chart-revenue-purchase")} == {
        ("space-raiders", "Nov 24", Decimal("11")),
        ("moon-miners", "Nov 25", Decimal("1.25")),
    }
    assert 'id="revenue-total">12.25 USD<' in html
    assert 'id="revenue-total-purchase">12.25 USD<' in html
    assert 'id="revenue-total-ad_impression">0.00 USD<' in html
    assert "No ad_impression revenue with a known exchange rate in this period" in html
    assert "Without an exchange rate yet, not included:" in html
    assert '">1 purchase event</a>.' in html


def test_ad_revenue_is_charted_beside_purchase_revenue_per_day_and_game(
    admin_client, game_key, other_game_key, frozen, make_purchase
):
    day = NOW - timedelta(days=2)
    store_at(game_key[0], [make_purchase()], day, revenue_base=Decimal("4.00"), base_currency="USD")
    store_at(
        game_key[0],
        [ad_impression("0.02"), ad_impression("0.03")],
        day,
        revenue_base=Decimal("0.025"),
        base_currency="USD",
    )
    store_at(other_game_key[0], [ad_impression("0.10")], NOW, revenue_base=Decimal("0.10"), base_currency="USD")
    store_at(other_game_key[0], [ad_impression()], NOW)  # no revenue: counted as an event, earns nothing

    response = admin_client.get(DASHBOARD_URL)

    html = response.content.decode()
    assert {(b["series"], b["bucket"], Decimal(b["value"])) for b in bars(html, "chart-revenue-ad_impression")} == {
        ("space-raiders", "Nov 23", Decimal("0.05")),
        ("moon-miners", "Nov 25", Decimal("0.10")),
    }
    assert {(b["series"], b["bucket"]) for b in bars(html, "chart-revenue-purchase")} == {("space-raiders", "Nov 23")}
    assert 'id="revenue-total-purchase">4.00 USD<' in html
    assert 'id="revenue-total-ad_impression">0.15 USD<' in html
    assert 'id="revenue-total">4.15 USD<' in html
    assert "Revenue from ad_impression events per day in USD, by game" in html
    assert "Revenue from ad_impression per day (USD) as a table" in html
    assert 'id="without-rate"' not in html
    one_game = admin_client.get(DASHBOARD_URL, {"game": "moon-miners"}).content.decode()
    assert {b["series"] for b in bars(one_game, "chart-revenue-ad_impression")} == {"moon-miners"}
    assert 'id="revenue-total">0.10 USD<' in one_game


def test_events_without_an_exchange_rate_are_counted_for_purchases_and_ad_impressions(
    admin_client, game_key, other_game_key, frozen, make_purchase
):
    store_at(game_key[0], [make_purchase()], NOW - timedelta(days=40))  # waiting, whatever its date
    store_at(game_key[0], [ad_impression("0.02"), ad_impression("0.03")], NOW)
    store_at(other_game_key[0], [ad_impression("0.05")], NOW)
    store_at(game_key[0], [ad_impression()], NOW)  # no revenue: nothing to wait for

    everything = admin_client.get(DASHBOARD_URL)
    one_game = admin_client.get(DASHBOARD_URL, {"game": "space-raiders"})

    assert everything.context["dashboard"].without_rate == {"purchase": 1, "ad_impression": 3}
    assert one_game.context["dashboard"].without_rate == {"purchase": 1, "ad_impression": 2}
    html = one_game.content.decode()
    assert "Without an exchange rate yet, not included:" in html
    link = html.split('id="without-rate-ad_impression"', 1)[0].rsplit('href="', 1)[1].split('"', 1)[0]
    assert link == (
        "/admin/events_app/event/?event_type=ad_impression&amp;revenue__isnull=False&amp;revenue_base__isnull=True"
        f"&amp;received=all&amp;game__id__exact={game_key[0].game_id}"
    )
    assert 'id="without-rate-ad_impression">2 ad_impression events</a>' in html
    assert 'id="without-rate-purchase">1 purchase event</a>' in html
    listed = admin_client.get(link.replace("&amp;", "&"))
    assert listed.context["cl"].result_count == 2


def test_dashboard_for_one_game_counts_only_its_events(admin_client, game_key, other_game_key, frozen, make_install):
    store_at(game_key[0], [make_install()], NOW - timedelta(hours=1), state="dead")
    store_at(other_game_key[0], [make_install(), make_install()], NOW - timedelta(hours=1), state="failed")
    store_at(other_game_key[0], [make_install()], NOW - timedelta(hours=1), state="dead")
    store_at(game_key[0], [make_install()], NOW - timedelta(minutes=2))  # not relayed yet
    store_at(other_game_key[0], [make_install()], NOW - timedelta(minutes=5))

    response = admin_client.get(DASHBOARD_URL, {"game": "moon-miners"})

    data = response.context["dashboard"]
    assert data.game.slug == "moon-miners"
    assert data.intake_day.accepted == 4
    assert data.intake_month.accepted == 4
    assert data.daily.total("install") == 4
    assert (data.backlog.pending, data.backlog.failed, data.backlog.dead) == (1, 2, 1)
    assert data.backlog.oldest_undelivered_age == timedelta(hours=1)
    assert f"game__id__exact={other_game_key[0].game_id}" in response.content.decode()


def test_dashboard_with_no_events_says_so(admin_client, db):
    html = admin_client.get(DASHBOARD_URL).content.decode()

    assert "No data in this period" in html
    assert 'id="oldest-undelivered">none<' in html


def test_dashboard_needs_the_permission_to_view_events(client, db):
    user = User.objects.create_user("nobody", password="x-secret-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_game"))
    client.force_login(user)

    assert client.get(DASHBOARD_URL).status_code == 403


def test_anonymous_visitors_are_sent_to_the_login_page(client, db):
    response = client.get(reverse("admin:events_app_event_dashboard"))

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


def test_dashboard_is_read_from_indexes_in_a_fixed_number_of_queries(
    admin_client, game_key, frozen, make_install, django_assert_max_num_queries
):
    for days in range(10):
        store_at(game_key[0], [make_install()], NOW - timedelta(days=days))

    with django_assert_max_num_queries(30 * 2 + 25):  # a count per day and type
        assert admin_client.get(DASHBOARD_URL).status_code == 200


# -- the SVG charts -------------------------------------------------------------------------------------------------


def test_chart_escapes_names_and_stacks_series_bottom_up():
    svg = charts.stacked_bar_chart(title="<b>t</b>", labels=["a", "b"], series={"<script>": [1, 2], "second": [3, 0]})

    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    heights = re.findall(r'<rect class="bar" x="[^"]+" y="([^"]+)" width="[^"]+" height="([^"]+)"', svg)
    first, second = (float(y) for y, _ in heights[:2])
    assert second < first  # the second series sits on top of the first


def test_chart_axis_tops_out_at_a_round_number_above_the_largest_stack():
    svg = charts.stacked_bar_chart(title="t", labels=["a"], series={"x": [730], "y": [40]})

    assert re.findall(r'text-anchor="end">([^<]+)<', svg) == ["0", "200", "400", "600", "800"]


def test_empty_chart_says_there_is_no_data():
    svg = charts.stacked_bar_chart(title="t", labels=["a", "b"], series={}, empty_text="Nothing yet")

    assert "Nothing yet" in svg
    assert 'class="bar"' not in svg


def test_dashboard_uses_the_current_time_when_not_given(game_key, make_install):
    data = build_dashboard()

    assert abs(data.now - timezone.now()) < timedelta(seconds=5)
    assert len(data.hourly.buckets) == 24
    assert len(data.daily.buckets) == 30


def test_dashboard_costs_a_fixed_number_of_queries_and_never_counts_the_log(
    admin_client, game_key, other_game_key, frozen, make_install, make_purchase
):
    """The same queries for 4 events as for 200: the charts read EventHour, never a COUNT over the log."""
    counts = []
    for number in (2, 100):
        for key in (game_key[0], other_game_key[0]):
            store_at(key, [make_install() for _ in range(number // 2)], NOW - timedelta(hours=3), state="delivered")
            store_at(key, [make_purchase() for _ in range(number // 2)], NOW - timedelta(days=4))
        for query in ({}, {"game": "moon-miners"}):
            with CaptureQueriesContext(connection) as queries:
                assert admin_client.get(DASHBOARD_URL, query).status_code == 200
            log = connection.ops.quote_name(Event._meta.db_table)
            counting = [q["sql"] for q in queries.captured_queries if log in q["sql"] and "COUNT(" in q["sql"].upper()]
            # Only the backlog's count of the events no relay has passed yet (the relay index) and the count of
            # those waiting for an exchange rate (the partial index of them): never a count over a time range.
            assert all('"shard"' in sql or '"revenue_base" IS NULL' in sql for sql in counting), counting
            assert len(counting) <= 2, counting
            counts.append(len(queries))
    assert counts[0] == counts[2] and counts[1] == counts[3]
    assert max(counts) <= 22
