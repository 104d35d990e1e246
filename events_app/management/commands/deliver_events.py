"""Run delivery: the relay over the event log and the retries of delivery issues (to Firehose by default)."""

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from events_app import conf
from events_app.delivery.worker import run_worker
from events_app.ops import exposition


class Command(BaseCommand):
    help = (
        "Relay the event log to the destination past each shard's cursor and retry failed or resent events; "
        "--once delivers everything committed before it started, then exits."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Drain what is due now, then exit.")
        parser.add_argument("--idle-seconds", type=float, default=1.0, help="Pause between polls when idle.")

    def handle(self, *args, once: bool, idle_seconds: float, **options):
        # The worker runs apart from the web processes (often in another container):
        # it serves its own figures instead of sharing their multiprocess folder.
        if conf.worker_metrics_port():
            try:
                exposition.start_exporter(conf.worker_metrics_port())
            except ImproperlyConfigured as exc:
                raise CommandError(str(exc)) from exc
        totals = run_worker(once=once, idle_seconds=idle_seconds)
        self.stdout.write(f"delivered={totals.delivered} failed={totals.failed} dead={totals.dead}")
