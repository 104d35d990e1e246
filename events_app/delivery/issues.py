"""Delivery issues: the one row an event gets when the relay could not deliver it, or when it is sent again.

The relay opens them (failed: retried later with backoff; dead: given up on at
once, for a line no record can hold or an error the destination calls permanent).
An operator's resend and reconvert's corrected line queue an event again: its issue
becomes pending, due now, with a fresh copy of the line and a fresh retry allowance.
The retry worker (events_app.delivery.retry) drains them.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from events_app import conf, logstore
from events_app.delivery.destinations.base import RecordError
from events_app.delivery.sending import retry_delay
from events_app.models import DeliveryCall, DeliveryCursor, DeliveryIssue, Event, IssueState


@dataclass
class Opened:
    """How many issues a relay pass opened, by state."""

    failed: int = 0
    dead: int = 0


def open_issues(
    failures: Sequence[tuple[logstore.LogRow, RecordError]],
    *,
    opened_at: datetime,
    call_of: dict[int, DeliveryCall] | None = None,
) -> Opened:
    """Open an issue for each event the relay could not deliver, in the caller's transaction; return the counts."""
    opened = Opened()
    issues = []
    max_attempts = conf.max_attempts()
    # An event may have an issue already (reconvert queues a corrected line even before
    # the relay passes it): that issue carries the newer line and goes on its own.
    have = set(
        DeliveryIssue.objects.filter(event_id__in=[row.pk for row, _ in failures]).values_list("event_id", flat=True)
    )
    for row, error in failures:
        if row.pk in have:
            continue
        gave_up = error.permanent or max_attempts <= 1
        issues.append(
            DeliveryIssue(
                event_id=row.pk,
                game_id=row.game_id,
                received_at=row.received_at,
                payload=row.payload,
                state=IssueState.DEAD if gave_up else IssueState.FAILED,
                attempts=1,
                next_attempt_at=None if gave_up else opened_at + timedelta(seconds=retry_delay(1)),
                last_error=error.message[:2000],
                opened_at=opened_at,
            )
        )
        if gave_up:
            opened.dead += 1
        else:
            opened.failed += 1
    DeliveryIssue.objects.bulk_create(issues, batch_size=500)
    return opened


@dataclass
class Queued:
    """What queue_again did with the events it was given."""

    queued: int = 0
    pending: int = 0  # not relayed yet, or their issue is pending or being sent right now: going out anyway
    delivered_since_resend: int = 0  # resent before and delivered since: a repeated resend leaves them


def queue_again(
    *, events: Sequence[Event], now: datetime, again: bool, force: bool = False
) -> tuple[Queued, list[Event]]:
    """Make each event's issue pending and due now, with its current line; return the counts and the events queued.

    Call inside a write transaction. Events the relay has not passed yet are left
    alone (it will send their current line), as are those whose issue is pending or
    leased by a sender right now. Unless `again`, so are events delivered since an
    earlier resend (a repeated bulk resend must not send them twice). With `force`
    (a corrected line), every event is queued: a sender holding the old line loses
    its lease, and a pending issue takes the new line.
    """
    counts = Queued()
    if not events:
        return counts, []
    ids = [event.pk for event in events]
    not_relayed = set(
        Event.objects.filter(pk__in=ids)
        .filter(logstore.not_relayed(list(DeliveryCursor.objects.all())))
        .values_list("pk", flat=True)
    )
    issues = {issue.event_id: issue for issue in DeliveryIssue.objects.filter(event_id__in=ids).select_for_update()}
    queued: list[Event] = []
    to_create: list[DeliveryIssue] = []
    to_update: list[DeliveryIssue] = []
    for event in events:
        issue = issues.get(event.pk)
        if event.pk in not_relayed and issue is None and not force:
            counts.pending += 1
            continue
        if issue is not None:
            busy = issue.state == IssueState.PENDING or (issue.claimed_until is not None and issue.claimed_until >= now)
            if busy and not force:
                counts.pending += 1
                continue
            if not again and _delivered_since_resend(issue):
                counts.delivered_since_resend += 1
                continue
            issue.state = IssueState.PENDING
            issue.payload = event.payload
            issue.attempts = 0
            issue.next_attempt_at = now
            issue.last_error = ""
            issue.resent_at = now
            issue.claim_token = None
            issue.claimed_until = None
            to_update.append(issue)
        else:
            to_create.append(
                DeliveryIssue(
                    event_id=event.pk,
                    game_id=event.game_id,
                    received_at=event.received_at,
                    payload=event.payload,
                    state=IssueState.PENDING,
                    next_attempt_at=now,
                    opened_at=now,
                    resent_at=now,
                )
            )
        queued.append(event)
    DeliveryIssue.objects.bulk_create(to_create, batch_size=500)
    DeliveryIssue.objects.bulk_update(
        to_update,
        ["state", "payload", "attempts", "next_attempt_at", "last_error", "resent_at", "claim_token", "claimed_until"],
        batch_size=500,
    )
    counts.queued = len(queued)
    return counts, queued


def _delivered_since_resend(issue: DeliveryIssue) -> bool:
    return (
        issue.state == IssueState.DELIVERED
        and issue.resent_at is not None
        and issue.delivered_at is not None
        and issue.resent_at <= issue.delivered_at
    )
