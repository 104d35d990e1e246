"""A fresh copy of the clone for tests of `make run`'s stack: none of the developer's files, its own ports."""

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools.processes import ROOT, free_port, stop, wait_until_up

# What a clone holds that the stack does not run, or that a run leaves behind.
NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".local",
    ".env",
    "staticfiles",
    "db.sqlite3*",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    "tests",
    "bench",
    "docs",
    "deploy",
    "warehouse",
)


def make_clone(folder: Path) -> dict:
    """Copy the project into `folder` (nothing of the developer's: no .env, database or key); return its environment.

    The environment has none of the caller's DJANGO_/AWS_/EVENTS_ settings, other ports
    than a developer's `make run` (8000, 4566) and quick retries. `.venv` in the copy
    is a link to the running interpreter's venv, so `.venv/bin/python` runs as printed.
    """
    shutil.copytree(ROOT, folder, ignore=NOT_COPIED)
    (folder / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "AWS_", "DATABASE_URL", "EVENTS_", "FIREHOSE_", "PROMETHEUS_", "TRACKER_"))
    }
    # Real variables win over the .env the stack writes.
    env.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
        DEV_WEB_PORT=str(free_port()),
        EVENTS_RETRY_BASE_SECONDS="0.5",
        EVENTS_RETRY_MAX_SECONDS="2",
        WEB_CONCURRENCY="2",
    )
    return env


def run(folder: Path, env: dict, *args: str) -> str:
    """Run the clone's Python with `args` in the clone; return what it printed (fail on a non-zero status)."""
    return subprocess.run(
        [sys.executable, *args], cwd=folder, env=env, check=True, capture_output=True, text=True, timeout=300
    ).stdout


@contextmanager
def running_stack(folder: Path, env: dict, log_path: Path) -> Iterator[subprocess.Popen]:
    """Run `make run`'s steps after the install (.env, dev_setup, the stack); yield the stack once web answers.

    Left running, it is killed at the end; a test that stops it itself checks its status.
    """
    run(folder, env, "-m", "devtools.localenv")
    run(folder, env, "manage.py", "dev_setup")
    with log_path.open("wb") as log:
        stack = subprocess.Popen(
            [sys.executable, "-m", "devtools.stack"],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_up(f"http://127.0.0.1:{env['DEV_WEB_PORT']}/healthz", stack, timeout=120)
        yield stack
    finally:
        stop(stack, signal.SIGKILL)
