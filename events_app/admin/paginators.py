"""Counts that never scan millions of rows: the event list pages by keyset (events_app.admin.events) and counts
nothing; the "resend all matching" confirmation counts up to a cap."""

from django.db.models import QuerySet

COUNT_CAP = 10_000  # counted exactly up to here; beyond it the count says "10,000+"


def capped_count(queryset: QuerySet, cap: int | None = None) -> str:
    """Return how many rows `queryset` matches as "1,234", or "10,000+" past the cap (at most cap + 1 rows read)."""
    cap = COUNT_CAP if cap is None else cap
    counted = queryset.order_by().values("pk")[: cap + 1].count()
    return f"{cap:,}+" if counted > cap else f"{counted:,}"
