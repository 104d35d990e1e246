"""Run the local stack (Procfile.local: emulator, worker, web) under honcho's process manager.

What `make run` starts after `manage.py dev_setup`. honcho stops every process when
one exits; the emulator's supervisor (manage.py run_emulator) keeps a dying moto
server from taking the rest down. Ctrl-C stops everything and exits 0. The worker
starts once the emulator has its delivery stream (`--wait-for-emulator`), so a fresh
stack does not begin with failed deliveries.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterator

import environ
import honcho.manager
from honcho.environ import parse_procfile
from honcho.manager import SIGNALS, Manager
from honcho.printer import Printer

from . import localenv
from .processes import BIN, ROOT, descendants, port_in_use

PROCFILE = ROOT / "Procfile.local"
# honcho SIGKILLs what has not stopped 5 s after its SIGTERM; on a busy machine
# gunicorn's graceful stop (its workers finishing their requests) can take longer, and a
# killed web server reads like a crash. Longer than the web's --graceful-timeout.
STOP_GRACE_SECONDS = 15
# moto starts in a second or two, longer on a busy machine; past this the worker starts anyway
# (and retries what fails), saying why.
EMULATOR_WAIT_SECONDS = 60


def prepare_environment() -> None:
    """Give the processes the clone's .env (a variable already set wins, as in the settings) and the venv's bin."""
    env_file = os.environ.get("DJANGO_ENV_FILE", str(localenv.ENV_FILE))
    if env_file:
        environ.Env.read_env(env_file)
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    # Lines as they come, not when a pipe's buffer fills: honcho interleaves them by time.
    os.environ.setdefault("PYTHONUNBUFFERED", "1")


@contextlib.contextmanager
def own_terminal() -> Iterator[None]:
    """Make this process's group the terminal's foreground one while the stack runs, then give it back.

    Ctrl-C signals the terminal's foreground group. Under `make run` that is make's, and
    make, interrupted, exits 130 ("make: *** ... Interrupt") however cleanly the stack
    stopped; in a group of its own, the stack alone gets the SIGINT, stops everything,
    and make reports the stack's 0. Nothing changes without a terminal (CI, tests).
    """
    try:
        terminal = sys.stdin.fileno()
        foreground = os.tcgetpgrp(terminal) if os.isatty(terminal) else None
    except (OSError, ValueError):  # no stdin, or not a terminal we may ask
        foreground = None
    if foreground is None or os.getpgrp() != foreground:  # already in the background: leave it so
        yield
        return
    os.setpgid(0, 0)
    # A background group writing the terminal's settings gets SIGTTOU; ignore it for the switch.
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(terminal, os.getpgrp())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(terminal, foreground)
        signal.signal(signal.SIGTTOU, previous)


def wait_for_emulator(*, timeout: float = EMULATOR_WAIT_SECONDS) -> int:
    """Return 0 once the emulator answers with its Firehose stream (run_emulator creates it), or after `timeout`.

    Procfile.local runs this before the worker: started first, the worker's first
    batches would fail against a server still starting (`failed=5` in the log).
    """
    prepare_environment()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracking_project.settings")
    import django

    django.setup()
    from botocore.exceptions import BotoCoreError, ClientError

    from events_app import conf
    from events_app.delivery.destinations import aws

    if not conf.aws_endpoint_url():
        return 0  # real AWS: nothing to wait for
    client = aws.setup_client("firehose")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if conf.stream_name() in client.list_delivery_streams(Limit=10000)["DeliveryStreamNames"]:
                return 0
        except (BotoCoreError, ClientError):
            pass  # not up yet
        time.sleep(0.25)
    print(f"warning: no Firehose stream on the emulator after {timeout:.0f} s: the worker starts", file=sys.stderr)
    return 0


def main() -> int:
    if sys.argv[1:] == ["--wait-for-emulator"]:
        return wait_for_emulator()
    with own_terminal():
        return run_stack()


def run_stack() -> int:
    """Run Procfile.local until Ctrl-C or a process exits; return the exit status `make run` should have."""
    prepare_environment()
    port = localenv.web_port()
    if port_in_use("127.0.0.1", port):
        print(
            f"error: something already listens on 127.0.0.1:{port} (another make run?); stop it first, or set "
            f"{localenv.WEB_PORT_VARIABLE} to another port",
            file=sys.stderr,
        )
        return 1
    processes = parse_procfile(PROCFILE.read_text()).processes
    honcho.manager.KILL_WAIT = STOP_GRACE_SECONDS
    manager = Manager(Printer(sys.stdout, colour=sys.stdout.isatty()))
    for name, command in processes.items():
        manager.add_process(name, command, env=os.environ.copy(), cwd=str(ROOT))
    manager.loop()
    # honcho watches each process from a helper process of its own: let those end too.
    for helper in multiprocessing.active_children():
        helper.join(timeout=10)
    left = sorted(descendants(os.getpid()))
    names = ", ".join(processes)
    if manager.returncode in {code["rc"] for code in SIGNALS.values()}:
        # honcho answers 130 or 143 when Ctrl-C or SIGTERM asked it to stop: the normal end here.
        print(f"==> stopped {names}" + (f"; still running: pids {left}" if left else "; nothing left running"))
        return 1 if left else 0
    print(
        f"error: a process exited with status {manager.returncode}, so {names} were stopped (see above)",
        file=sys.stderr,
    )
    return manager.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
