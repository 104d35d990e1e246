"""Upgrading an install to the log (migration 0009): nothing undelivered is lost, nothing delivered is sent again."""

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from events_app.delivery import engine
from events_app.delivery.status import backlog
from events_app.models import DeliveryCursor, DeliveryIssue, Event, IssueState
from tests.delivery.test_relay import FakeDestination
from tests.support.partitions import add_default_partitions

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("events_app", "0008_linked_identities")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes("events_app")


def test_undelivered_events_become_issues_and_the_relay_starts_past_every_event():
    old = migrate(BEFORE)
    Game = old.get_model("events_app", "Game")
    OldEvent = old.get_model("events_app", "Event")
    DeliveryAttempt = old.get_model("events_app", "DeliveryAttempt")
    game = Game.objects.create(slug="upgraded")
    now = timezone.now()
    states = {"delivered": 3, "pending": 2, "failed": 1, "dead": 1}
    for state, count in states.items():
        for index in range(count):
            event_id = uuid.uuid4()
            event = OldEvent.objects.create(
                game=game,
                event_id=event_id,
                event_type="install",
                player_id=f"{state}-{index}",
                occurred_at=now,
                received_at=now,
                derived_at=now,
                payload={"event_id": str(event_id), "player_id": f"{state}-{index}", "event_type": "install"},
                delivery_state=state,
                attempts=0 if state == "pending" else 3,
                next_attempt_at=now if state in ("pending", "failed") else None,
                last_error="throttled" if state in ("failed", "dead") else "",
            )
            if state != "pending":
                DeliveryAttempt.objects.create(event=event, attempted_at=now, outcome=state)

    migrate(latest())
    add_default_partitions()  # as the suite's database had it: the next tests store events of any date

    issues = {issue.event.player_id: issue for issue in DeliveryIssue.objects.select_related("event")}
    assert sorted(issues) == ["dead-0", "failed-0", "pending-0", "pending-1"]
    assert (issues["failed-0"].state, issues["failed-0"].attempts, issues["failed-0"].last_error) == (
        IssueState.FAILED,
        3,
        "throttled",
    )
    assert issues["dead-0"].state == IssueState.DEAD
    assert issues["pending-0"].payload["player_id"] == "pending-0"
    assert DeliveryCursor.objects.get(shard=0).last_event == Event.objects.order_by("-pk").first().pk
    assert backlog().pending == 2 and backlog().failed == 1 and backlog().dead == 1

    destination = FakeDestination()
    engine.deliver_due(destination=destination)
    sent = sorted(line["player_id"] for line in destination.lines)
    assert sent == ["failed-0", "pending-0", "pending-1"]  # never a delivered one again, never the dead one
