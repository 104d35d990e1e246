"""SDK test fixtures, and a guard that the SDK's tests, run on their own, import neither Django nor the server."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from importlib.abc import MetaPathFinder
from pathlib import Path

import pytest

from devtools.processes import ROOT
from tests.sdk.helpers import FakeTracker

SERVER_PACKAGES = ("django", "rest_framework", "events_app")
TESTS_DIR = ROOT / "tests"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeTracker]:
    """Yield a stand-in for the tracker, one per test module; tests take it reset through a fixture of their module."""
    fake = FakeTracker().start()
    yield fake
    fake.stop()


# The guard. The standalone run leaves out tests/conftest.py (Django, events_app) and pytest-django:
#
#     .venv/bin/python -m pytest -p no:django --confcutdir=tests/sdk tests/sdk
#
# Then nothing may bring django, rest_framework or events_app into the process: the run
# fails, naming where each was first imported. In the whole suite tests/conftest.py has
# loaded Django already, and the guard stays quiet. Tests that need the server belong in
# tests/system/ (against the server's serializers: test_sdk_parity.py; against the app
# under gunicorn: test_sdk_live.py). No SDK test uses Hypothesis, so the standalone run
# needs none of the Hypothesis profiles tests/conftest.py registers.


def runs_standalone(config: pytest.Config) -> bool:
    """Return True if tests/conftest.py, which sets Django up, is not loaded (kept out by --confcutdir)."""
    top_conftest = TESTS_DIR / "conftest.py"
    files = (getattr(plugin, "__file__", None) for plugin in config.pluginmanager.get_plugins())
    return not any(file and Path(file).resolve() == top_conftest for file in files)


class FirstImports(MetaPathFinder):
    """Record where each server package is first imported from; find nothing (the next finders import it)."""

    def __init__(self) -> None:
        self.sites: dict[str, str] = {}

    def find_spec(self, fullname, path=None, target=None):
        if fullname in SERVER_PACKAGES and fullname not in self.sites:  # asked for only while not yet imported
            ours = [
                f"{Path(frame.filename).relative_to(ROOT)}:{frame.lineno}"
                for frame in traceback.extract_stack()
                if frame.filename != __file__
                and Path(frame.filename).is_relative_to(ROOT)
                and ".venv" not in Path(frame.filename).parts
            ]
            self.sites[fullname] = " <- ".join(reversed(ours[-3:])) or "outside the project (a pytest plugin?)"
        return None


first_imports = FirstImports()


def pytest_configure(config: pytest.Config) -> None:
    if runs_standalone(config):
        sys.meta_path.insert(0, first_imports)


def pytest_unconfigure(config: pytest.Config) -> None:
    if first_imports in sys.meta_path:
        sys.meta_path.remove(first_imports)


@pytest.fixture(scope="session", autouse=True)
def _no_server_code_when_standalone(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the standalone run (at the end: imports made while collecting or testing) if a server package loaded."""
    yield
    loaded = [name for name in SERVER_PACKAGES if name in sys.modules]
    if not loaded or not runs_standalone(request.config):
        return
    sites = "; ".join(f"{name} from {first_imports.sites.get(name, 'before the SDK tests started')}" for name in loaded)
    hint = (
        " (pytest-django imports Django itself: add -p no:django)"
        if request.config.pluginmanager.has_plugin("django")
        else ""
    )
    pytest.fail(
        f"the SDK tests must run without the server, yet {', '.join(loaded)} got imported: {sites}{hint}. "
        "Move tests that need Django or events_app to tests/system/.",
        pytrace=False,
    )
