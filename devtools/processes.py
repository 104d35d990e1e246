"""Start, wait for and stop real processes (moto, gunicorn, workers): one helper for tests, benchmarks and dev."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MANAGE = [sys.executable, str(ROOT / "manage.py")]


def free_port() -> int:
    """Return a loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    """Return True if something accepts TCP connections on host:port."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def wait_for(condition: Callable[[], Any], *, timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll `condition()` until it returns something true, and return it; raise TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(0.02)


def answers(url: str) -> bool:
    """Return True if an HTTP server answers at `url`, whatever its status."""
    try:
        # No proxy: every server these helpers start is on loopback.
        requests.get(url, timeout=2, proxies={"http": "", "https": ""})
        return True
    except (requests.ConnectionError, requests.Timeout):
        return False


def wait_until_up(url: str, process: subprocess.Popen | None = None, timeout: float = 60.0) -> None:
    """Poll `url` until it answers; fail early if `process` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        if answers(url):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def start(
    args: list[str], env: dict, *, log: Path | None = None, cwd: Path = ROOT, own_session: bool = True, **kwargs
) -> subprocess.Popen:
    """Start a process, output to `log` or nowhere; in its own session unless `own_session` is False.

    In its own session, it and its children stop together (`stop`) and a terminal's
    Ctrl-C does not reach them. The working folder defaults to the project's, so
    gunicorn reads gunicorn.conf.py.
    """
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (the child holds it; ours closes below)
    try:
        return subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdout=kwargs.pop("stdout", out),
            stderr=kwargs.pop("stderr", subprocess.STDOUT),
            start_new_session=own_session,
            **kwargs,
        )
    finally:
        if log:
            out.close()


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Send `sig` to the process's whole group and wait for it (SIGKILL after `timeout` s)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def descendants(pid: int) -> set[int]:
    """Return the pids of every living descendant of `pid` (children, their children, ...), read from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        # The command name (2nd field) is in parentheses and may hold spaces: split after it.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    pending = [pid]
    while pending:
        for child in parents.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def alive(pid: int) -> bool:
    """Return True if `pid` is a running process (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class MotoServer:
    """moto's AWS emulator on a loopback port; can be stopped and started again (fresh state)."""

    def __init__(self, port: int | None = None, *, command: list[str] | None = None, log: Path | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = command or [str(BIN / "moto_server")]
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = start([*self.command, "-H", "127.0.0.1", "-p", str(self.port)], os.environ.copy(), log=self.log)
        wait_until_up(self.url, self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


@contextlib.contextmanager
def moto_server(port: int | None = None, *, command: list[str] | None = None) -> Iterator[str]:
    """Run moto's AWS emulator on a loopback port (a free one by default); yield its URL."""
    server = MotoServer(port, command=command)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@contextlib.contextmanager
def precise_moto_server(port: int | None = None) -> Iterator[str]:
    """Run moto with S3 LastModified to the microsecond (bench/moto_precise.py); yield its URL."""
    with moto_server(port, command=[sys.executable, str(ROOT / "bench" / "moto_precise.py")]) as url:
        yield url


@contextlib.contextmanager
def child_python(code: str, *args: str) -> Iterator[subprocess.Popen]:
    """Run `code` in a new Python process (the project importable), stdout piped; kill it at the end."""
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        process.stdout.close()
        process.stderr.close()


def read_line(process: subprocess.Popen, timeout: float = 60.0) -> str:
    """Return the next line the process prints, or fail (with its stderr) after `timeout` seconds."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not lines or not lines[0]:
        process.kill()
        raise AssertionError(f"the child printed nothing; stderr: {process.stderr.read()[-2000:]}")
    return lines[0]
