"""The import rule (.importlinter) holds, and a change that breaks it fails the check."""

import shutil
import subprocess

import pytest

from devtools.processes import BIN, ROOT

PACKAGES = ("events_app", "devtools")


def lint_imports(where) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "lint-imports"), "--no-logo", "--no-cache"], cwd=where, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def copy_of_the_code(tmp_path):
    """Return a folder holding a copy of the packages and the import rule, to break on purpose."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def test_the_code_keeps_the_import_rule():
    checked = lint_imports(ROOT)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 broken" in checked.stdout


# Each: the file changed (under the copy), the import added, what the check then says.
BROKEN_RULES = {
    "a lower package imports a higher one": (
        "events_app/money/codes.py",
        "from events_app.ingest import service",
        "events_app.money is not allowed to import events_app.ingest",
    ),
    "the root imports a package": (
        "events_app/conf.py",
        "from events_app.delivery import relay",
        "is not allowed to import events_app.delivery",
    ),
    # status already imports heartbeat: heartbeat importing status closes a circle inside delivery.
    "a circle inside a package": (
        "events_app/delivery/heartbeat.py",
        "from events_app.delivery import status",
        "No circle of imports between the modules of a package BROKEN",
    ),
    "the service imports the development tools": (
        "events_app/ingest/service.py",
        "import devtools.localenv",
        "The service never imports the development tools BROKEN",
    ),
}


@pytest.mark.parametrize(("path", "line", "said"), BROKEN_RULES.values(), ids=BROKEN_RULES.keys())
def test_an_import_breaking_the_rule_fails_the_check(copy_of_the_code, path, line, said):
    module = copy_of_the_code / path
    module.write_text(module.read_text() + f"\n{line}  # noqa: E402, F401\n")

    checked = lint_imports(copy_of_the_code)

    assert checked.returncode == 1
    assert said in checked.stdout
