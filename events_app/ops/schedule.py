"""The recurring jobs and when they run (UTC): exchange rates, reconversion, retention, partitions.

`manage.py run_schedule` runs them with APScheduler (the compose file's and the
Procfile's `scheduler`); deploy/kubernetes/cronjobs.yaml gives the same jobs as
Kubernetes CronJobs (a test keeps the two alike). Each job is one or two management
commands, run as child processes so that a long purge or a failing import never
takes the scheduler down; their log lines go to the scheduler's output.
"""

import logging
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from events_app import conf

logger = logging.getLogger(__name__)

# Longer than any job should take; a job still running then is stopped and logged.
JOB_TIMEOUT_SECONDS = 6 * 3600


@dataclass(frozen=True)
class Job:
    """A recurring job: its name, its cron schedule (UTC) and what it does."""

    name: str
    cron: str
    description: str


JOBS = (
    # The ECB publishes the day's reference rates around 16:00 CET.
    Job("rates", "30 16 * * 1-5", "download EVENTS_RATES_URL, then `import_rates` it"),
    Job("reconvert", "45 16 * * *", "`reconvert`: purchases that waited for a rate get it, and are sent again"),
    # Just after midnight UTC: whole days are dropped at once, only the minutes since midnight go row by row.
    Job("purge", "10 0 * * *", "`purge_events` (EVENTS_RETENTION_DAYS and the other retention settings)"),
    Job("partitions", "5 * * * *", "`ensure_partitions`: the log's days and the key buckets ahead (PostgreSQL)"),
)


def manage(*args: str) -> int:
    """Run `manage.py ARGS` in a child process; return its exit status."""
    command = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args]
    started = time.monotonic()
    try:
        status = subprocess.run(command, timeout=JOB_TIMEOUT_SECONDS, check=False).returncode
    except subprocess.TimeoutExpired:
        status = -1
    level = logging.INFO if status == 0 else logging.ERROR
    logger.log(level, "job command=%s status=%d seconds=%.1f", args[0], status, time.monotonic() - started)
    return status


def run_job(name: str) -> int:
    """Run the job `name` now; return its exit status (0 when it succeeded)."""
    if name == "rates":
        return _import_rates()
    if name == "reconvert":
        return manage("reconvert")
    if name == "purge":
        return manage("purge_events")
    if name == "partitions":
        return manage("ensure_partitions")
    raise KeyError(name)


def _import_rates() -> int:
    url = conf.rates_url()
    if not url:
        logger.info("job command=import_rates skipped: EVENTS_RATES_URL is empty")
        return 0
    suffix = ".zip" if url.endswith(".zip") else ".csv"
    with tempfile.TemporaryDirectory(prefix="rates-") as folder:
        path = Path(folder) / f"rates{suffix}"
        try:
            with urllib.request.urlopen(url, timeout=60) as response, path.open("wb") as out:
                out.write(response.read())
        except OSError as exc:
            logger.error("job command=import_rates could not download the rates: %s", exc.__class__.__name__)
            return 1
        return manage("import_rates", str(path))
