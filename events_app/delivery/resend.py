"""Operator resends: queue events to be sent again, recorded on their delivery issue and in the admin log.

A resend does not send anything itself: each event's delivery issue becomes pending,
due now, with a fresh copy of its line and a fresh retry allowance (the retry worker
gives up at EVENTS_MAX_ATTEMPTS, and a resent dead event must get its retries again),
and `deliver_events` sends it.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import QuerySet
from django.utils import timezone

from events_app.db import write_transaction
from events_app.delivery.issues import queue_again
from events_app.models import Event

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000  # events per write transaction: short enough never to hold the worker up for long
LOG_MESSAGE = "Resent to Firehose (retry state reset)."


@dataclass
class ResendCounts:
    """How many events were queued again, and how many were left alone, and why."""

    resent: int = 0
    pending: int = 0  # already pending, or being sent right now
    delivered_since_resend: int = 0  # resent before and delivered since: a repeated resend leaves them

    @property
    def skipped(self) -> int:
        return self.pending + self.delivered_since_resend

    @property
    def total(self) -> int:
        return self.resent + self.skipped


def resend_events(
    *,
    queryset: QuerySet[Event],
    user,
    batch_size: int = BATCH_SIZE,
    now: datetime | None = None,
    again: bool = False,
) -> ResendCounts:
    """Queue every event of `queryset` for sending again; return the counts.

    Each resent event's delivery issue becomes `pending`, due now, with `attempts`
    back to 0 and its error and lease cleared, and the event gets an admin LogEntry
    in `user`'s name. Events still pending (the relay has not passed them, or their
    issue is pending or leased by a sender right now) are skipped: they are about to
    be sent anyway, and taking an issue from its sender would leave that sender
    unable to record what happened. Unless `again`, so are events
    delivered since an earlier resend: repeating a bulk resend (a second click, the
    same filter a minute later) must not send them a second time; an event's own
    Resend button passes `again`, as someone asked for that event by name.

    Works through the matching ids in ascending batches, one short transaction each,
    so resending 100,000 events never holds the delivery worker up for long.
    """
    counts = ResendCounts()
    ids = sorted(queryset.order_by().values_list("pk", flat=True))
    for start in range(0, len(ids), batch_size):
        batch = ids[start : start + batch_size]
        resent, delivered_since = _resend_batch(ids=batch, user=user, now=now or timezone.now(), again=again)
        counts.resent += resent
        counts.delivered_since_resend += delivered_since
        counts.pending += len(batch) - resent - delivered_since
    logger.info(
        "resend by user=%s resent=%d pending=%d delivered_since_resend=%d",
        getattr(user, "pk", None),
        counts.resent,
        counts.pending,
        counts.delivered_since_resend,
    )
    return counts


def resend_event(*, event: Event, user) -> ResendCounts:
    """Queue one event for sending again, even if delivered since an earlier resend (see resend_events)."""
    return resend_events(queryset=Event.objects.filter(pk=event.pk), user=user, again=True)


def _resend_batch(*, ids: list[int], user, now: datetime, again: bool) -> tuple[int, int]:
    """Queue the resendable events among `ids` again; return (resent, delivered since a resend)."""
    with write_transaction():
        events = list(
            Event.objects.filter(pk__in=ids)
            .order_by("pk")
            .only("pk", "game_id", "event_type", "event_id", "received_at", "payload")
        )
        counts, queued = queue_again(events=events, now=now, again=again)
        _log_admin_changes(events=queued, user=user)
    return counts.queued, counts.delivered_since_resend


def _log_admin_changes(*, events: Iterable[Event], user) -> None:
    """Add one admin LogEntry per event, so each event's history page shows who resent it."""
    if user is None or user.pk is None:
        return
    content_type_id = ContentType.objects.get_for_model(Event).pk
    LogEntry.objects.bulk_create(
        [
            LogEntry(
                user_id=user.pk,
                content_type_id=content_type_id,
                object_id=str(event.pk),
                object_repr=str(event)[:200],
                action_flag=CHANGE,
                change_message=LOG_MESSAGE,
            )
            for event in events
        ],
        batch_size=500,
    )
