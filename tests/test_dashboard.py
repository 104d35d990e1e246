"""The pipeline dashboard: events over time by type, intake, delivery backlog, revenue, and its SVG charts."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from events_app import charts
from events_app.dashboard import build_dashboard
from events_app.ingest import ingest_events
from events_app.keys import issue_api_key
from events_app.models import DuplicateTally, Event, RejectedEvent

NOW = datetime(2026, 11, 25, 15, 40, tzinfo=UTC)
DASHBOARD_URL = reverse("admin:events_app_event_dashboard")


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def other_game_key(db):
    return issue_api_key(game_slug="moon-miners", name="tests")


def store_at(api_key, raw_events: list[dict], received_at: datetime, **fields) -> list[Event]:
    """Ingest events as if received at `received_at` (occurred a minute before), then set `fields` on them."""
    occurred = (received_at - timedelta(minutes=1)).isoformat()
    outcome = ingest_events(
        api_key=api_key, raw_events=[{**e, "occurred_at": occurred} for e in raw_events], received_at=received_at
    )
    assert outcome.rejected == 0, outcome.results
    events = Event.objects.filter(event_id__in=[r["event_id"] for r in outcome.results])
    if fields:
        events.update(**fields)
    return list(events)


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


def test_dashboard_charts_events_per_hour_and_per_day_by_type(admin_client, game_key, frozen, make_install,
                                                              make_purchase):  # fmt: skip
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


def test_dashboard_shows_accepted_duplicate_and_rejected_counts(admin_client, api, game_key, other_game_key, frozen,
                                                                make_install):  # fmt: skip
    store_at(game_key[0], [make_install() for _ in range(3)], NOW - timedelta(hours=1))
    store_at(game_key[0], [make_install()], NOW - timedelta(days=5))
    for received_at in (NOW - timedelta(hours=3), NOW - timedelta(days=10)):
        RejectedEvent.objects.create(game=game_key[0].game, received_at=received_at, errors={"player_id": ["bad"]})
    retried = [make_install(), make_install()]
    assert api.post("/v1/events/batch", {"events": retried}, format="json").json()["accepted"] == 2
    assert api.post("/v1/events/batch", {"events": retried}, format="json").json()["duplicates"] == 2
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


def test_dashboard_shows_the_backlog_and_the_age_of_the_oldest_pending_event(admin_client, game_key, frozen,
                                                                             make_install):  # fmt: skip
    store_at(game_key[0], [make_install()], NOW - timedelta(hours=2, minutes=5))
    store_at(game_key[0], [make_install()], NOW - timedelta(minutes=1))
    store_at(game_key[0], [make_install(), make_install()], NOW - timedelta(hours=1), delivery_state="failed")
    store_at(game_key[0], [make_install()], NOW - timedelta(hours=1), delivery_state="dead")
    store_at(game_key[0], [make_install()], NOW - timedelta(hours=1), delivery_state="delivered")

    response = admin_client.get(DASHBOARD_URL)

    backlog = response.context["dashboard"].backlog
    assert (backlog.pending, backlog.failed, backlog.dead) == (2, 2, 1)
    assert backlog.oldest_pending_age == timedelta(hours=2, minutes=5)
    html = response.content.decode()
    assert 'id="oldest-pending">2\xa0hours, 5\xa0minutes<' in html
    assert 'href="/admin/events_app/event/?delivery_state__exact=failed" id="backlog-failed">2<' in html


def test_revenue_is_charted_per_day_and_game_in_the_base_currency(admin_client, game_key, other_game_key, frozen,
                                                                  make_purchase):  # fmt: skip
    day = NOW - timedelta(days=1)
    store_at(game_key[0], [make_purchase(), make_purchase()], day, revenue_base=Decimal("5.50"), base_currency="USD")
    store_at(other_game_key[0], [make_purchase()], NOW, revenue_base=Decimal("1.25"), base_currency="USD")
    store_at(other_game_key[0], [make_purchase()], NOW)  # no exchange rate yet

    response = admin_client.get(DASHBOARD_URL)

    html = response.content.decode()
    assert {(b["series"], b["bucket"], Decimal(b["value"])) for b in bars(html, "chart-revenue")} == {
        ("space-raiders", "Nov 24", Decimal("11")),
        ("moon-miners", "Nov 25", Decimal("1.25")),
    }
    assert 'id="revenue-total">12.25 USD<' in html
    assert "1 purchase without an exchange rate yet, not included." in html


def test_dashboard_for_one_game_counts_only_its_events(admin_client, game_key, other_game_key, frozen, make_install):
    store_at(game_key[0], [make_install()], NOW - timedelta(hours=1), delivery_state="dead")
    store_at(other_game_key[0], [make_install(), make_install()], NOW - timedelta(hours=1), delivery_state="dead")

    response = admin_client.get(DASHBOARD_URL, {"game": "moon-miners"})

    data = response.context["dashboard"]
    assert data.game.slug == "moon-miners"
    assert data.intake_day.accepted == 2
    assert data.intake_month.accepted == 2
    assert data.daily.total("install") == 2
    assert data.backlog.dead == 2
    assert f"game__id__exact={other_game_key[0].game_id}" in response.content.decode()


def test_dashboard_with_no_events_says_so(admin_client, db):
    html = admin_client.get(DASHBOARD_URL).content.decode()

    assert "No data in this period" in html
    assert 'id="oldest-pending">none<' in html


def test_dashboard_needs_the_permission_to_view_events(client, db):
    user = User.objects.create_user("nobody", password="x-secret-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_game"))
    client.force_login(user)

    assert client.get(DASHBOARD_URL).status_code == 403


def test_dashboard_is_read_from_indexes_in_a_fixed_number_of_queries(admin_client, game_key, frozen, make_install,
                                                                     django_assert_max_num_queries):  # fmt: skip
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
