"""Run the local stack (Procfile.local: emulator, worker, web) under honcho's process manager.

What `make run` starts after `manage.py dev_setup`. honcho stops every process when
one exits; the emulator's supervisor (manage.py run_emulator) keeps a dying moto
server from taking the rest down. Ctrl-C stops everything and exits 0.
"""

from __future__ import annotations

import multiprocessing
import os
import sys

import environ
import honcho.manager
from honcho.environ import parse_procfile
from honcho.manager import SIGNALS, Manager
from honcho.printer import Printer

from . import localenv
from .processes import BIN, ROOT, descendants, port_in_use

PROCFILE = ROOT / "Procfile.local"
# honcho SIGKILLs what has not stopped 5 s after its SIGTERM; on a busy machine
# gunicorn's graceful stop (its workers' forwarders flushing) can take longer, and a
# killed web server reads like a crash. Longer than the web's --graceful-timeout.
STOP_GRACE_SECONDS = 15


def prepare_environment() -> None:
    """Give the processes the clone's .env (a variable already set wins, as in the settings) and the venv's bin."""
    env_file = os.environ.get("DJANGO_ENV_FILE", str(localenv.ENV_FILE))
    if env_file:
        environ.Env.read_env(env_file)
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    # Lines as they come, not when a pipe's buffer fills: honcho interleaves them by time.
    os.environ.setdefault("PYTHONUNBUFFERED", "1")


def main() -> int:
    prepare_environment()
    port = localenv.web_port()
    if port_in_use("127.0.0.1", port):
        print(f"error: something already listens on 127.0.0.1:{port} (another make run?); stop it first, or set "
              f"{localenv.WEB_PORT_VARIABLE} to another port", file=sys.stderr)  # fmt: skip
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
    print(f"error: a process exited with status {manager.returncode}, so {names} were stopped (see above)",
          file=sys.stderr)  # fmt: skip
    return manager.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
