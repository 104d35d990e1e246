"""The local stack's parts on their own: the emulator's supervisor (with a stand-in server) and the dev access log."""

import logging
import os
import pty
import select
import signal
import socket
import sys
import threading
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from devtools.emulator import EmulatorSupervisor
from devtools.processes import ROOT, alive, free_port, wait_for
from devtools.weblog import LocalLogger

# Answers HTTP on the port given as `-p PORT`, like moto's server.
STAND_IN = [
    sys.executable,
    "-c",
    "import sys, http.server; port = int(sys.argv[sys.argv.index('-p') + 1]); "
    "http.server.HTTPServer(('127.0.0.1', port), http.server.BaseHTTPRequestHandler).serve_forever()",
]


@pytest.fixture
def supervisor(tmp_path):
    """Yield a supervisor of the stand-in server (not yet running) that records each stream creation."""
    created: list[int] = []
    stop = threading.Event()
    supervisor = EmulatorSupervisor(
        host="127.0.0.1",
        port=free_port(),
        ensure=lambda: created.append(1) or ["delivery stream s"],
        log=tmp_path / "server.log",
        stop=stop,
        command=STAND_IN,
    )
    supervisor.created = created
    yield supervisor
    stop.set()


def run_in_thread(supervisor) -> tuple[threading.Thread, list[int]]:
    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(supervisor.run()))
    thread.start()
    return thread, status


def test_a_killed_server_is_restarted_with_its_stream_and_a_stop_ends_it_with_status_0(supervisor, caplog):
    caplog.set_level(logging.INFO, logger="devtools.emulator")
    thread, status = run_in_thread(supervisor)
    wait_for(lambda: supervisor.created, timeout=30, what="the first start")
    first = supervisor.process.pid

    os.kill(first, signal.SIGKILL)

    wait_for(lambda: len(supervisor.created) == 2, timeout=30, what="the stream created again")
    assert supervisor.process.pid != first
    supervisor.stop.set()
    thread.join(timeout=30)
    assert status == [0]
    assert not alive(supervisor.process.pid)
    messages = [record.getMessage() for record in caplog.records]
    assert "moto server exited with status -9 (killed by SIGKILL); restarting" in messages
    assert any(message.endswith("stream recreated: delivery stream s") for message in messages)


def test_a_taken_port_is_named_and_the_supervisor_exits_1(supervisor, caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", supervisor.port))
        taken.listen()

        assert supervisor.run() == 1

    assert f"something already listens on 127.0.0.1:{supervisor.port}" in caplog.text
    assert supervisor.created == []


def test_a_server_that_never_comes_up_is_given_up_after_5_tries(supervisor, caplog):
    supervisor.command = [sys.executable, "-c", "raise SystemExit(3)"]

    assert supervisor.run() == 1

    assert caplog.text.count("did not come up") == 5
    assert "failed to start 5 times in a row; giving up" in caplog.text


def access_line(logger: LocalLogger, path: str, capsys) -> str:
    response = SimpleNamespace(status="200 OK", headers=[], sent=10)
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1"}
    logger.access(response, None, environ, timedelta(milliseconds=3))
    return capsys.readouterr().out


def test_the_dev_access_log_drops_static_files_and_keeps_every_other_request(capsys):
    config = Config()
    config.set("accesslog", "-")
    logger = LocalLogger(config)

    assert access_line(logger, "/static/admin/css/base.css", capsys) == ""
    assert '"GET /admin/ HTTP/1.1" 200' in access_line(logger, "/admin/", capsys)
    assert '"GET /v1/static-looking HTTP/1.1" 200' in access_line(logger, "/v1/static-looking", capsys)


# An Event, not signal.pause(): a Ctrl-C arriving between "ready" and the wait is kept,
# where pause() would then wait for a second one forever.
CTRL_C_CHILD = """
import signal, sys, threading
from devtools.stack import own_terminal
interrupted = threading.Event()
signal.signal(signal.SIGINT, lambda *_: interrupted.set())  # as honcho's manager: Ctrl-C means stop cleanly
with own_terminal():
    print("ready", flush=True)
    interrupted.wait()
print("stopped cleanly", flush=True)
"""


def run_make_at_a_terminal(tmp_path, child: str) -> tuple[int, str]:
    """Run `make run` (recipe: `child`) at a pseudo-terminal, press Ctrl-C once ready; return (status, output)."""
    (tmp_path / "child.py").write_text(child)
    (tmp_path / "Makefile").write_text(f"run:\n\t{sys.executable} child.py\n")
    pid, terminal = pty.fork()
    if pid == 0:  # the child: make, as a shell at a terminal would start it
        os.chdir(tmp_path)
        os.environ["PYTHONPATH"] = str(ROOT)
        os.execvp("make", ["make", "--no-print-directory", "run"])
    output = b""
    deadline = time.monotonic() + 60
    pressed = False
    while time.monotonic() < deadline:
        if not pressed and b"ready" in output:
            os.write(terminal, b"\x03")  # Ctrl-C: the terminal signals its foreground group
            pressed = True
        if select.select([terminal], [], [], 1)[0]:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # the other side closed: everything exited
                break
            if not chunk:
                break
            output += chunk
    else:  # never finished: stop the whole session rather than wait for it forever
        os.killpg(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(terminal)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_ctrl_c_at_a_terminal_stops_the_stack_and_make_run_exits_0(tmp_path):
    status, output = run_make_at_a_terminal(tmp_path, CTRL_C_CHILD)

    assert "stopped cleanly" in output
    assert "Interrupt" not in output
    assert status == 0


def test_without_its_own_group_make_itself_is_interrupted(tmp_path):
    # The control: the same child without own_terminal() leaves make in the foreground group.
    status, output = run_make_at_a_terminal(tmp_path, CTRL_C_CHILD.replace("with own_terminal():", "if True:"))

    assert "stopped cleanly" in output
    assert status == -signal.SIGINT  # make died of the SIGINT: a shell reports 130
