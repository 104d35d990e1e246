"""The retry worker: send the delivery issues that are due (failed, or resent), with backoff, until delivered or dead.

Issues are claimed with a lease in a short transaction, sent outside any
transaction, and their outcomes written in another short one, only for issues
still held, so several workers can drain them side by side and a worker that dies
holding some only delays them until its lease runs out.
"""

import time
import uuid
from datetime import timedelta

from django.db import connection
from django.db.models import F, Q
from django.utils import timezone

from events_app import conf
from events_app.db import write_transaction
from events_app.delivery import heartbeat
from events_app.delivery.destinations.base import Destination
from events_app.delivery.policies import SendPolicy
from events_app.delivery.relay import call_row
from events_app.delivery.sending import DeliveryCounts, SendReport, log_batch, retry_delay, send_lines
from events_app.models import DUE_STATES, DeliveryCall, DeliveryIssue, IssueState

SENDER = "retry"


def claim_due(*, limit: int, now=None) -> tuple[uuid.UUID, list[DeliveryIssue]]:
    """Lease up to `limit` issues that are due for sending; return the lease token and the issues.

    PostgreSQL skips rows other workers have locked; on SQLite the IMMEDIATE
    transaction serialises claimers. Either way each issue gets one holder at a time.
    """
    now = now or timezone.now()
    token = uuid.uuid4()
    with write_transaction():
        due = (
            DeliveryIssue.objects.filter(state__in=DUE_STATES, next_attempt_at__lte=now)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .order_by("next_attempt_at", "pk")
        )
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        ids = list(due.values_list("pk", flat=True)[:limit])
        if not ids:
            return token, []
        DeliveryIssue.objects.filter(pk__in=ids).update(
            claim_token=token, claimed_until=now + timedelta(seconds=conf.claim_lease_seconds())
        )
    issues = list(
        DeliveryIssue.objects.filter(pk__in=ids, claim_token=token)
        .order_by("pk")
        .only("pk", "event_id", "payload", "attempts", "claimed_until")
    )
    return token, issues


def retry_due(*, destination: Destination, policy: SendPolicy, limit: int | None = None) -> DeliveryCounts:
    """Claim one batch of due issues and send it; return the counts."""
    token, issues = claim_due(limit=limit or conf.delivery_batch_size())
    if not issues:
        return DeliveryCounts()
    lease = conf.claim_lease_seconds()
    # No call starts once less than half of the lease is left: another worker may take them after it.
    deadline = time.monotonic() + lease / 2
    report = send_lines([issue.payload for issue in issues], policy=policy, destination=destination, deadline=deadline)
    counts = report.counts
    _record(issues=issues, token=token, report=report, destination=destination.name, counts=counts)
    first_error = next(iter(report.errors.values())).message if report.errors else ""
    log_batch(sender=SENDER, destination=destination.name, counts=counts, first_error=first_error)
    if counts.delivered:
        heartbeat.beat(sender=heartbeat.WORKER, delivered=True)
    return counts


def _record(
    *, issues: list[DeliveryIssue], token: uuid.UUID, report: SendReport, destination: str, counts: DeliveryCounts
) -> None:
    """Write the calls and each issue's outcome in one short transaction, only for issues still ours."""
    now = timezone.now()
    max_attempts = conf.max_attempts()
    with write_transaction():
        calls = DeliveryCall.objects.bulk_create(
            [call_row(call, report=report, destination=destination, sender=SENDER) for call in report.calls]
        )
        call_of = {index: calls[position] for position, call in enumerate(report.calls) for index in call.members}
        ours = DeliveryIssue.objects.filter(claim_token=token)
        # Locked in pk order (PostgreSQL); an issue erased meanwhile is simply gone here.
        held = set(
            ours.filter(pk__in=[issue.pk for issue in issues])
            .order_by("pk")
            .select_for_update()
            .values_list("pk", flat=True)
        )
        delivered, deferred = [], []
        by_outcome: dict[tuple[int, str, bool], list[int]] = {}
        for index, issue in enumerate(issues):
            if issue.pk not in held:
                continue
            if index in report.deferred:
                deferred.append(issue.pk)
            elif index in report.errors:
                error = report.errors[index]
                by_outcome.setdefault((issue.attempts + 1, error.message, error.permanent), []).append(issue.pk)
            else:
                delivered.append((issue.pk, call_of[index]))
        for call in {call.pk: call for _, call in delivered}.values():
            ours.filter(pk__in=[pk for pk, by in delivered if by.pk == call.pk]).update(
                state=IssueState.DELIVERED,
                attempts=F("attempts") + 1,
                delivered_at=now,
                delivered_by=call,
                next_attempt_at=None,
                last_error="",
                claim_token=None,
                claimed_until=None,
            )
        counts.delivered += len(delivered)
        for (attempts, message, permanent), group in by_outcome.items():
            gave_up = permanent or attempts >= max_attempts
            ours.filter(pk__in=group).update(
                state=IssueState.DEAD if gave_up else IssueState.FAILED,
                attempts=attempts,
                next_attempt_at=None if gave_up else now + timedelta(seconds=retry_delay(attempts)),
                last_error=message[:2000],
                claim_token=None,
                claimed_until=None,
            )
            if gave_up:
                counts.dead += len(group)
            else:
                counts.failed += len(group)
        if deferred:
            ours.filter(pk__in=deferred).update(claim_token=None, claimed_until=None)
            counts.deferred += len(deferred)
