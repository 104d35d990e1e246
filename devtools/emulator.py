"""The local AWS emulator under supervision: moto's server, restarted if it dies, its streams recreated each start.

moto keeps everything in memory, so a restarted server is empty: the supervisor
creates the bucket and the delivery stream again before anything else can miss them.
Meanwhile the web server keeps acknowledging events (they wait in the database) and
the worker delivers them once the stream is back.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .processes import BIN, answers, port_in_use, start

logger = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 30.0
# A server that cannot come up this many times in a row will not (a broken install):
# give up instead of restarting it forever.
MAX_FAILED_STARTS = 5
# Before a restart: lets a stop signal that arrived with the server's death win, and
# keeps a server that dies at once from spinning.
RESTART_PAUSE_SECONDS = 0.5


def describe_exit(returncode: int) -> str:
    """Return 'status N', naming the signal when one ended the process."""
    if returncode < 0:
        return f"status {returncode} (killed by {signal.Signals(-returncode).name})"
    return f"status {returncode}"


class EmulatorSupervisor:
    """Run moto's server on host:port until `stop` is set, restarting it and calling `ensure` after each start."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        ensure: Callable[[], list[str]],
        log: Path | None,
        stop: threading.Event,
        command: list[str] | None = None,
    ) -> None:
        self.host, self.port, self.url = host, port, f"http://{host}:{port}"
        self.ensure = ensure
        self.log = log
        self.stop = stop
        self.command = command or [str(BIN / "moto_server")]
        self.process: subprocess.Popen | None = None

    def run(self) -> int:
        """Supervise until stopped; return the exit status for the process manager (0: stopped as asked)."""
        if port_in_use(self.host, self.port):
            logger.error(
                "something already listens on %s:%d (another make run?): stop it, or point AWS_ENDPOINT_URL and "
                "the emulator at another port",
                self.host,
                self.port,
            )
            return 1
        starts = failed_starts = 0
        try:
            while not self.stop.is_set():
                if not self._start(restart=starts > 0):
                    failed_starts += 1
                    if failed_starts >= MAX_FAILED_STARTS:
                        logger.error("moto server failed to start %d times in a row; giving up", failed_starts)
                        return 1
                    self.stop.wait(RESTART_PAUSE_SECONDS)
                    continue
                failed_starts = 0
                starts += 1
                self._watch()
                if self.stop.wait(RESTART_PAUSE_SECONDS):
                    break
                logger.warning("moto server exited with %s; restarting", describe_exit(self.process.returncode))
        finally:
            self._terminate()
        return 0

    def _start(self, *, restart: bool) -> bool:
        """Start the server and create the streams on it; return False if it did not come up."""
        # In our process group: the process manager's stop signal (and its SIGKILL, if it
        # comes to that) reaches the server too, so it never outlives the supervisor.
        self.process = start(
            [*self.command, "-H", self.host, "-p", str(self.port)], os.environ.copy(), log=self.log, own_session=False
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not answers(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline or self.stop.wait(0.1):
                logger.warning(
                    "moto server did not come up at %s (%s)",
                    self.url,
                    describe_exit(self.process.returncode) if self.process.poll() is not None else "no answer",
                )
                self._terminate()
                return False
        try:
            created = self.ensure()
        except Exception as exc:  # the server died right after answering, say: start it again
            logger.warning("could not create the streams on %s: %s", self.url, exc)
            self._terminate()
            return False
        what = ", ".join(created) if created else "nothing to create"
        if restart:
            logger.warning("moto server back at %s (pid %d); stream recreated: %s", self.url, self.process.pid, what)
        else:
            logger.info("moto server up at %s (pid %d, log %s): %s", self.url, self.process.pid, self.log, what)
        return True

    def _watch(self) -> None:
        while not self.stop.is_set() and self.process.poll() is None:
            self.stop.wait(0.2)

    def _terminate(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        logger.info("moto server stopped")
