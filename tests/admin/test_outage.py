"""An outage at a glance: the panel's amber and red, the destination's last error and since when, the delivery chart."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from events_app.admin import outage
from events_app.delivery import heartbeat
from events_app.models import CallOutcome, DeliveryCall, DeliveryState, Event, Heartbeat
from tests.admin.helpers import set_state, store

NOW = datetime(2026, 12, 7, 3, 0, 30, tzinfo=UTC)
INDEX_URL = reverse("admin:index")
DASHBOARD_URL = reverse("admin:events_app_event_dashboard")
COULD_NOT_CONNECT = "EndpointConnectionError: Could not connect to the endpoint URL"


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def worker_seen(db, frozen):
    Heartbeat.objects.create(sender=heartbeat.WORKER, last_seen_at=NOW - timedelta(seconds=3), last_delivery_at=NOW)


def call(at: datetime, outcome: str = CallOutcome.DELIVERED, *, events: int = 10, failed: int = 0, error: str = ""):
    if outcome == CallOutcome.FAILED:
        failed = events
    return DeliveryCall.objects.create(
        called_at=at,
        emitted_at=at,
        destination="firehose",
        sender="relay",
        events=events,
        failed_events=failed,
        records=events,
        bytes=100 * events,
        outcome=outcome,
        error=error,
    )


def received(events, ago: timedelta) -> None:
    Event.objects.filter(pk__in=[event.pk for event in events]).update(received_at=NOW - ago)


def panel(client) -> str:
    return client.get(INDEX_URL).content.decode()


def level_of(page: str) -> str:
    start = page.index('data-level="') + len('data-level="')
    return page[start : page.index('"', start)]


def test_a_healthy_pipeline_is_green_and_says_so(operator, worker_seen, game_key, make_install):
    events = store(game_key[0], [make_install()])
    received(events, timedelta(seconds=2))  # pending a moment: the relay's normal lag

    page = panel(operator)

    assert level_of(page) == "ok"
    assert "Delivering normally." in page
    assert 'id="destination-error"' not in page


def test_the_outage_of_the_issue_163_failed_the_oldest_21_seconds_old_is_red(
    operator, worker_seen, game_key, make_install
):
    events = store(game_key[0], [make_install(player_id=f"p{i}") for i in range(163)])
    set_state(events, DeliveryState.FAILED, attempts=1)
    received(events, timedelta(seconds=21))

    page = panel(operator)

    assert level_of(page) == "red"
    assert "Delivery outage: 163 failed." in page


@pytest.mark.parametrize(
    ("failed", "age", "level"),
    [
        (0, timedelta(seconds=59), "ok"),
        (0, timedelta(seconds=60), "amber"),
        (0, timedelta(minutes=10), "red"),
        (1, timedelta(seconds=1), "amber"),
        (3, timedelta(seconds=1), "red"),
    ],
)
def test_the_level_follows_the_oldest_undelivered_age_and_the_failed_count(
    operator, worker_seen, game_key, make_install, settings, failed, age, level
):
    settings.EVENTS_ALERT_RED_FAILED = 3
    events = store(game_key[0], [make_install(player_id=f"p{i}") for i in range(max(failed, 1))])
    if failed:
        set_state(events, DeliveryState.FAILED, attempts=1)
    received(events, age)

    assert level_of(panel(operator)) == level


def test_dead_events_alone_leave_the_pipeline_green(operator, worker_seen, game_key, make_install):
    events = store(game_key[0], [make_install()])
    set_state(events, DeliveryState.DEAD, attempts=12)
    received(events, timedelta(hours=5))

    assert level_of(panel(operator)) == "ok"


def test_no_worker_seen_is_red(operator, db, frozen):
    page = panel(operator)

    assert level_of(page) == "red"
    assert "no delivery worker seen" in page


def test_the_panel_says_the_destinations_error_and_since_when_it_fails(operator, worker_seen):
    call(NOW - timedelta(minutes=9))
    first = call(NOW - timedelta(minutes=8), CallOutcome.FAILED, error="ServiceUnavailableException: Slow down.")
    call(NOW - timedelta(minutes=1), CallOutcome.PARTIAL, failed=3, error=COULD_NOT_CONNECT)

    page = panel(operator)
    dashboard = operator.get(DASHBOARD_URL).content.decode()

    assert f'Firehose: <span class="last-error-text" id="destination-error-text">{COULD_NOT_CONNECT}</span>' in page
    assert f"failing since {first.called_at:%Y-%m-%d %H:%M:%S} UTC, last at 2026-12-07 02:59:30 UTC" in page
    assert COULD_NOT_CONNECT in dashboard and "failing since 2026-12-07 02:52:30 UTC" in dashboard


def test_after_a_recovery_the_last_error_says_since_when_it_delivers_again(worker_seen):
    call(NOW - timedelta(minutes=5), CallOutcome.FAILED, error=COULD_NOT_CONNECT)
    call(NOW - timedelta(minutes=4))

    error = outage.destination_error(now=NOW)

    assert (error.failing_since, error.recovered_at) == (None, NOW - timedelta(minutes=4))


def test_an_error_older_than_the_charts_window_is_not_shown(worker_seen):
    call(NOW - timedelta(hours=4), CallOutcome.FAILED, error=COULD_NOT_CONNECT)

    assert outage.destination_error(now=NOW) is None


def test_delivered_and_failed_per_minute_come_from_the_destination_calls(worker_seen):
    call(NOW - timedelta(minutes=2, seconds=10), events=40)
    call(NOW - timedelta(minutes=2, seconds=5), CallOutcome.PARTIAL, events=10, failed=4)
    call(NOW - timedelta(seconds=20), CallOutcome.FAILED, events=25)
    call(NOW - timedelta(hours=3, minutes=1), events=1000)  # before the window

    series = outage.deliveries_per_minute(now=NOW)

    assert len(series.buckets) == 180 and series.buckets[-1] == NOW.replace(second=0)
    assert (series.series["delivered"][-3], series.series["failed"][-3]) == (46, 4)
    assert (series.series["delivered"][-1], series.series["failed"][-1]) == (0, 25)
    assert (series.total("delivered"), series.total("failed")) == (46, 29)


def test_the_dashboard_draws_the_delivery_chart(operator, worker_seen):
    call(NOW - timedelta(minutes=3), events=12)
    call(NOW - timedelta(minutes=1), CallOutcome.FAILED, events=5)

    page = operator.get(DASHBOARD_URL).content.decode()

    assert "Events delivered and failed per minute, last 3 hours, all games" in page
    assert 'data-series="delivered" data-bucket="02:57" data-value="12"' in page
    assert 'data-series="failed" data-bucket="02:59" data-value="5"' in page


def test_the_thresholds_are_settings(settings):
    settings.EVENTS_ALERT_AMBER_AGE_SECONDS = 5
    settings.EVENTS_ALERT_CHART_HOURS = 1

    limits = outage.thresholds()

    assert (limits.amber_age, limits.chart_hours, limits.red_failed) == (timedelta(seconds=5), 1, 100)
