"""Retention: delete what is older than it needs to be, in id-ordered batches with short transactions.

`purge_events` deletes the delivered events (dead ones too, if asked) received
before a cutoff, with their delivery issues: an event goes only once every relay
has passed it and it has no issue still to deliver, so nothing undelivered is ever
lost. The other tables are pruned by age: destination call records, duplicate
tallies and rejected events (`purge_expired` runs them all, as `manage.py
purge_events` does).

Each batch reads the next old ids in primary-key order outside any transaction,
then deletes those that still qualify in one short write transaction (SQLite:
queued on the writers' lock like any insert; PostgreSQL: the issues locked first,
so one the retry worker is recording is left for the next run), then pauses as
long again (EVENTS_PURGE_PAUSE_FACTOR): ingest waits at most one batch, and the
purge holds the database at most half the time.

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

from events_app import conf, logstore
from events_app import idempotency as keys
from events_app.db import write_transaction
from events_app.kpi.retention import purge_kpis
from events_app.models import (
    DeliveryCall,
    DeliveryCursor,
    DeliveryIssue,
    DuplicateTally,
    Event,
    EventHour,
    EventKey,
    IssueState,
    PurchaseKey,
    RejectedEvent,
)

logger = logging.getLogger(__name__)


@dataclass
class PurgeCounts:
    """How many rows a purge deleted (or, in a dry run, would delete), per table."""

    events: int = 0
    issues: int = 0
    calls: int = 0
    duplicate_tallies: int = 0
    rejected_events: int = 0
    event_keys: int = 0  # idempotency keys of buckets past the window
    purchase_keys: int = 0
    kpi_rows: int = 0  # daily KPI aggregates and players' activity past EVENTS_KPI_RETENTION_DAYS
    hour_counts: int = 0  # the relays' per-hour counts (EventHour)


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
    """Delete delivered events received more than `older_than_days` days ago, with their issues; return the counts.

    Events no relay has passed, and events whose issue is pending or failed, always
    stay; dead ones go only with `include_dead`. With `dry_run`, nothing changes and
    the counts say what would go.
    """
    before = cutoff(days=older_than_days, now=now)
    batch_size = batch_size or conf.purge_batch_size()
    counts = PurgeCounts()
    if not logstore.partitioned():
        _purge_rows(
            Event.objects.all(),
            before=before,
            include_dead=include_dead,
            dry_run=dry_run,
            batch_size=batch_size,
            counts=counts,
        )
        return counts
    for day in logstore.day_partitions():
        # By whole days: the day the cutoff falls in waits until all of it is old enough
        # (its events are kept up to a day longer), so an hourly purge never deletes an
        # hour of events row by row; it drops a day once a day.
        if day.end > before:
            break
        if _droppable(day, include_dead=include_dead):
            _drop_day(day, dry_run=dry_run, counts=counts)
        else:
            # A day still holding undelivered events: row by row around them.
            rows = Event.objects.filter(received_at__gte=day.start, received_at__lt=day.end)
            _purge_rows(
                rows, before=before, include_dead=include_dead, dry_run=dry_run, batch_size=batch_size, counts=counts
            )
    return counts


def _droppable(day: logstore.DayPartition, *, include_dead: bool) -> bool:
    """Return True if every relay has passed the day and none of its events has an issue that must stay."""
    table = connection.ops.quote_name(day.name)
    waiting = logstore.not_relayed(list(DeliveryCursor.objects.all()), table=day.name)
    kept_states = [IssueState.PENDING, IssueState.FAILED, *([] if include_dead else [IssueState.DEAD])]
    issues = connection.ops.quote_name(DeliveryIssue._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {waiting.sql})", waiting.params)
        if cursor.fetchone()[0]:
            return False
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {issues} i WHERE i.state IN ({', '.join(['%s'] * len(kept_states))}) "
            f"AND i.received_at >= %s AND i.received_at < %s AND i.event_id IN (SELECT id FROM {table}))",
            [*kept_states, day.start, day.end],
        )
        return not cursor.fetchone()[0]


def _drop_day(day: logstore.DayPartition, *, dry_run: bool, counts: PurgeCounts) -> None:
    """Drop a whole day of the log (detached, then dropped), after deleting its events' issues."""
    started = time.monotonic()
    table = connection.ops.quote_name(day.name)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        events = cursor.fetchone()[0]
    day_issues = DeliveryIssue.objects.filter(received_at__gte=day.start, received_at__lt=day.end)
    if dry_run:
        issues = day_issues.count()
    else:
        with write_transaction():
            issues = day_issues.delete()[0]
        logstore.drop_partition(Event._meta.db_table, day.name)
    counts.events += events
    counts.issues += issues
    logger.info(
        "purge day=%s%s events=%d issues=%d seconds=%.2f",
        day.start.date().isoformat(),
        " dry_run=1" if dry_run else "",
        events,
        issues,
        time.monotonic() - started,
    )


def _purge_rows(
    scope, *, before: datetime, include_dead: bool, dry_run: bool, batch_size: int, counts: PurgeCounts
) -> None:
    """Delete the old deliverable events of `scope` in id-ordered batches, with short transactions and pauses.

    The walk goes on to the last id: an old event stored after young ones (rows loaded
    from elsewhere, a clock set back) must go too, so the last, empty batch reads the
    rest of the table once a run (the log keeps no index on received_at).
    """
    last_pk = 0
    while True:
        ids = list(
            scope.filter(received_at__lt=before, pk__gt=last_pk)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            break
        last_pk = ids[-1]
        if dry_run:
            events, issues = _deletable(ids, include_dead=include_dead)
            events, issues = len(events), len(issues)
        else:
            started = time.monotonic()
            events, issues = _delete_events(ids, include_dead=include_dead)
            _pause(time.monotonic() - started)
        counts.events += events
        counts.issues += issues
        logger.info(
            "purge batch table=events%s events=%d issues=%d through_id=%d",
            " dry_run=1" if dry_run else "",
            events,
            issues,
            last_pk,
        )


def _deletable(ids: list[int], *, include_dead: bool) -> tuple[list[int], list[int]]:
    """Return which of `ids` may go (passed by every relay, no issue still to deliver) and their issues' ids."""
    waiting = set(
        Event.objects.filter(pk__in=ids)
        .filter(logstore.not_relayed(list(DeliveryCursor.objects.all())))
        .values_list("pk", flat=True)
    )
    kept_states = [IssueState.PENDING, IssueState.FAILED, *([] if include_dead else [IssueState.DEAD])]
    issues = dict(DeliveryIssue.objects.filter(event_id__in=ids).values_list("event_id", "state"))
    events = [pk for pk in ids if pk not in waiting and issues.get(pk) not in kept_states]
    going = set(events)
    issue_ids = list(
        DeliveryIssue.objects.filter(event_id__in=[pk for pk in issues if pk in going]).values_list("pk", flat=True)
    )
    return events, issue_ids


def _delete_events(ids: list[int], *, include_dead: bool) -> tuple[int, int]:
    """Delete those of `ids` that still qualify, with their issues, in one transaction; return both counts."""
    with write_transaction():
        # Checked under the lock: a resend may have made an issue pending since the read.
        list(DeliveryIssue.objects.filter(event_id__in=ids).order_by("pk").select_for_update().values_list("pk"))
        events, issue_ids = _deletable(ids, include_dead=include_dead)
        if not events:
            return 0, 0
        issues = DeliveryIssue.objects.filter(pk__in=issue_ids).delete()[0]
        # only("pk"): the collector reads the ids, not every payload.
        deleted = Event.objects.filter(pk__in=events).only("pk").delete()[1].get(Event._meta.label, 0)
    return deleted, issues


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


# Keys deleted per statement: short transactions, as for events.
KEY_BATCH = 5000


def purge_keys(*, dry_run: bool = False, now: datetime | None = None) -> tuple[int, int]:
    """Delete event keys of buckets no repeat looks in any more, and purchase keys past their days; return both counts.

    A repeat looks in its own bucket and the one before (events_app.idempotency), so
    buckets older than that go; purchase keys go after EVENTS_PURCHASE_KEY_DAYS.
    """
    moment = (now or timezone.now()).timestamp()
    current, _ = keys.buckets_at(moment)
    old_keys = EventKey.objects.filter(bucket__lt=current - 1)
    old_purchases = PurchaseKey.objects.filter(received_at__lt=cutoff(days=conf.purchase_key_days(), now=now))
    if dry_run:
        return old_keys.count(), old_purchases.count()
    if logstore.partitioned():
        event_keys = logstore.drop_buckets_before(current - 1)
    else:
        event_keys = _delete_in_batches(EventKey, "bucket < %s", [current - 1])
    return event_keys, _delete_in_batches(
        PurchaseKey,
        "received_at < %s",
        [
            PurchaseKey._meta.get_field("received_at").get_db_prep_value(
                cutoff(days=conf.purchase_key_days(), now=now), connection
            )
        ],
    )


def _delete_in_batches(model: type[Model], condition: str, params: list) -> int:
    """Delete the rows of `model` matching the SQL `condition`, KEY_BATCH at a time, each in its own transaction."""
    table = connection.ops.quote_name(model._meta.db_table)
    # The physical row id: these tables' keys are composite, and a batch needs one handle per row.
    row_id = "ctid" if connection.vendor == "postgresql" else "rowid"
    deleted = 0
    while True:
        with write_transaction(), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE {row_id} IN (SELECT {row_id} FROM {table} WHERE {condition} LIMIT %s)",
                [*params, KEY_BATCH],
            )
            count = cursor.rowcount
        deleted += count
        if count < KEY_BATCH:
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
    then, each by its own age setting, destination call records (never younger than
    the events' age of this run), duplicate tallies and rejected events.
    """
    now = now or timezone.now()
    days = conf.retention_days() if older_than_days is None else older_than_days
    started = time.monotonic()
    common = {"dry_run": dry_run, "batch_size": batch_size, "now": now}
    counts = purge_events(older_than_days=days, include_dead=include_dead, **common)
    # Never the calls of events this run keeps for being young enough (--older-than 90 keeps 90 days of them).
    counts.calls = purge_by_age(
        model=DeliveryCall, time_field="called_at", older_than_days=max(conf.call_retention_days(), days), **common
    )
    counts.event_keys, counts.purchase_keys = purge_keys(dry_run=dry_run, now=now)
    counts.duplicate_tallies = purge_by_age(
        model=DuplicateTally, time_field="received_at", older_than_days=conf.duplicate_tally_retention_days(), **common
    )
    counts.rejected_events = purge_by_age(
        model=RejectedEvent, time_field="received_at", older_than_days=conf.rejection_retention_days(), **common
    )
    counts.kpi_rows = purge_kpis(dry_run=dry_run, now=now)
    counts.hour_counts = purge_by_age(
        model=EventHour, time_field="hour", older_than_days=conf.hour_count_retention_days(), **common
    )
    logger.info(
        "purge %s events=%d issues=%d calls=%d event_keys=%d purchase_keys=%d duplicate_tallies=%d "
        "rejected_events=%d kpi_rows=%d hour_counts=%d older_than_days=%g seconds=%.1f",
        "dry_run" if dry_run else "done",
        counts.events,
        counts.issues,
        counts.calls,
        counts.event_keys,
        counts.purchase_keys,
        counts.duplicate_tallies,
        counts.rejected_events,
        counts.kpi_rows,
        counts.hour_counts,
        days,
        time.monotonic() - started,
    )
    return counts


def _pause(batch_seconds: float) -> None:
    """Leave the database to ingest for a while after a batch: EVENTS_PURGE_PAUSE_FACTOR times as long as it took."""
    pause = batch_seconds * conf.purge_pause_factor()
    if pause > 0:
        time.sleep(pause)
