"""A paginator that never counts millions of rows: a table estimate or a capped count instead."""

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

COUNT_CAP = 10_000  # counted exactly up to here; beyond it the list says "10,000+"


class EstimatedCountPaginator(Paginator):
    """Count up to COUNT_CAP rows exactly; beyond that, give an estimate and say so.

    An unfiltered list on PostgreSQL uses the planner's row estimate (pg_class.reltuples,
    kept current by autovacuum's ANALYZE), which costs nothing. Anything else counts at
    most COUNT_CAP + 1 matching rows, which stays cheap on any filter the indexes serve.
    Pages past the cap are not linked: at that depth an operator narrows the filter.
    """

    cap = COUNT_CAP

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            self.is_estimate = False
            return len(queryset)
        estimate = table_row_estimate(queryset)
        if estimate is not None and estimate > self.cap:
            self.is_estimate = True
            self.is_table_estimate = True
            return estimate
        counted = queryset.order_by().values("pk")[: self.cap + 1].count()
        self.is_estimate = counted > self.cap
        return counted

    is_estimate = False
    is_table_estimate = False

    @property
    def display_count(self) -> str:
        """Return the count as the list shows it: "1,234", "10,000+" or "about 1,200,000"."""
        if self.is_table_estimate:
            return f"about {self.count:,}"
        if self.is_estimate:
            return f"{self.cap:,}+"
        return f"{self.count:,}"


def table_row_estimate(queryset: QuerySet) -> int | None:
    """Return PostgreSQL's estimate of the rows of an unfiltered queryset's table, else None."""
    query = queryset.query
    connection = connections[queryset.db]
    if connection.vendor != "postgresql" or query.where or query.distinct or query.is_sliced:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [connection.ops.quote_name(queryset.model._meta.db_table)],
        )
        row = cursor.fetchone()
    # -1 (never analysed) or no row: no estimate.
    return row[0] if row and row[0] >= 0 else None
