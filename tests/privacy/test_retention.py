"""Retention: purge_events deletes old delivered events with their attempts, keeps what is not done, prunes by age."""

import threading
import time
import uuid
from datetime import timedelta

import pytest
import requests
from django.core.management import CommandError, call_command
from django.utils import timezone

from bench.purge import seed_events
from events_app.models import (
    AttemptOutcome,
    DeliveryAttempt,
    DeliveryState,
    DuplicateTally,
    Event,
    Game,
    RejectedEvent,
)
from events_app.privacy.retention import purge_events, purge_expired

DAY = timedelta(days=1)


@pytest.fixture
def game(db):
    return Game.objects.create(slug="retention-game")


@pytest.fixture
def make_event(game):
    """Return a builder of stored events: state, age in days, and how many attempts they logged."""

    def build(*, state=DeliveryState.DELIVERED, age_days: float = 40, attempts: int = 1) -> Event:
        received_at = timezone.now() - timedelta(days=age_days)
        event = Event.objects.create(
            game=game,
            event_id=uuid.uuid4(),
            event_type="install",
            player_id="p1",
            occurred_at=received_at,
            received_at=received_at,
            derived_at=received_at,
            payload={"event_type": "install"},
            delivery_state=state,
            attempts=attempts,
        )
        outcome = {DeliveryState.DELIVERED: AttemptOutcome.DELIVERED, DeliveryState.DEAD: AttemptOutcome.DEAD}.get(
            state, AttemptOutcome.FAILED
        )
        DeliveryAttempt.objects.bulk_create(
            DeliveryAttempt(event=event, attempted_at=received_at, outcome=outcome) for _ in range(attempts)
        )
        return event

    return build


def states_left() -> list[str]:
    return sorted(Event.objects.values_list("delivery_state", flat=True))


def test_old_delivered_events_go_with_their_attempts(make_event):
    old = make_event(attempts=3)
    recent = make_event(age_days=5)

    counts = purge_events(older_than_days=30)

    assert (counts.events, counts.attempts) == (1, 3)
    assert list(Event.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not DeliveryAttempt.objects.filter(event_id=old.pk).exists()
    assert DeliveryAttempt.objects.filter(event_id=recent.pk).count() == 1


def test_pending_failed_and_dead_events_stay_however_old(make_event):
    for state in (DeliveryState.PENDING, DeliveryState.FAILED, DeliveryState.DEAD):
        make_event(state=state, age_days=400)

    counts = purge_events(older_than_days=30)

    assert counts.events == 0
    assert states_left() == ["dead", "failed", "pending"]


def test_dead_events_go_only_with_include_dead(make_event):
    make_event(state=DeliveryState.DEAD, age_days=40, attempts=12)
    make_event(state=DeliveryState.PENDING, age_days=40)

    counts = purge_events(older_than_days=30, include_dead=True)

    assert (counts.events, counts.attempts) == (1, 12)
    assert states_left() == ["pending"]


def test_a_dry_run_changes_nothing_and_counts_what_would_go(make_event):
    make_event(attempts=2)
    make_event(state=DeliveryState.DEAD)
    make_event(age_days=1)

    dry = purge_expired(older_than_days=30, include_dead=True, dry_run=True)
    assert Event.objects.count() == 3
    assert DeliveryAttempt.objects.count() == 4

    real = purge_expired(older_than_days=30, include_dead=True)
    assert (dry.events, dry.attempts) == (real.events, real.attempts) == (2, 3)
    assert Event.objects.count() == 1


def test_events_are_deleted_in_id_ordered_batches_one_log_line_each(make_event, caplog):
    for _ in range(5):
        make_event()
    kept = make_event(state=DeliveryState.PENDING)
    make_event()

    with caplog.at_level("INFO", logger="events_app.privacy.retention"):
        counts = purge_events(older_than_days=30, batch_size=2)

    assert counts.events == 6
    assert list(Event.objects.values_list("pk", flat=True)) == [kept.pk]
    batch_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("purge batch table=events")]
    # 7 rows read 2 at a time: batches of 2, 2, 1 (+ the pending one) and 1.
    assert [line.split(" events=")[1].split()[0] for line in batch_lines] == ["2", "2", "1", "1"]


def test_the_scan_stops_at_the_first_batch_with_nothing_old(make_event, django_assert_max_num_queries):
    for _ in range(10):
        make_event(age_days=1)

    # One read of the first batch and one index lookup for an old event further on; nothing written.
    with django_assert_max_num_queries(2):
        assert purge_events(older_than_days=30, batch_size=3).events == 0


def test_old_events_stored_after_young_ones_are_found_too(make_event):
    young = [make_event(age_days=1) for _ in range(5)]
    make_event(age_days=40)  # ids out of time order: loaded from elsewhere, or a clock far off
    more_young = make_event(age_days=1)
    make_event(age_days=50)

    assert purge_events(older_than_days=30, batch_size=2).events == 2
    assert set(Event.objects.values_list("pk", flat=True)) == {event.pk for event in [*young, more_young]}


def test_a_purged_event_id_is_new_again(api, make_install, settings):
    event = make_install()
    assert api.post("/v1/events", event, format="json").json()["status"] == "accepted"
    Event.objects.update(delivery_state=DeliveryState.DELIVERED, received_at=timezone.now() - 40 * DAY)

    purge_events(older_than_days=30)

    # The idempotency window is what is kept.
    assert api.post("/v1/events", event, format="json").json()["status"] == "accepted"


def test_other_tables_are_pruned_by_their_own_age(make_event, game, settings):
    settings.EVENTS_ATTEMPT_RETENTION_DAYS = 10
    settings.EVENTS_DUPLICATE_TALLY_RETENTION_DAYS = 20
    settings.EVENTS_REJECTION_RETENTION_DAYS = 20
    dead = make_event(state=DeliveryState.DEAD, age_days=40, attempts=4)  # kept, but its attempts are old
    now = timezone.now()
    DuplicateTally.objects.create(game=game, received_at=now - 25 * DAY, duplicates=3)
    DuplicateTally.objects.create(game=game, received_at=now - 5 * DAY, duplicates=1)
    RejectedEvent.objects.create(game=game, received_at=now - 25 * DAY, errors={})
    RejectedEvent.objects.create(game=game, received_at=now - 5 * DAY, errors={})

    counts = purge_expired(older_than_days=30)

    assert (counts.events, counts.attempts, counts.duplicate_tallies, counts.rejected_events) == (0, 4, 1, 1)
    assert Event.objects.filter(pk=dead.pk, attempts=4).exists()
    assert list(DuplicateTally.objects.values_list("duplicates", flat=True)) == [1]
    assert RejectedEvent.objects.count() == 1


def test_attempts_of_events_a_run_keeps_for_their_age_stay(make_event, settings):
    settings.EVENTS_ATTEMPT_RETENTION_DAYS = 10
    kept = make_event(age_days=40, attempts=2)

    counts = purge_expired(older_than_days=90)

    assert (counts.events, counts.attempts) == (0, 0)
    assert DeliveryAttempt.objects.filter(event=kept).count() == 2


def test_retention_days_is_the_default_age(make_event, settings):
    settings.EVENTS_RETENTION_DAYS = 50
    make_event(age_days=40)
    assert purge_expired().events == 0
    settings.EVENTS_RETENTION_DAYS = 35
    assert purge_expired().events == 1


def test_command_prints_what_it_deleted_or_would(make_event, capsys):
    make_event(attempts=2)

    call_command("purge_events", "--older-than", "30", "--dry-run")
    assert capsys.readouterr().out.strip() == "would delete events=1 attempts=2 duplicate_tallies=0 rejected_events=0"
    assert Event.objects.count() == 1

    call_command("purge_events", "--older-than", "30")
    assert capsys.readouterr().out.strip() == "deleted events=1 attempts=2 duplicate_tallies=0 rejected_events=0"
    assert Event.objects.count() == 0


def test_command_refuses_a_negative_age(db):
    with pytest.raises(CommandError, match="--older-than"):
        call_command("purge_events", "--older-than", "-1")


@pytest.mark.e2e
def test_requests_keep_succeeding_while_a_purge_runs(deployment):
    """Ingest under gunicorn while purge_events deletes 10,000 old delivered events in batches of 500."""
    key = deployment.create_key("retention-game")
    seed_events(deployment.env["DATABASE_URL"], game_slug="retention-game", count=10_000, age_days=40)
    url = deployment.serve(workers=2, EVENTS_INLINE_DELIVERY="0")
    statuses: list[int] = []
    slowest = [0.0]
    stop = threading.Event()

    def post_events():
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {key}"
            while not stop.is_set():
                event = {"event_type": "install", "player_id": "p1", "occurred_at": "2026-01-01T00:00:00Z"}
                started = time.monotonic()
                statuses.append(session.post(f"{url}/v1/events", json=event, timeout=30).status_code)
                slowest[0] = max(slowest[0], time.monotonic() - started)

    clients = [threading.Thread(target=post_events) for _ in range(2)]
    for client in clients:
        client.start()
    try:
        time.sleep(0.5)
        result = deployment.manage("purge_events", "--older-than", "30", "--batch-size", "500")
        time.sleep(0.5)
    finally:
        stop.set()
        for client in clients:
            client.join()

    assert result.stdout.split()[:3] == ["deleted", "events=10000", "attempts=10000"]
    assert statuses and set(statuses) == {202}, f"{len(statuses)} requests, slowest {slowest[0]:.2f} s"
    stored = deployment.query("SELECT COUNT(*) FROM events_app_event")[0][0]
    assert stored == len(statuses)
