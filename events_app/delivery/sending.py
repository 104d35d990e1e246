"""Sending lines to the destination: pack them into records, group records into calls, send, report per event.

Shared by the relay (events read past its cursor) and the retry worker (delivery
issues due again). Nothing here touches the database: the caller records the calls
and outcomes in its own short transaction, after the destination answered.
"""

import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from events_app import conf, metrics
from events_app.delivery.destinations.base import Destination, Limits, PackedRecord, RecordError
from events_app.delivery.destinations.errors import DestinationError
from events_app.delivery.policies import SendPolicy
from events_app.delivery.records import encode_line

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


@dataclass
class CallReport:
    """One call to the destination: when, which events it carried, which of them failed, and its size."""

    called_at: datetime
    members: list[int]  # positions of the events it carried
    records: int
    bytes: int
    failed: set[int] = field(default_factory=set)
    error: str = ""


@dataclass
class SendReport:
    """What send_lines did: its calls, each event's final error (if any), the events it had no time left for."""

    emitted_at: datetime
    calls: list[CallReport] = field(default_factory=list)
    errors: dict[int, RecordError] = field(default_factory=dict)
    deferred: set[int] = field(default_factory=set)
    counts: "DeliveryCounts" = field(default_factory=lambda: DeliveryCounts())

    @property
    def nothing_taken(self) -> bool:
        """Return True if calls were made and the destination took none of their events: an outage, not a bad event."""
        return bool(self.calls) and all(call.failed == set(call.members) for call in self.calls)


# A record the destination failed is sent again at once this many times before it
# becomes a delivery issue: throttling and partial failures usually pass in a call or two.
RETRIES_IN_PLACE = 2


def send_lines(
    payloads: Sequence[dict],
    *,
    policy: SendPolicy,
    destination: Destination,
    deadline: float | None = None,
    retries_in_place: int = RETRIES_IN_PLACE,
) -> SendReport:
    """Send the lines of `payloads` (one event each, in order); return what happened to each.

    No call starts after `deadline` (time.monotonic()): the events left go to
    `deferred`, unsent. Lines too large for any record fail at once, permanently.
    Records the destination fails are sent again up to `retries_in_place` times.
    """
    limits = destination.limits
    report = SendReport(emitted_at=timezone.now())
    lines = [encode_line(payload, emitted_at=report.emitted_at) for payload in payloads]
    for index, line in enumerate(lines):
        if len(line) > limits.max_record_bytes:
            message = f"record of {len(line)} bytes is over the {destination.name} limit of {limits.max_record_bytes}"
            report.errors[index] = RecordError(message, permanent=True)
    sendable = [index for index in range(len(lines)) if index not in report.errors]
    keys = [destination.partition_key(payloads[index]) for index in sendable]
    records = pack_records(
        [lines[index] for index in sendable],
        target_bytes=min(conf.record_target_bytes(), limits.max_record_bytes),
        keys=keys if any(key is not None for key in keys) else None,
    )
    for record in records:
        record.members = [sendable[member] for member in record.members]
    for round_ in range(retries_in_place + 1):
        failed_records = _send_records(
            records, report=report, policy=policy, destination=destination, deadline=deadline
        )
        retryable = [record for record, error in failed_records if not error.permanent]
        for record, error in failed_records:
            for index in record.members:
                report.errors[index] = error
        if not retryable or round_ == retries_in_place or report.nothing_taken:
            break
        # Sent again: forget their errors until this round says otherwise.
        for record in retryable:
            for index in record.members:
                report.errors.pop(index, None)
        records = retryable
    return report


def _send_records(
    records: list[PackedRecord],
    *,
    report: SendReport,
    policy: SendPolicy,
    destination: Destination,
    deadline: float | None,
) -> list[tuple[PackedRecord, RecordError]]:
    """Send `records` in calls within the destination's limits; return the records it failed, with why."""
    failed: list[tuple[PackedRecord, RecordError]] = []
    unit = destination.limits.billing_unit_bytes
    for call in plan_calls(records, limits=destination.limits):
        if deadline is not None and time.monotonic() > deadline:
            report.deferred.update(index for record in call for index in record.members)
            continue
        size = sum(len(record.data) for record in call)
        counts = report.counts
        counts.calls += 1
        counts.records += len(call)
        counts.bytes += size
        counts.billed_bytes += sum(math.ceil(len(record.data) / unit) * unit for record in call)
        called = CallReport(
            called_at=timezone.now(),
            members=[index for record in call for index in record.members],
            records=len(call),
            bytes=size,
        )
        try:
            outcomes = metrics.timed_send(destination, call, policy=policy)
        except DestinationError as exc:
            outcomes = [RecordError(str(exc), permanent=exc.permanent)] * len(call)
        for record, error in zip(call, outcomes, strict=True):
            if error:
                failed.append((record, error))
                called.failed.update(record.members)
                called.error = called.error or error.message
        report.calls.append(called)
    return failed


def log_batch(*, sender: str, destination: str, counts: "DeliveryCounts", first_error: str = "") -> None:
    """Log one line for a delivery batch (a warning if anything failed) and count it in the metrics."""
    # A warning whenever anything failed, a whole outage (all deferred) included.
    logger.log(
        logging.WARNING if counts.failed or counts.dead or first_error else logging.INFO,
        "delivery batch sender=%s destination=%s delivered=%d failed=%d dead=%d deferred=%d calls=%d records=%d "
        "bytes=%d billed_bytes=%d%s",
        sender,
        destination,
        counts.delivered,
        counts.failed,
        counts.dead,
        counts.deferred,
        counts.calls,
        counts.records,
        counts.bytes,
        counts.billed_bytes,
        f" first_error={first_error[:200]!r}" if first_error else "",
    )
    metrics.record_delivery(sender=sender, destination=destination, counts=counts)
