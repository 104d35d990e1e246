"""The relay: send the log past a shard's cursor, record the call, move the cursor; a row per event only on failure.

One pass reads the next batch of the shard in commit order (events_app.logstore),
sends it outside any transaction, then in one short transaction records each call
(DeliveryCall), turns the events that still failed into DeliveryIssue rows (retried
later by events_app.delivery.retry) and moves the cursor past the batch. A relay that
dies between sending and recording sends the batch again: at least once, never lost.

When the destination takes none of a batch (an outage), the cursor stays where it
is and only the failed call is recorded: no row per event, however long it lasts.
The pass after a backoff tries the same batch again.
"""

import logging
from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone

from events_app import conf, logstore
from events_app.db import write_transaction
from events_app.delivery import heartbeat, hours
from events_app.delivery.destinations.base import Destination
from events_app.delivery.issues import open_issues
from events_app.delivery.policies import SendPolicy
from events_app.delivery.sending import CallReport, DeliveryCounts, SendReport, log_batch, send_lines
from events_app.kpi import counting as kpis
from events_app.models import CallOutcome, DeliveryCall

logger = logging.getLogger(__name__)

SENDER = "relay"


@dataclass
class RelayPass:
    """What one relay pass did: its counts, and whether the destination took nothing (the batch waits)."""

    counts: DeliveryCounts
    outage: bool = False
    read: int = 0  # events read past the cursor


def relay_shard(*, shard: int, destination: Destination, policy: SendPolicy, limit: int | None = None) -> RelayPass:
    """Send the next batch of `shard` past its cursor and record it; the caller holds the shard."""
    cursor = logstore.cursor_of(shard)
    start = logstore.Position(cursor.last_txid, cursor.last_event)
    rows = logstore.read_past(shard=shard, after=start, limit=limit or conf.delivery_batch_size())
    if not rows:
        return RelayPass(counts=DeliveryCounts())
    report = send_lines([row.payload for row in rows], policy=policy, destination=destination)
    counts = report.counts
    now = timezone.now()
    last = rows[-1].position
    # An outage: calls were made and the destination took none of them, for no reason
    # that sending again cannot cure (a line too large to send at all does not count).
    refused = any(
        error.permanent for call in report.calls for index in call.failed if (error := report.errors.get(index))
    )
    if report.nothing_taken and not refused:
        counts.deferred = len(rows)
        with write_transaction():
            _record_calls(report, rows=rows, shard=shard, destination=destination.name)
        log_batch(sender=SENDER, destination=destination.name, counts=counts, first_error=_first_error(report))
        return RelayPass(counts=counts, outage=True, read=len(rows))
    with write_transaction():
        calls = _record_calls(report, rows=rows, shard=shard, destination=destination.name)
        failed = {index: error for index, error in report.errors.items()}
        issues = open_issues(
            [(rows[index], error) for index, error in failed.items()],
            opened_at=now,
            call_of={index: calls[position] for position, call in enumerate(report.calls) for index in call.members},
        )
        hours.add(hours.count_lines(rows))  # the dashboard's counts: once per batch, never a COUNT
        kpis.add_lines(rows)  # the daily KPIs, in the same transaction: counted once, as the cursor moves
        if not logstore.advance(shard=shard, old=start, new=last, now=now):
            # Another relay moved the cursor meanwhile (this one lost its shard): undo, it re-sends nothing.
            raise LostShard(shard)
    counts.delivered = len(rows) - len(failed)
    counts.failed = issues.failed
    counts.dead = issues.dead
    log_batch(sender=SENDER, destination=destination.name, counts=counts, first_error=_first_error(report))
    if counts.delivered:
        heartbeat.beat(sender=heartbeat.WORKER, delivered=True)
    return RelayPass(counts=counts, read=len(rows))


class LostShard(Exception):
    """Raised inside the recording transaction when the cursor moved under the relay: it rolls the record back."""


def _record_calls(report: SendReport, *, rows: list, shard: int, destination: str) -> list[DeliveryCall]:
    """Record each call with the span of the log it carried: from its first to its last event in relay order.

    Exact for an unkeyed destination (Firehose), whose calls carry consecutive runs
    of the batch. A keyed one (Kinesis) groups lines by key, so its calls' spans may
    overlap; so may a record sent again in place with the call that first failed it.
    """
    calls = []
    for call in report.calls:
        first = min(rows[index].position for index in call.members)
        last = max(rows[index].position for index in call.members)
        calls.append(
            call_row(call, report=report, destination=destination, sender=SENDER, shard=shard, first=first, last=last)
        )
    return DeliveryCall.objects.bulk_create(calls)


def call_row(
    call: CallReport,
    *,
    report: SendReport,
    destination: str,
    sender: str,
    shard: int | None = None,
    first: logstore.Position | None = None,
    last: logstore.Position | None = None,
) -> DeliveryCall:
    """Return the (unsaved) record of one destination call; a relay's carries its shard and span of the log."""
    return DeliveryCall(
        called_at=call.called_at,
        emitted_at=report.emitted_at,
        destination=destination,
        sender=sender,
        shard=shard,
        first_txid=first.txid if first else None,
        first_event=first.event if first else None,
        last_txid=last.txid if last else None,
        last_event=last.event if last else None,
        events=len(call.members),
        failed_events=len(call.failed),
        records=call.records,
        bytes=call.bytes,
        outcome=_outcome(call.failed, call.members),
        error=call.error[:2000],
    )


def _outcome(failed: set[int], members: list[int]) -> str:
    if not failed:
        return CallOutcome.DELIVERED
    return CallOutcome.FAILED if len(failed) == len(members) else CallOutcome.PARTIAL


def _first_error(report: SendReport) -> str:
    return next(iter(report.errors.values())).message if report.errors else ""


def call_that_delivered(*, shard: int, position: logstore.Position) -> DeliveryCall | None:
    """Return the relay call whose span holds `position` and that delivered it (not a wholly failed one).

    The first call of the shard ending at or after the position, on the (shard, last)
    index: a few rows whatever the table's size.
    """
    candidates = (
        DeliveryCall.objects.filter(sender=SENDER, shard=shard)
        .filter(Q(last_txid__gt=position.txid) | Q(last_txid=position.txid, last_event__gte=position.event))
        .order_by("last_txid", "last_event", "id")[:8]
    )
    for call in candidates:
        starts_before = (call.first_txid, call.first_event) <= (position.txid, position.event)
        if starts_before and call.outcome != CallOutcome.FAILED:
            return call
    return None
