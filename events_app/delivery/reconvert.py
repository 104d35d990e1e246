"""Reconvert: fill the base-currency amount of purchases stored without a rate, and send the corrected lines.

Run by `manage.py reconvert` once rates have been imported. The log row is
corrected in place (its revenue columns and line: a correction, not a delivery),
and the event's delivery issue is made pending with the corrected line, so the
retry worker sends it; its newer `emitted_at` makes it the one the warehouse view
keeps. A sender holding the old line loses its claim, so its outcome is not
recorded and the corrected line still goes out.
"""

import logging
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from events_app import conf, logstore
from events_app.db import write_transaction
from events_app.delivery import hours
from events_app.delivery.issues import queue_again
from events_app.kpi import counting as kpis
from events_app.models import DeliveryCursor, Event
from events_app.money.currency import base_fields, clear_rate_cache, find_rates, utc_day
from sdk.contract import BUILTIN_TYPES

logger = logging.getLogger(__name__)


@dataclass
class ReconvertCounts:
    """How many purchases got their base amount (and were queued to be sent again), and how many still lack one."""

    converted: int = 0
    still_missing: int = 0


def reconvert_missing(*, batch_size: int = 1000, now: datetime | None = None) -> ReconvertCounts:
    """Fill the base-currency fields of purchases stored without a rate, and queue them to be sent again.

    Walks the purchases lacking `revenue_base` (the partial index event_missing_fx_idx)
    in (derived_at, id) order, batch by batch. Each converted event gets its line and
    columns updated and its delivery issue made pending, due now, with the corrected line.
    """
    clear_rate_cache()  # rates have just been imported, maybe by another process
    counts = ReconvertCounts()
    cursor: tuple[datetime, int] | None = None
    pending = Event.objects.filter(revenue__isnull=False, revenue_base__isnull=True).order_by("derived_at", "pk")
    while True:
        page = pending
        if cursor is not None:
            page = page.filter(derived_at__gte=cursor[0]).exclude(derived_at=cursor[0], pk__lte=cursor[1])
        batch = list(page.values_list("pk", "derived_at", "currency", "revenue", "event_type")[:batch_size])
        if not batch:
            break
        cursor = (batch[-1][1], batch[-1][0])
        base = conf.base_currency()
        rates = find_rates({(currency, utc_day(derived_at)) for _, derived_at, currency, _, _ in batch}, base=base)
        fields = {}
        for pk, derived_at, currency, revenue, event_type in batch:
            rate = rates[(currency, utc_day(derived_at))]
            if rate is None:
                counts.still_missing += 1
            else:
                fields[pk] = base_fields(
                    revenue=revenue, rate=rate, base=base, minor_units=_rounds_to_cents(event_type)
                )
        if fields:
            counts.converted += _requeue_converted(fields, now=now or timezone.now())
    logger.info("reconvert converted=%d still_missing=%d", counts.converted, counts.still_missing)
    return counts


def _rounds_to_cents(event_type: str) -> bool:
    """Return True if the type's revenue is rounded to the base currency's minor units (its Money rule)."""
    rules = BUILTIN_TYPES.get(event_type)
    return rules is None or rules.money is None or rules.money.minor_units


def _requeue_converted(fields: dict[int, dict], *, now: datetime) -> int:
    """Write the base fields into payloads and columns and make the events due again; return how many."""
    with write_transaction():
        rows = Event.objects.filter(pk__in=list(fields), revenue_base__isnull=True).only(
            "pk", "game_id", "received_at", "payload"
        )
        if connection.features.has_select_for_update:
            rows = rows.select_for_update()
        events = list(rows)
        for event in events:
            values = fields[event.pk]
            event.payload = {**event.payload, **values}
            event.revenue_base = Decimal(values["revenue_base"])
            event.base_currency = values["base_currency"]
            event.fx_rate = Decimal(values["fx_rate"])
            event.fx_date = date.fromisoformat(values["fx_date"])
        Event.objects.bulk_update(
            events, fields=["payload", "revenue_base", "base_currency", "fx_rate", "fx_date"], batch_size=500
        )
        # Even an event the relay has not passed gets an issue: the relay may be sending its old line right now.
        queue_again(events=events, now=now, again=True, force=True)
        # The relay counted the events it passed without their base amount: add it to their hours.
        # The others it counts, with it, when it passes them.
        waiting = set(
            Event.objects.filter(pk__in=[event.pk for event in events])
            .filter(logstore.not_relayed(list(DeliveryCursor.objects.all())))
            .values_list("pk", flat=True)
        )
        counted = hours.count_lines(event for event in events if event.pk not in waiting)
        hours.add({key: (0, revenue) for key, (_, revenue) in counted.items()})
        kpis.add_revenue(event for event in events if event.pk not in waiting)
    return len(events)
