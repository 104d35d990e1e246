"""Prepare a clone for local development (database, emulator stream, dev key, admin login, sample data, rates)."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from devtools import dev_setup, localenv
from events_app import conf


class Command(BaseCommand):
    help = (
        "For a local clone (DJANGO_DEBUG=1, as .env sets): migrate, create the emulator's stream and bucket, the "
        "demo game's key in .local/dev_api_key, the admin login admin/admin, sample events and rates. Idempotent."
    )

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("dev_setup is for a local clone and creates the login admin/admin: set DJANGO_DEBUG=1.")
        report = dev_setup.set_up()
        key_file = _shown(report.key_file)
        self.stdout.write(f"==> AWS: {report.emulator}")
        self.stdout.write(f"==> {'wrote a new' if report.key_created else 'keeping the'} development key in {key_file}")
        self.stdout.write(
            f"==> rates: added={report.rates.added} unchanged={report.rates.unchanged}; "
            f"sample events added={report.sample_events_added}"
        )
        url = localenv.web_url()
        send = ".venv/bin/python -m sdk.client"
        if url != f"http://127.0.0.1:{localenv.DEFAULT_WEB_PORT}":
            send = f"TRACKER_URL={url} {send}"
        aws = conf.aws_endpoint_url() or "real AWS (no emulator)"
        self.stdout.write(
            f"""
------------------------------------------------------------------------
 Player event tracker, local setup ready (`make run` serves it; Ctrl-C stops it all).
   API       {url}/v1/events  and  {url}/v1/events/batch
   API docs  {url}/api/docs/
   Admin     {url}/admin/   login: {report.admin_login}
   Dev key   {key_file}  (game {dev_setup.GAME_SLUG})
   AWS       {aws}, stream {conf.stream_name()}, bucket {conf.s3_bucket()}
 send a first event: {send}
------------------------------------------------------------------------
"""
        )


def _shown(path: Path) -> Path:
    """Return `path` relative to the project folder when inside it, as a newcomer would type it."""
    try:
        return path.relative_to(settings.BASE_DIR)
    except ValueError:
        return path
