"""Delivery status: the backlog still to send and when a delivery worker was last seen.

One definition of "the oldest undelivered event" for the dashboard, the admin index
and the `/metrics` gauges. Both read indexes only: the backlog counts and fronts of
(delivery_state, received_at), the worker health one aggregate over the heartbeat rows.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Q
from django.utils import timezone

from events_app.delivery import heartbeat
from events_app.models import DUE_STATES, DeliveryState, Event, Game, Heartbeat

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
    events = Event.objects.order_by() if game is None else Event.objects.order_by().filter(game=game)
    states = (DeliveryState.PENDING, DeliveryState.FAILED, DeliveryState.DEAD)
    counts = dict(
        events.filter(delivery_state__in=states).values_list("delivery_state").annotate(n=Count("pk")).order_by()
    )
    # The front of the (delivery_state, received_at) index once per state still to send:
    # two seeks, where one query over both states would merge or sort them.
    firsts = (
        events.filter(delivery_state=state).order_by("received_at").values_list("received_at", flat=True).first()
        for state in DUE_STATES
    )
    oldest = [first for first in firsts if first is not None]
    return Backlog(
        pending=counts.get(DeliveryState.PENDING, 0),
        failed=counts.get(DeliveryState.FAILED, 0),
        dead=counts.get(DeliveryState.DEAD, 0),
        oldest_undelivered_at=min(oldest, default=None),
        now=now,
    )


def worker_health(*, now: datetime | None = None) -> WorkerHealth:
    """Return when a delivery worker was last seen and when any sender last delivered an event (one query)."""
    times = Heartbeat.objects.aggregate(
        last_seen=Max("last_seen_at", filter=Q(sender=heartbeat.WORKER)), last_delivery=Max("last_delivery_at")
    )
    return WorkerHealth(
        last_seen_at=times["last_seen"], last_delivery_at=times["last_delivery"], now=now or timezone.now()
    )
