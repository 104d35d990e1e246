"""Run the local AWS emulator (moto) under supervision: `make run`'s emulator process (Procfile.local)."""

import logging
import signal
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from devtools.emulator import EmulatorSupervisor
from devtools.localenv import emulator_address
from events_app import conf
from events_app.delivery.destinations.base import ensure_emulator_streams


class Command(BaseCommand):
    help = (
        "Development only: run moto's server at AWS_ENDPOINT_URL (loopback), create the bucket and stream after each "
        "start, restart it if it dies; SIGINT or SIGTERM stops it (exit status 0)."
    )

    def handle(self, *args, **options):
        endpoint = conf.aws_endpoint_url()
        if not endpoint:
            raise CommandError("AWS_ENDPOINT_URL is empty (real AWS): there is no emulator to run.")
        try:
            host, port = emulator_address(endpoint)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        # The app's loggers alone are at INFO (events_app/logs.py); the supervisor's lines
        # are this process's whole output.
        logging.getLogger("devtools").setLevel(logging.INFO)
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        log = Path(settings.BASE_DIR) / ".local" / "moto.log"
        log.parent.mkdir(mode=0o700, exist_ok=True)
        supervisor = EmulatorSupervisor(host=host, port=port, ensure=ensure_emulator_streams, log=log, stop=stop)
        status = supervisor.run()
        if status:
            raise CommandError("the emulator stopped (see above)", returncode=status)
