"""Run the recurring jobs (rates, reconvert, purge) on their schedule, or one of them now."""

import signal
from datetime import UTC

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from django.core.management.base import BaseCommand, CommandError

from events_app.ops.schedule import JOBS, run_job


class Command(BaseCommand):
    help = "Run the recurring jobs on their schedule (UTC) until SIGTERM; --list shows it, --now JOB runs one job."

    def add_arguments(self, parser):
        parser.add_argument(
            "--list", action="store_true", dest="list_jobs", help="Print the jobs and their schedules, then exit."
        )
        parser.add_argument("--now", metavar="JOB", choices=[job.name for job in JOBS], help="Run JOB once, now.")

    def handle(self, *args, list_jobs: bool, now: str | None, **options):
        if list_jobs:
            for job in JOBS:
                self.stdout.write(f"{job.name:<10} {job.cron:<15} {job.description}")
            return
        if now:
            if run_job(now) != 0:
                raise CommandError(f"job {now} failed")
            return
        scheduler = BlockingScheduler(timezone=UTC)
        for job in JOBS:
            # One run at a time per job; a run missed while down runs once at start (within an hour).
            scheduler.add_job(
                run_job,
                CronTrigger.from_crontab(job.cron, timezone=UTC),
                args=[job.name],
                id=job.name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=3600,
            )
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: scheduler.shutdown(wait=False))
        scheduler.start()
