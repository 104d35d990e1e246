"""The KPIs' own retention: days, and players unseen, older than EVENTS_KPI_RETENTION_DAYS go (run by purge_events)."""

import logging
from datetime import datetime, timedelta

from django.utils import timezone

from events_app import conf
from events_app.db import write_transaction
from events_app.models import KpiDay, KpiPlayer

logger = logging.getLogger(__name__)

# Rows per delete: short transactions, as the log's purge keeps them.
BATCH = 5000


def purge_kpis(*, dry_run: bool = False, now: datetime | None = None) -> int:
    """Delete the KPI days before the cutoff and the players last active before it; return how many rows (would) go.

    A player forgotten this way counts as a new player again if they ever return.
    """
    cutoff = (now or timezone.now()).date() - timedelta(days=conf.kpi_retention_days())
    deleted = 0
    for model, field in ((KpiDay, "day"), (KpiPlayer, "last_day")):
        old = model.objects.filter(**{f"{field}__lt": cutoff})
        if dry_run:
            deleted += old.count()
            continue
        while ids := list(old.order_by("pk").values_list("pk", flat=True)[:BATCH]):
            with write_transaction():
                deleted += model.objects.filter(pk__in=ids).delete()[0]
    logger.info("purge kpis%s rows=%d before=%s", " dry_run=1" if dry_run else "", deleted, cutoff.isoformat())
    return deleted
