"""Delivery status: the backlog still to send and when a delivery worker was last seen.

One definition of "the oldest undelivered event" for the dashboard, the admin index
and the `/metrics` gauges. The backlog is what no relay has passed yet (the log past
each shard's cursor: the relay lag) plus the delivery issues not yet delivered; the
worker health one aggregate over the heartbeat rows.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Exists, Max, Min, OuterRef, Q
from django.utils import timezone

from events_app import logstore
from events_app.delivery import heartbeat
from events_app.models import DeliveryCursor, DeliveryIssue, DeliveryState, Event, Game, Heartbeat, IssueState

# A worker beats every loop (at least every second when idle, written every few seconds):
# two minutes of silence is no slow batch, the worker is gone or stuck.
WORKER_STALE_AFTER = timedelta(minutes=2)


@dataclass
class Backlog:
    """Events not yet delivered, by state, and how long the oldest undelivered one (pending or failed) has waited."""

    pending: int
    failed: int
    dead: int
    # Failed events count: in an outage every event fails, and the age must still grow.
    oldest_undelivered_at: datetime | None
    now: datetime

    @property
    def oldest_undelivered_age(self) -> timedelta | None:
        if self.oldest_undelivered_at is None:
            return None
        return max(self.now - self.oldest_undelivered_at, timedelta(0))


@dataclass
class WorkerHealth:
    """When a delivery worker last ran its loop and when any sender last delivered, from the heartbeat rows."""

    last_seen_at: datetime | None
    last_delivery_at: datetime | None
    now: datetime

    @property
    def silent_for(self) -> timedelta | None:
        """Return how long no worker has been seen, or None if one never was."""
        return None if self.last_seen_at is None else max(self.now - self.last_seen_at, timedelta(0))

    @property
    def is_stale(self) -> bool:
        """Return True if no worker was seen within WORKER_STALE_AFTER (or ever): nothing retries failed events."""
        return self.silent_for is None or self.silent_for > WORKER_STALE_AFTER


def backlog(*, game: Game | None = None, now: datetime | None = None) -> Backlog:
    """Return the undelivered events by state and the time the oldest one still to send was received."""
    now = now or timezone.now()
    lag = relay_lag(game=game)
    issues = DeliveryIssue.objects.order_by() if game is None else DeliveryIssue.objects.order_by().filter(game=game)
    counts = dict(
        issues.filter(state__in=[IssueState.PENDING, IssueState.FAILED, IssueState.DEAD])
        .values_list("state")
        .annotate(n=Count("pk"))
        .order_by()
    )
    oldest_issue = issues.filter(state__in=[IssueState.PENDING, IssueState.FAILED]).aggregate(first=Min("received_at"))[
        "first"
    ]
    oldest = [moment for moment in (lag.oldest_received_at, oldest_issue) if moment is not None]
    return Backlog(
        pending=lag.events + counts.get(IssueState.PENDING, 0),
        failed=counts.get(IssueState.FAILED, 0),
        dead=counts.get(IssueState.DEAD, 0),
        oldest_undelivered_at=min(oldest, default=None),
        now=now,
    )


@dataclass
class RelayLag:
    """How far the relays are behind the log: events not yet passed, and when the first of them was received."""

    events: int
    oldest_received_at: datetime | None


def relay_lag(*, game: Game | None = None) -> RelayLag:
    """Return the events no relay has passed yet (read through each shard's relay index) and the oldest's arrival."""
    # An event with an issue is counted by its issue (reconvert queues one even before the relay passes it).
    waiting = (
        Event.objects.order_by()
        .filter(logstore.not_relayed(list(DeliveryCursor.objects.all())))
        # NOT EXISTS, not NOT IN: an anti-join on the issues' event index, whatever their number.
        .exclude(Exists(DeliveryIssue.objects.filter(event_id=OuterRef("pk"))))
    )
    if game is not None:
        waiting = waiting.filter(game=game)
    figures = waiting.aggregate(events=Count("pk"), first=Min("received_at"))
    return RelayLag(events=figures["events"], oldest_received_at=figures["first"])


def worker_health(*, now: datetime | None = None) -> WorkerHealth:
    """Return when a delivery worker was last seen and when any sender last delivered an event (one query)."""
    times = Heartbeat.objects.aggregate(
        last_seen=Max("last_seen_at", filter=Q(sender=heartbeat.WORKER)), last_delivery=Max("last_delivery_at")
    )
    return WorkerHealth(
        last_seen_at=times["last_seen"], last_delivery_at=times["last_delivery"], now=now or timezone.now()
    )


def delivery_state(event: Event) -> str:
    """Return an event's delivery state (a DeliveryState value), derived from its issue and the relays' cursors.

    An event with a delivery issue has the issue's state (a resent one is pending
    until sent); without one it is pending until its shard's relay has passed it, and
    delivered after. Annotations of the admin's list (`issue_state`, `waiting`) are
    used when present, saving the two queries.
    """
    if hasattr(event, "issue_state"):
        issue_state = event.issue_state
    else:
        issue = delivery_issue(event)
        issue_state = None if issue is None else issue.state
    if issue_state is not None:
        return DeliveryState.PENDING if issue_state == IssueState.PENDING else issue_state
    waiting = getattr(event, "waiting", None)
    if waiting is None:
        cursors = list(DeliveryCursor.objects.all())
        waiting = Event.objects.filter(pk=event.pk).filter(logstore.not_relayed(cursors)).exists()
    return DeliveryState.PENDING if waiting else DeliveryState.DELIVERED


def delivery_issue(event: Event) -> DeliveryIssue | None:
    """Return the event's delivery issue (with the call that delivered it), or None; read once per event object."""
    if not hasattr(event, "_delivery_issue"):
        event._delivery_issue = DeliveryIssue.objects.filter(event_id=event.pk).select_related("delivered_by").first()
    return event._delivery_issue
