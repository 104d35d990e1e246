"""Delete delivered events older than the retention, with their delivery issues; prune the other tables by age."""

from django.core.management.base import BaseCommand, CommandError

from events_app import conf
from events_app.privacy.retention import purge_expired


class Command(BaseCommand):
    help = (
        "Delete delivered events (with their delivery issues) received more than DAYS days ago, in batches; never "
        "pending or failed ones, dead ones only with --include-dead. Then delete call records, duplicate tallies and "
        "rejected events older than their retention settings. Prints how many rows it deleted (or would)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=float,
            metavar="DAYS",
            dest="older_than",
            help=f"Age in days of the events to delete (default EVENTS_RETENTION_DAYS, {conf.retention_days():g}).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; change nothing.")
        parser.add_argument("--include-dead", action="store_true", help="Delete dead events of that age too.")
        parser.add_argument("--batch-size", type=int, help="Rows per transaction (default EVENTS_PURGE_BATCH_SIZE).")

    def handle(self, *args, older_than: float | None, dry_run: bool, include_dead: bool, batch_size, **options):
        if older_than is not None and older_than < 0:
            raise CommandError("--older-than must be 0 days or more.")
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        counts = purge_expired(
            older_than_days=older_than, include_dead=include_dead, dry_run=dry_run, batch_size=batch_size
        )
        self.stdout.write(
            f"{'would delete' if dry_run else 'deleted'} events={counts.events} issues={counts.issues} "
            f"calls={counts.calls} event_keys={counts.event_keys} purchase_keys={counts.purchase_keys} "
            f"duplicate_tallies={counts.duplicate_tallies} "
            f"rejected_events={counts.rejected_events} kpi_rows={counts.kpi_rows} "
            f"hour_counts={counts.hour_counts}"
        )
