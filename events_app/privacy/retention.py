"""Retention: delete what is older than it needs to be, in id-ordered batches with short transactions.

`purge_events` deletes delivered events (dead ones too, if asked) received before a
cutoff, with their delivery attempts; never a pending or failed one. The other
tables are pruned by age: attempts of events still kept, duplicate tallies and
rejected events (`purge_expired` runs them all, as `manage.py purge_events` does).

Each batch reads the next ids in primary-key order outside any transaction, then
deletes those that qualify in one short write transaction (SQLite: queued on the
writers' lock like any insert; PostgreSQL: the rows locked with SKIP LOCKED, so a
row an operator is resending right now is left for the next run), then pauses as
long again (EVENTS_PURGE_PAUSE_FACTOR): ingest waits at most one batch, and the purge
holds the database at most half the time. Ids grow with time (received_at is stamped
on arrival), so a run reads what it deletes plus one batch: at the first batch with
nothing old in it, one lookup in the (state, received_at) index finds whether any
old event lies further on (ids out of time order), and the scan goes on from there.

Deleting an event deletes its ids too: a duplicate is recognised only while the
original is stored, so the idempotency window is the retention of delivered events.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Model, Q
from django.utils import timezone

from events_app import conf
from events_app.db import write_transaction
from events_app.models import DeliveryAttempt, DeliveryState, DuplicateTally, Event, RejectedEvent

logger = logging.getLogger(__name__)


@dataclass
class PurgeCounts:
    """How many rows a purge deleted (or, in a dry run, would delete), per table."""

    events: int = 0
    attempts: int = 0
    duplicate_tallies: int = 0
    rejected_events: int = 0


def cutoff(*, days: float, now: datetime | None = None) -> datetime:
    """Return the moment `days` days before `now`: rows from before it are old enough to go."""
    return (now or timezone.now()) - timedelta(days=days)


def purge_events(
    *,
    older_than_days: float,
    include_dead: bool = False,
    dry_run: bool = False,
    batch_size: int | None = None,
    now: datetime | None = None,
) -> PurgeCounts:
    """Delete delivered events received more than `older_than_days` days ago, with their attempts; return the counts.

    Pending and failed events always stay; dead ones go only with `include_dead`.
    With `dry_run`, nothing changes and the counts say what would go.
    """
    before = cutoff(days=older_than_days, now=now)
    states = _purged_states(include_dead)
    batch_size = batch_size or conf.purge_batch_size()
    counts = PurgeCounts()
    last_pk = 0
    while True:
        rows = list(
            Event.objects.filter(pk__gt=last_pk)
            .order_by("pk")
            .values_list("pk", "received_at", "delivery_state")[:batch_size]
        )
        old = [(pk, state) for pk, received_at, state in rows if received_at < before]
        if not old:
            # Nothing old here: jump to the oldest event still to delete, if one lies further on
            # (ids out of time order: rows loaded from elsewhere, a host's clock far off).
            start = _next_candidate(
                states=states, before=before, after_pk=rows[-1][0] if rows else last_pk, look=batch_size
            )
            if start is None:
                break
            last_pk = start - 1
            continue
        last_pk = rows[-1][0]
        candidates = [pk for pk, state in old if state in states]
        if not candidates:
            continue
        if dry_run:
            events, attempts = len(candidates), DeliveryAttempt.objects.filter(event_id__in=candidates).count()
        else:
            started = time.monotonic()
            events, attempts = _delete_events(candidates, states=states, before=before)
            _pause(time.monotonic() - started)
        counts.events += events
        counts.attempts += attempts
        logger.info(
            "purge batch table=events%s events=%d attempts=%d through_id=%d",
            " dry_run=1" if dry_run else "",
            events,
            attempts,
            last_pk,
        )
    return counts


def _next_candidate(*, states: list[str], before: datetime, after_pk: int, look: int) -> int | None:
    """Return the lowest id among the `look` oldest events to delete above `after_pk`, or None if there is none.

    Read through the (state, received_at) index, so finding none costs one lookup per
    state; the lowest id of the oldest ones, so that ids only slightly out of time
    order are not jumped over.
    """
    ids = [
        pk
        for state in states
        for pk in Event.objects.filter(delivery_state=state, received_at__lt=before, pk__gt=after_pk)
        .order_by("received_at")
        .values_list("pk", flat=True)[:look]
    ]
    return min(ids) if ids else None


def _delete_events(candidates: list[int], *, states: list[str], before: datetime) -> tuple[int, int]:
    """Delete the candidates that still qualify, with their attempts, in one transaction; return both counts."""
    with write_transaction():
        # Checked again under the lock: a resend may have made one pending since it was read.
        # Looked up by primary key alone: with the state and time in the WHERE clause,
        # SQLite walks the (state, received_at) index instead, 80 ms a batch at 1M rows.
        rows = Event.objects.filter(pk__in=candidates)
        if connection.features.has_select_for_update_skip_locked:
            rows = rows.select_for_update(skip_locked=True)
        ids = [
            pk
            for pk, state, received_at in rows.values_list("pk", "delivery_state", "received_at")
            if state in states and received_at < before
        ]
        if not ids:
            return 0, 0
        attempts = DeliveryAttempt.objects.filter(event_id__in=ids).delete()[0]
        # only("pk"): the cascade's collector reads the ids, not every payload.
        events = Event.objects.filter(pk__in=ids).only("pk").delete()[1].get(Event._meta.label, 0)
    return events, attempts


def purge_by_age(
    *,
    model: type[Model],
    time_field: str,
    older_than_days: float,
    dry_run: bool = False,
    batch_size: int | None = None,
    now: datetime | None = None,
    exclude: Q | None = None,
) -> int:
    """Delete rows of `model` whose `time_field` is more than `older_than_days` days old; return how many.

    Rows matching `exclude` are left out (a dry run leaves out what an earlier purge
    of the same run would have deleted already).
    """
    before = cutoff(days=older_than_days, now=now)
    batch_size = batch_size or conf.purge_batch_size()
    deleted = 0
    last_pk = 0
    scope = model.objects.exclude(exclude) if exclude is not None else model.objects.all()
    while True:
        rows = list(scope.filter(pk__gt=last_pk).order_by("pk").values_list("pk", time_field)[:batch_size])
        old = [pk for pk, stamp in rows if stamp < before]
        if not old:
            break
        last_pk = rows[-1][0]
        if dry_run:
            count = len(old)
        else:
            started = time.monotonic()
            # By primary key alone (see _delete_events); these times never change once written.
            with write_transaction():
                count = model.objects.filter(pk__in=old).delete()[0]
            _pause(time.monotonic() - started)
        deleted += count
        logger.info(
            "purge batch table=%s%s deleted=%d through_id=%d",
            model._meta.model_name,
            " dry_run=1" if dry_run else "",
            count,
            last_pk,
        )
    return deleted


def purge_expired(
    *,
    older_than_days: float | None = None,
    include_dead: bool = False,
    dry_run: bool = False,
    batch_size: int | None = None,
    now: datetime | None = None,
) -> PurgeCounts:
    """Run every purge and return the counts: what `manage.py purge_events` does.

    First events, older than `older_than_days` (by default EVENTS_RETENTION_DAYS);
    then, each by its own age setting, attempts of the events still kept (never
    younger than the events' age of this run), duplicate tallies and rejected events.
    """
    now = now or timezone.now()
    days = conf.retention_days() if older_than_days is None else older_than_days
    started = time.monotonic()
    common = {"dry_run": dry_run, "batch_size": batch_size, "now": now}
    counts = purge_events(older_than_days=days, include_dead=include_dead, **common)
    # A dry run deleted nothing above: leave out the attempts of the events it counted.
    purged_above = Q(
        event__delivery_state__in=_purged_states(include_dead), event__received_at__lt=cutoff(days=days, now=now)
    )
    # Never the attempts of events this run keeps for being young enough (--older-than 90 keeps 90 days of them).
    attempt_days = max(conf.attempt_retention_days(), days)
    counts.attempts += purge_by_age(
        model=DeliveryAttempt,
        time_field="attempted_at",
        older_than_days=attempt_days,
        exclude=purged_above if dry_run else None,
        **common,
    )
    counts.duplicate_tallies = purge_by_age(
        model=DuplicateTally, time_field="received_at", older_than_days=conf.duplicate_tally_retention_days(), **common
    )
    counts.rejected_events = purge_by_age(
        model=RejectedEvent, time_field="received_at", older_than_days=conf.rejection_retention_days(), **common
    )
    logger.info(
        "purge %s events=%d attempts=%d duplicate_tallies=%d rejected_events=%d older_than_days=%g seconds=%.1f",
        "dry_run" if dry_run else "done",
        counts.events,
        counts.attempts,
        counts.duplicate_tallies,
        counts.rejected_events,
        days,
        time.monotonic() - started,
    )
    return counts


def _purged_states(include_dead: bool) -> list[str]:
    return [DeliveryState.DELIVERED, *([DeliveryState.DEAD] if include_dead else [])]


def _pause(batch_seconds: float) -> None:
    """Leave the database to ingest for a while after a batch: EVENTS_PURGE_PAUSE_FACTOR times as long as it took."""
    pause = batch_seconds * conf.purge_pause_factor()
    if pause > 0:
        time.sleep(pause)
