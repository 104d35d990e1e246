"""Delivery: claim due events, pack their lines into records, send them to the destination, record outcomes.

One engine serves the per-process forwarder (events requests just stored, already
leased to it) and the worker (`deliver_events`: everything pending or due for retry);
a SendPolicy says how each one calls the destination. Rows are claimed with a lease
in a short transaction, the destination is called outside any transaction, and
results are written in another short one, only for rows still held.
"""

import logging
import math
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from django.db import connection
from django.db.models import F, Q
from django.utils import timezone

from events_app import conf, metrics
from events_app.db import write_transaction
from events_app.delivery import breaker, heartbeat
from events_app.delivery.destinations.base import Destination, Limits, PackedRecord, RecordError, get_destination
from events_app.delivery.destinations.errors import DestinationError
from events_app.delivery.policies import BreakerFeedback, SendPolicy, worker_policy
from events_app.delivery.records import encode_line
from events_app.models import DUE_STATES, AttemptOutcome, DeliveryAttempt, DeliveryState, Event

logger = logging.getLogger(__name__)


class Claimed(Protocol):
    """A row a sender holds the lease of: an Event, or the forwarder's lighter copy of one."""

    pk: int
    payload: dict
    attempts: int


@dataclass
class DeliveryCounts:
    """How many claimed events were delivered, will be retried, gave up, or were left for later."""

    delivered: int = 0
    failed: int = 0
    dead: int = 0
    deferred: int = 0
    calls: int = 0
    records: int = 0
    bytes: int = 0  # of the records sent
    billed_bytes: int = 0  # the same, each record rounded up to the destination's billing unit

    @property
    def claimed(self) -> int:
        return self.delivered + self.failed + self.dead + self.deferred

    def add(self, other: "DeliveryCounts") -> None:
        """Add `other`'s counts to these."""
        for name in ("delivered", "failed", "dead", "deferred", "calls", "records", "bytes", "billed_bytes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def pack_records(lines: list[bytes], *, target_bytes: int, keys: list[str | None] | None = None) -> list[PackedRecord]:
    """Pack whole lines, in order, into records of at most `target_bytes` (a longer line goes alone).

    With `keys` (a partition key per line), a record carries lines of one key only,
    in their order; records come in the order of each key's first line.
    """
    if keys is None:
        return _pack(lines, range(len(lines)), target_bytes=target_bytes, key=None)
    by_key: dict[str | None, list[int]] = {}
    for index, key in enumerate(keys):
        by_key.setdefault(key, []).append(index)
    return [
        record
        for key, members in by_key.items()
        for record in _pack(lines, members, target_bytes=target_bytes, key=key)
    ]


def _pack(lines: list[bytes], members: Sequence[int], *, target_bytes: int, key: str | None) -> list[PackedRecord]:
    records: list[PackedRecord] = []
    parts: list[bytes] = []
    current: list[int] = []
    size = 0
    for index in members:
        line = lines[index]
        if parts and size + len(line) > target_bytes:
            records.append(PackedRecord(b"".join(parts), current, key))
            parts, current, size = [], [], 0
        parts.append(line)
        current.append(index)
        size += len(line)
    if parts:
        records.append(PackedRecord(b"".join(parts), current, key))
    return records


def plan_calls(records: list[PackedRecord], *, limits: Limits) -> list[list[PackedRecord]]:
    """Group records into calls within the destination's record and byte limits (Firehose: 500 and 4 MiB)."""
    calls: list[list[PackedRecord]] = []
    current: list[PackedRecord] = []
    size = 0
    for record in records:
        if current and (len(current) == limits.max_call_records or size + record.size > limits.max_call_bytes):
            calls.append(current)
            current, size = [], 0
        current.append(record)
        size += record.size
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
    return deliver_claimed(events=events, claim_token=token, policy=worker_policy())


def deliver_claimed(
    *,
    events: Sequence[Claimed],
    claim_token: uuid.UUID,
    policy: SendPolicy,
    claimed_until: datetime | None = None,
    destination: Destination | None = None,
) -> DeliveryCounts:
    """Send events this process holds the lease of, and record each one's outcome.

    No call starts once less than half of the lease (ending at `claimed_until`, by
    default a full lease from now) is left: events not sent by then are released to
    the worker, unharmed. Failures the destination calls permanent (and lines too
    large for any record) make events dead at once, with the reason.
    """
    destination = destination or get_destination()
    limits = destination.limits
    emitted_at = timezone.now()
    lines = [encode_line(event.payload, emitted_at=emitted_at) for event in events]
    errors: dict[int, RecordError] = {
        index: RecordError(
            f"record of {len(line)} bytes is over the {destination.name} limit of {limits.max_record_bytes}",
            permanent=True,
        )
        for index, line in enumerate(lines)
        if len(line) > limits.max_record_bytes
    }
    sendable = [index for index in range(len(lines)) if index not in errors]
    keys = [destination.partition_key(events[index].payload) for index in sendable]
    records = pack_records(
        [lines[index] for index in sendable],
        target_bytes=min(conf.record_target_bytes(), limits.max_record_bytes),
        keys=keys if any(key is not None for key in keys) else None,
    )
    for record in records:
        record.members = [sendable[member] for member in record.members]
    lease = conf.claim_lease_seconds()
    left = (claimed_until - emitted_at).total_seconds() if claimed_until else lease
    deadline = time.monotonic() + left - lease / 2
    destination_failed = False

    deferred: set[int] = set()
    counts = DeliveryCounts()
    for call in plan_calls(records, limits=limits):
        if time.monotonic() > deadline:
            deferred.update(index for record in call for index in record.members)
            continue
        counts.calls += 1
        counts.records += len(call)
        counts.bytes += sum(len(record.data) for record in call)
        unit = limits.billing_unit_bytes
        counts.billed_bytes += sum(math.ceil(len(record.data) / unit) * unit for record in call)
        try:
            outcomes = metrics.timed_send(destination, call, policy=policy)
        except DestinationError as exc:
            outcomes = [RecordError(str(exc), permanent=exc.permanent)] * len(call)
        for record, error in zip(call, outcomes, strict=True):
            if error:
                destination_failed = True
                for index in record.members:
                    errors.setdefault(index, error)

    if policy.breaker is BreakerFeedback.FAILURES_AND_SUCCESSES and counts.calls:
        breaker.record_failure() if destination_failed else breaker.record_success()
    elif policy.breaker is BreakerFeedback.SUCCESSES_ONLY and len(errors) + len(deferred) < len(events):
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
        "delivery batch sender=%s destination=%s delivered=%d failed=%d dead=%d deferred=%d calls=%d records=%d "
        "bytes=%d billed_bytes=%d%s",
        policy.name,
        destination.name,
        counts.delivered,
        counts.failed,
        counts.dead,
        counts.deferred,
        counts.calls,
        counts.records,
        counts.bytes,
        counts.billed_bytes,
        f" first_error={first_error!r}" if errors else "",
    )
    metrics.record_delivery(sender=policy.name, destination=destination.name, counts=counts)
    if counts.delivered:
        heartbeat.beat(sender=policy.name, delivered=True)  # the admin's "last successful delivery"
    return counts


def release_claimed(*, events: Sequence[Claimed], claim_token: uuid.UUID) -> DeliveryCounts:
    """Give up the lease of events without sending them, so the worker takes them at once."""
    counts = DeliveryCounts()
    _record_outcomes(
        claim_token=claim_token,
        emitted_at=timezone.now(),
        delivered=[],
        failed=[],
        deferred=list(events),
        counts=counts,
    )
    return counts


# Events whose outcomes one transaction records: a long write transaction would hold
# SQLite's write lock while requests wait to commit their events.
OUTCOMES_PER_TRANSACTION = 250


def _record_outcomes(
    *,
    claim_token: uuid.UUID,
    emitted_at: datetime,
    delivered: list[Claimed],
    failed: list[tuple[Claimed, RecordError]],
    deferred: list[Claimed],
    counts: DeliveryCounts,
) -> None:
    """Write the results of one send in short transactions, only for rows still ours."""
    step = OUTCOMES_PER_TRANSACTION
    for start in range(0, len(delivered), step):
        _record_some(
            claim_token=claim_token,
            emitted_at=emitted_at,
            delivered=delivered[start : start + step],
            failed=[],
            deferred=[],
            counts=counts,
        )
    for start in range(0, len(failed), step):
        _record_some(
            claim_token=claim_token,
            emitted_at=emitted_at,
            delivered=[],
            failed=failed[start : start + step],
            deferred=[],
            counts=counts,
        )
    for start in range(0, len(deferred), step):
        _record_some(
            claim_token=claim_token,
            emitted_at=emitted_at,
            delivered=[],
            failed=[],
            deferred=deferred[start : start + step],
            counts=counts,
        )


def _record_some(
    *,
    claim_token: uuid.UUID,
    emitted_at: datetime,
    delivered: list[Claimed],
    failed: list[tuple[Claimed, RecordError]],
    deferred: list[Claimed],
    counts: DeliveryCounts,
) -> None:
    """Write the results of some events of one send in one short transaction, only for rows still ours."""
    now = timezone.now()
    ours = Event.objects.filter(claim_token=claim_token)
    attempts_log: list[DeliveryAttempt] = []
    max_attempts = conf.max_attempts()
    with write_transaction():
        # A row whose lease ran out belongs to another sender now: record nothing for it.
        all_ids = [e.pk for e in delivered] + [e.pk for e, _ in failed] + [e.pk for e in deferred]
        # Locked (PostgreSQL), in pk order as erasure locks them: a row erased meanwhile
        # is gone here rather than getting an attempt whose event no longer exists,
        # which would fail the whole transaction at commit.
        held = set(ours.filter(pk__in=all_ids).order_by("pk").select_for_update().values_list("pk", flat=True))
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
            counts.delivered += len(delivered)
        # Events that failed alike share a backoff, so they are retried together too.
        by_attempts: dict[tuple[int, str, bool], list[Claimed]] = {}
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
            counts.deferred += len(deferred)
        DeliveryAttempt.objects.bulk_create(attempts_log, batch_size=500)
