"""Create the event log's partitions for the days ahead and the idempotency-key buckets (PostgreSQL)."""

from django.core.management.base import BaseCommand

from events_app import logstore


class Command(BaseCommand):
    help = (
        f"Create the log's day partitions up to {logstore.PARTITION_DAYS_AHEAD} days ahead and the key buckets "
        "around now (PostgreSQL; nothing to do on SQLite). Safe to run any time, from several places at once."
    )

    def handle(self, *args, **options):
        created = logstore.ensure_partitions()
        self.stdout.write(f"created={len(created)} days_ahead={logstore.days_ahead()}")
