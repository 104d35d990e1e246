"""Delivery to Firehose: claim due events, pack their lines into records, send, record outcomes.

One engine serves the request path (events a request just stored) and the worker
(`deliver_events`: everything pending or due for retry). Rows are claimed with a
lease in a short transaction, AWS is called outside any transaction, and results are
written in another short one, so a slow Firehose never holds a database lock.
"""

import logging
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import F, Q
from django.utils import timezone

from . import breaker, conf, firehose
from .dbwrite import write_transaction
from .exceptions import FirehoseError
from .firehose import RecordError
from .models import DUE_STATES, AttemptOutcome, DeliveryAttempt, DeliveryState, Event
from .records import encode_line

logger = logging.getLogger(__name__)


@dataclass
class DeliveryCounts:
    """How many claimed events were delivered, will be retried, gave up, or were left for later."""

    delivered: int = 0
    failed: int = 0
    dead: int = 0
    deferred: int = 0
    calls: int = 0
    records: int = 0

    @property
    def claimed(self) -> int:
        return self.delivered + self.failed + self.dead + self.deferred


@dataclass
class PackedRecord:
    """One Firehose record: several NDJSON lines, and the positions of the events they carry."""

    data: bytes
    members: list[int] = field(default_factory=list)


def pack_records(lines: list[bytes], *, target_bytes: int) -> list[PackedRecord]:
    """Pack whole lines, in order, into records of at most `target_bytes` (a longer line goes alone)."""
    records: list[PackedRecord] = []
    parts: list[bytes] = []
    members: list[int] = []
    size = 0
    for index, line in enumerate(lines):
        if parts and size + len(line) > target_bytes:
            records.append(PackedRecord(b"".join(parts), members))
            parts, members, size = [], [], 0
        parts.append(line)
        members.append(index)
        size += len(line)
    if parts:
        records.append(PackedRecord(b"".join(parts), members))
    return records


def plan_calls(records: list[PackedRecord]) -> list[list[PackedRecord]]:
    """Group records into PutRecordBatch calls of at most 500 records and 4 MiB."""
    calls: list[list[PackedRecord]] = []
    current: list[PackedRecord] = []
    size = 0
    for record in records:
        if current and (
            len(current) == conf.FIREHOSE_MAX_BATCH_RECORDS or size + len(record.data) > conf.FIREHOSE_MAX_BATCH_BYTES
        ):
            calls.append(current)
            current, size = [], 0
        current.append(record)
        size += len(record.data)
    if current:
        calls.append(current)
    return calls


def retry_delay(attempts: int) -> float:
    """Return seconds to wait before attempt `attempts + 1`: capped exponential, with jitter.

    Half the delay is fixed and half random ("equal jitter"): retries of many events
    spread out, yet never come back sooner than half the backoff.
    """
    ceiling = min(conf.retry_max_seconds(), conf.retry_base_seconds() * 2 ** max(attempts - 1, 0))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def claim_due(*, limit: int, now: datetime | None = None) -> tuple[uuid.UUID, list[Event]]:
    """Lease up to `limit` events that are due for sending; return the lease token and the events.

    PostgreSQL skips rows other workers have locked; on SQLite the IMMEDIATE
    transaction serialises claimers. Either way each row gets one holder at a time.
    """
    now = now or timezone.now()
    token = uuid.uuid4()
    with write_transaction():
        due = (
            Event.objects.filter(delivery_state__in=DUE_STATES, next_attempt_at__lte=now)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .order_by("next_attempt_at", "pk")
        )
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        ids = list(due.values_list("pk", flat=True)[:limit])
        if not ids:
            return token, []
        Event.objects.filter(pk__in=ids).update(
            claim_token=token, claimed_until=now + timedelta(seconds=conf.claim_lease_seconds())
        )
    events = list(Event.objects.filter(pk__in=ids, claim_token=token).order_by("pk").only("pk", "payload", "attempts"))
    return token, events


def deliver_due(*, limit: int | None = None) -> DeliveryCounts:
    """Claim one batch of due events and send it; the worker's unit of work."""
    token, events = claim_due(limit=limit or conf.delivery_batch_size())
    if not events:
        return DeliveryCounts()
    return deliver_claimed(events=events, claim_token=token, inline=False)


def deliver_claimed(*, events: list[Event], claim_token: uuid.UUID, inline: bool) -> DeliveryCounts:
    """Send events this process holds the lease of, and record each one's outcome.

    In a request (`inline`) sending stops after about a second; events not sent by
    then stay pending for the worker, unharmed. Failures Firehose calls permanent
    (and lines too large for any record) make events dead at once, with the reason.
    """
    emitted_at = timezone.now()
    lines = [encode_line(event.payload, emitted_at=emitted_at) for event in events]
    errors: dict[int, RecordError] = {
        index: RecordError(f"record of {len(line)} bytes is over Firehose's 1,000 KiB limit", permanent=True)
        for index, line in enumerate(lines)
        if len(line) > conf.FIREHOSE_MAX_RECORD_BYTES
    }
    sendable = [index for index in range(len(lines)) if index not in errors]
    records = pack_records([lines[index] for index in sendable], target_bytes=conf.record_target_bytes())
    for record in records:
        record.members = [sendable[member] for member in record.members]
    client = firehose.get_client(inline=inline)
    stream = conf.stream_name()
    # In a request, about a second; in the worker, half the lease, so no call starts
    # once another worker could take these rows over. Unsent events wait, unharmed.
    budget = conf.inline_timeout_seconds() * 2 if inline else conf.claim_lease_seconds() / 2
    deadline = time.monotonic() + budget
    firehose_failed = False

    deferred: set[int] = set()
    counts = DeliveryCounts(records=len(records))
    for call in plan_calls(records):
        if time.monotonic() > deadline:
            deferred.update(index for record in call for index in record.members)
            continue
        counts.calls += 1
        try:
            outcomes = firehose.put_record_batch(client, stream=stream, records=[r.data for r in call])
        except FirehoseError as exc:
            outcomes = [RecordError(str(exc), permanent=exc.permanent)] * len(call)
        for record, error in zip(call, outcomes, strict=True):
            if error:
                firehose_failed = True
                for index in record.members:
                    errors.setdefault(index, error)

    if inline and counts.calls:
        breaker.record_failure() if firehose_failed else breaker.record_success()
    elif not inline and len(errors) + len(deferred) < len(events):
        breaker.record_success()  # the worker's send is the probe that ends an outage

    delivered = [e for i, e in enumerate(events) if i not in errors and i not in deferred]
    _record_outcomes(
        claim_token=claim_token,
        emitted_at=emitted_at,
        delivered=delivered,
        failed=[(events[i], error) for i, error in errors.items()],
        deferred=[events[i] for i in sorted(deferred)],
        counts=counts,
    )
    level = logging.WARNING if errors else logging.INFO
    first_error = next(iter(errors.values())).message[:200] if errors else ""
    logger.log(
        level,
        "delivery batch delivered=%d failed=%d dead=%d deferred=%d calls=%d records=%d bytes=%d%s",
        counts.delivered, counts.failed, counts.dead, counts.deferred, counts.calls, counts.records,
        sum(len(line) for line in lines), f" first_error={first_error!r}" if errors else "",
    )  # fmt: skip
    return counts


def _record_outcomes(
    *,
    claim_token: uuid.UUID,
    emitted_at: datetime,
    delivered: list[Event],
    failed: list[tuple[Event, RecordError]],
    deferred: list[Event],
    counts: DeliveryCounts,
) -> None:
    """Write the results of one send in one short transaction, only for rows still ours."""
    now = timezone.now()
    ours = Event.objects.filter(claim_token=claim_token)
    attempts_log: list[DeliveryAttempt] = []
    max_attempts = conf.max_attempts()
    with write_transaction():
        # A row whose lease ran out belongs to another sender now: record nothing for it.
        all_ids = [e.pk for e in delivered] + [e.pk for e, _ in failed] + [e.pk for e in deferred]
        held = set(ours.filter(pk__in=all_ids).values_list("pk", flat=True))
        delivered = [e for e in delivered if e.pk in held]
        failed = [(e, error) for e, error in failed if e.pk in held]
        deferred = [e for e in deferred if e.pk in held]
        if delivered:
            ours.filter(pk__in=[e.pk for e in delivered]).update(
                delivery_state=DeliveryState.DELIVERED,
                attempts=F("attempts") + 1,
                delivered_at=now,
                emitted_at=emitted_at,
                next_attempt_at=None,
                last_error="",
                claim_token=None,
                claimed_until=None,
            )
            attempts_log += [
                DeliveryAttempt(event_id=e.pk, attempted_at=emitted_at, outcome=AttemptOutcome.DELIVERED)
                for e in delivered
            ]
            counts.delivered = len(delivered)
        # Events that failed alike share a backoff, so they are retried together too.
        by_attempts: dict[tuple[int, str, bool], list[Event]] = {}
        for event, error in failed:
            by_attempts.setdefault((event.attempts + 1, error.message, error.permanent), []).append(event)
        for (attempts, message, permanent), group in by_attempts.items():
            gave_up = permanent or attempts >= max_attempts
            ours.filter(pk__in=[e.pk for e in group]).update(
                delivery_state=DeliveryState.DEAD if gave_up else DeliveryState.FAILED,
                attempts=attempts,
                emitted_at=emitted_at,
                next_attempt_at=None if gave_up else now + timedelta(seconds=retry_delay(attempts)),
                last_error=message[:2000],
                claim_token=None,
                claimed_until=None,
            )
            outcome = AttemptOutcome.DEAD if gave_up else AttemptOutcome.FAILED
            attempts_log += [
                DeliveryAttempt(event_id=e.pk, attempted_at=emitted_at, outcome=outcome, error=message[:2000])
                for e in group
            ]
            if gave_up:
                counts.dead += len(group)
            else:
                counts.failed += len(group)
        if deferred:
            ours.filter(pk__in=[e.pk for e in deferred]).update(claim_token=None, claimed_until=None)
            counts.deferred = len(deferred)
        DeliveryAttempt.objects.bulk_create(attempts_log, batch_size=500)
