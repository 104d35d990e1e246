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


def test_a_lower_package_importing_a_higher_one_fails_the_check(copy_of_the_code):
    codes = copy_of_the_code / "events_app" / "money" / "codes.py"
    codes.write_text(codes.read_text() + "\nfrom events_app.ingest import service  # noqa: E402, F401\n")

    checked = lint_imports(copy_of_the_code)

    assert checked.returncode == 1
    assert "events_app.money is not allowed to import events_app.ingest" in checked.stdout


def test_the_root_importing_a_package_fails_the_check(copy_of_the_code):
    conf = copy_of_the_code / "events_app" / "conf.py"
    conf.write_text(conf.read_text() + "\nfrom events_app.delivery import breaker  # noqa: E402, F401\n")

    checked = lint_imports(copy_of_the_code)

    assert checked.returncode == 1
    assert "is not allowed to import events_app.delivery" in checked.stdout


def test_a_circle_between_a_packages_modules_fails_the_check(copy_of_the_code):
    # status already imports heartbeat: heartbeat importing status closes a circle inside delivery.
    heartbeat = copy_of_the_code / "events_app" / "delivery" / "heartbeat.py"
    heartbeat.write_text(heartbeat.read_text() + "\nfrom events_app.delivery import status  # noqa: E402, F401\n")

    checked = lint_imports(copy_of_the_code)

    assert checked.returncode == 1
    assert "No circle of imports between the modules of a package BROKEN" in checked.stdout


def test_the_service_importing_the_development_tools_fails_the_check(copy_of_the_code):
    ingest = copy_of_the_code / "events_app" / "ingest" / "service.py"
    ingest.write_text(ingest.read_text() + "\nimport devtools.localenv  # noqa: E402, F401\n")

    checked = lint_imports(copy_of_the_code)

    assert checked.returncode == 1
    assert "The service never imports the development tools BROKEN" in checked.stdout
