"""The local stack's settings: the .env file a clone runs with, and the addresses the stack serves on.

`make run` writes .env before anything else (`python -m devtools.localenv`): Django
cannot start on a fresh clone without it (DJANGO_DEBUG off needs a secret key), so
this module reads no Django settings. tracking_project/settings.py reads the file;
variables already in the environment win over it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from .processes import ROOT

ENV_FILE = ROOT / ".env"
# Where the web server listens; a test (or a second clone) picks other ports through
# these variables, as the emulator's comes from AWS_ENDPOINT_URL.
WEB_PORT_VARIABLE = "DEV_WEB_PORT"
DEFAULT_WEB_PORT = 8000
DEFAULT_EMULATOR_URL = "http://127.0.0.1:4566"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})


def env_file_text(*, root: Path) -> str:
    """Return the .env of a clone in `root`: debug on, its SQLite file, moto on loopback with fake credentials."""
    return f"""\
# Local development settings, written by `make run` (python -m devtools.localenv) when
# missing, never rewritten: edit freely. Every manage.py command, gunicorn and the
# worker read this file; a variable set in the environment wins over it.
DJANGO_DEBUG=1
DATABASE_URL=sqlite:///{root / "db.sqlite3"}
# The AWS emulator (moto) that `make run` starts, with fake credentials so real ones
# never reach it. For real AWS, remove these four lines and use your own credentials.
AWS_ENDPOINT_URL={DEFAULT_EMULATOR_URL}
AWS_ACCESS_KEY_ID=testing
AWS_SECRET_ACCESS_KEY=testing
AWS_SESSION_TOKEN=testing
# The port of `make run`'s web server (http://127.0.0.1:PORT).
{WEB_PORT_VARIABLE}={DEFAULT_WEB_PORT}
"""


def write_env_file(path: Path = ENV_FILE, *, root: Path = ROOT) -> bool:
    """Write the local .env at `path` unless a file is there already; return True if written."""
    if path.exists():
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(env_file_text(root=root))
    tmp.replace(path)
    return True


def web_port() -> int:
    """Return the port of the local web server (DEV_WEB_PORT, default 8000)."""
    return int(os.environ.get(WEB_PORT_VARIABLE) or DEFAULT_WEB_PORT)


def web_url() -> str:
    return f"http://127.0.0.1:{web_port()}"


def emulator_address(endpoint_url: str) -> tuple[str, int]:
    """Return (host, port) to start moto on for `endpoint_url`; ValueError unless it is http:// on loopback."""
    parts = urlsplit(endpoint_url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError(f"AWS_ENDPOINT_URL={endpoint_url} is not an http:// address on this machine's loopback")
    return "127.0.0.1", parts.port or 80


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the clone's local .env (development settings) if missing.")
    parser.parse_args(argv)
    if write_env_file():
        print(f"==> wrote {ENV_FILE.relative_to(ROOT)} (local settings: debug on, moto on {DEFAULT_EMULATOR_URL})")
    else:
        print(f"==> keeping {ENV_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
