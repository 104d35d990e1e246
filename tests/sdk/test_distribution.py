"""The SDK as published: its sdist and wheel build offline, install into a clean venv, and send from there."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import sdk

SDK_DIR = Path(sdk.__file__).parent
NAME, VERSION = "playertrack", sdk.__version__
# PEP 639 (a licence given as an SPDX expression) needs setuptools 77; the dev lock pins it.
SETUPTOOLS_NEEDED = (77,)


def run(*command: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


def build_hook(project: Path, hook: str, out: Path) -> Path:
    """Call the build backend's `hook` (build_sdist, build_wheel) in `project`, as `python -m build --no-isolation`."""
    code = f"import sys; from setuptools import build_meta; print(build_meta.{hook}(sys.argv[1]))"
    name = run(sys.executable, "-c", code, out, cwd=project).strip().splitlines()[-1]
    return out / name


def requirement_names(distribution: str) -> list[str]:
    """Return the names `distribution` requires, extras left out."""
    requires = importlib.metadata.requires(distribution) or []
    return [re.match(r"[A-Za-z0-9._-]+", line).group() for line in requires if "extra ==" not in line]


def copy_installed(distribution: str, site: Path) -> None:
    """Copy an installed distribution (its files and metadata) from this venv into `site`: offline, no index."""
    for file in importlib.metadata.distribution(distribution).files or []:
        if ".." in file.parts or "__pycache__" in file.parts:
            continue  # scripts outside site-packages, byte code
        target = site / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file.locate(), target)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """Build the sdist from a copy of sdk/, then the wheel from the unpacked sdist (so the sdist is complete)."""
    setuptools = tuple(int(part) for part in importlib.metadata.version("setuptools").split(".")[:1])
    assert setuptools >= SETUPTOOLS_NEEDED, "the dev lock needs setuptools>=77 (requirements/dev.in, make lock)"
    folder = tmp_path_factory.mktemp("build")
    source, dist = folder / "source", folder / "dist"
    dist.mkdir()
    shutil.copytree(SDK_DIR, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    sdist = build_hook(source, "build_sdist", dist)
    with tarfile.open(sdist) as archive:
        archive.extractall(folder / "unpacked", filter="data")
    wheel = build_hook(folder / "unpacked" / f"{NAME}-{VERSION}", "build_wheel", dist)
    return sdist, wheel


def test_the_sdist_and_wheel_carry_the_package_its_licence_and_its_type_marker(built):
    sdist, wheel = built
    assert (sdist.name, wheel.name) == (f"{NAME}-{VERSION}.tar.gz", f"{NAME}-{VERSION}-py3-none-any.whl")

    with tarfile.open(sdist) as archive:
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {
        "pyproject.toml",
        "README.md",
        "CHANGELOG.md",
        "LICENSE",
        "__init__.py",
        "contract.py",
        "py.typed",
    } <= in_sdist

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"{NAME}-{VERSION}.dist-info/METADATA").decode()
        entry_points = archive.read(f"{NAME}-{VERSION}.dist-info/entry_points.txt").decode()
    modules = {name.removeprefix(f"{NAME}/") for name in names if name.startswith(f"{NAME}/")}
    assert modules == {path.name for path in SDK_DIR.glob("*.py")} | {"py.typed"}
    assert f"{NAME}-{VERSION}.dist-info/licenses/LICENSE" in names
    assert not any(name.startswith(("sdk/", "tests/")) for name in names)
    assert "License-Expression: Apache-2.0" in metadata
    assert re.search(r"^Requires-Dist: requests<3,>=2\.31$", metadata, re.MULTILINE)
    assert "Requires-Python: >=3.11" in metadata
    assert "tracker-simulate = playertrack.simulate:main" in entry_points
    assert "pip install playertrack" in metadata  # the README is the long description


@pytest.fixture(scope="module")
def clean_venv(built, tmp_path_factory) -> Path:
    """A venv holding only the wheel, and requests with its dependencies copied from this venv (no download)."""
    _, wheel = built
    venv = tmp_path_factory.mktemp("clean") / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    needed, seen = ["requests"], set()
    while needed:
        name = needed.pop()
        if name.lower() not in seen:
            seen.add(name.lower())
            copy_installed(name, site)
            needed += requirement_names(name)
    pip = [sys.executable, "-m", "pip", "--python", python]
    run(*pip, "install", "--no-index", "--no-deps", "--disable-pip-version-check", wheel)
    assert "No broken requirements found" in run(*pip, "check", "--disable-pip-version-check")
    return python


SEND_FROM_THE_WHEEL = """
import importlib.util, json, logging, sys
import playertrack
from playertrack import Tracker, TrackerAuthError

url, spool = sys.argv[1], sys.argv[2]
tracker = Tracker(base_url=url, api_key="wheel-key", persist=spool, debug=True)
ids = [
    tracker.track_install("wheel-player", country="FR", platform="android"),
    tracker.track_purchase("wheel-player", transaction_id="GPA.w-1", product_id="gems", price="4.99", currency="EUR"),
]
ok = tracker.shutdown(timeout=10)
print(json.dumps({
    "file": playertrack.__file__,
    "version": playertrack.__version__,
    "sdk_importable": importlib.util.find_spec("sdk") is not None,
    "ids": ids,
    "ok": ok,
    "stats": tracker.stats().sent,
    "auth_error_is_exported": issubclass(TrackerAuthError, playertrack.TrackerError),
}))
"""


def test_the_installed_wheel_imports_as_playertrack_alone_and_sends_events(clean_venv, fake_server, tmp_path):
    fake_server.reset()

    # -I: isolated, neither this repository nor PYTHONPATH on the path; only the clean venv.
    done = subprocess.run(
        [clean_venv, "-I", "-c", SEND_FROM_THE_WHEEL, fake_server.url, tmp_path / "spool.sqlite3"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert Path(out["file"]).is_relative_to(clean_venv.parent.parent)
    assert out["version"] == VERSION and out["sdk_importable"] is False
    assert out["ok"] is True and out["stats"] == 2 and out["auth_error_is_exported"] is True
    assert fake_server.sent_event_ids() == out["ids"]
    (request,) = fake_server.requests
    assert request.headers["User-Agent"].startswith(f"playertrack/{VERSION} python/")
    assert "playertrack.tracker DEBUG" in done.stderr and "answered 200" in done.stderr  # debug=True, to stderr
    assert "wheel-key" not in done.stderr


def test_the_installed_wheel_runs_its_sample_client_and_simulator_commands(clean_venv, fake_server):
    fake_server.reset()

    sample = run(clean_venv, "-I", "-m", "playertrack.client", "--url", fake_server.url, "--api-key", "wheel-key")
    usage = run(clean_venv.parent / "tracker-simulate", "--help")

    assert "2 accepted, 0 duplicates, 0 rejected" in sample
    assert fake_server.requests[0].json["events"][0]["context"] == {"source": "python -m playertrack.client"}
    assert usage.startswith("usage: python -m playertrack.simulate")
