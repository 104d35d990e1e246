"""The lock files: every package hash-pinned, in step with requirements/*.in, nested, and installed with hash checks.

No network: the checks read the files (and `make -n`), they resolve nothing. A failure
here after editing requirements/*.in means `make lock` was not run.
"""

import itertools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.processes import ROOT

# Each lock and the input it is compiled from, smallest set first: each set contains the one before.
LOCKS = {
    "requirements.txt": "requirements/runtime.in",
    "requirements-run.txt": "requirements/run.in",
    "requirements-dev.txt": "requirements/dev.in",
}
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Locked:
    version: str
    hashes: frozenset[str]
    via: tuple[str, ...]


def logical_lines(text: str) -> list[str]:
    """Return the lines of a requirements file with backslash continuations joined."""
    return re.sub(r"\s*\\\n\s*", " ", text).splitlines()


def read_lock(name: str) -> dict[str, Locked]:
    """Return the packages of a lock file by canonical name, with what its `# via` comments name."""
    packages: dict[str, Locked] = {}
    current = None
    via: list[str] = []
    for line in [*logical_lines((ROOT / name).read_text()), ""]:
        stripped = line.strip()
        if line.startswith("    #"):
            via.append(stripped.removeprefix("#").strip().removeprefix("via").strip())
            continue
        if current is not None:
            packages[current[0]] = Locked(*current[1:], via=tuple(item for item in via if item))
            current, via = None, []
        if not stripped or stripped.startswith("#"):
            continue
        requirement_text, *options = stripped.split(" --")
        assert all(HASH.match("--" + option) for option in options), f"{name}: {stripped[:80]}"
        requirement = Requirement(requirement_text)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==" and not requirement.extras and not requirement.url, f"{name}: {stripped}"
        hashes = frozenset(option.split(":", 1)[1] for option in options)
        current = (canonicalize_name(requirement.name), specifier.version, hashes)
    return packages


def top_level_pins(name: str) -> dict[str, str]:
    """Return {canonical name: version} of an input file and the inputs it includes with -r (not its -c constraints)."""
    path = ROOT / name
    pins: dict[str, str] = {}
    for line in logical_lines(path.read_text()):
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-c "):
            continue
        if line.startswith("-r "):
            pins |= top_level_pins(str((path.parent / line.removeprefix("-r ").strip()).relative_to(ROOT)))
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{name}: pin {line} exactly"
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


@pytest.mark.parametrize("lock", LOCKS)
def test_every_locked_package_is_pinned_with_hashes(lock):
    packages = read_lock(lock)  # fails on a line without == or with anything but sha256 hashes

    unhashed = sorted(name for name, package in packages.items() if not package.hashes)
    assert packages and not unhashed, f"{lock}: no --hash for {unhashed}"


@pytest.mark.parametrize(("lock", "source"), LOCKS.items())
def test_every_top_level_pin_is_locked_at_its_version(lock, source):
    locked = read_lock(lock)

    drifted = {
        name: (version, locked[name].version if name in locked else None)
        for name, version in top_level_pins(source).items()
        if name not in locked or locked[name].version != version
    }
    assert not drifted, f"{source} pins differ from {lock} (pin, locked): {drifted}; run `make lock`"


@pytest.mark.parametrize(("lock", "source"), LOCKS.items())
def test_the_lock_holds_no_top_level_pin_its_inputs_dropped(lock, source):
    pins = top_level_pins(source)

    stale = sorted(
        name
        for name, package in read_lock(lock).items()
        if any(item.startswith("-r requirements/") for item in package.via) and name not in pins
    )
    assert not stale, f"{lock} still has {stale} from an input that no longer pins them; run `make lock`"


def test_each_lock_contains_the_smaller_ones_at_the_same_versions_and_files():
    for smaller_lock, larger_lock in itertools.pairwise(LOCKS):
        smaller, larger = read_lock(smaller_lock), read_lock(larger_lock)

        differing = {
            name: (package.version, larger[name].version if name in larger else None)
            for name, package in smaller.items()
            if name not in larger or (larger[name].version, larger[name].hashes) != (package.version, package.hashes)
        }
        assert not differing, f"{smaller_lock} vs {larger_lock} (version in each): {differing}"


def test_each_lock_says_how_to_rewrite_it_and_make_lock_writes_all_three():
    for lock in LOCKS:
        header = (ROOT / lock).read_text().splitlines()[:2]
        assert header[-1] == "#    make lock", f"{lock}: {header}"

    commands = make_dry_run("lock")
    for lock, source in LOCKS.items():
        assert re.search(
            rf"uv pip compile .*--generate-hashes.* {re.escape(source)} -o {re.escape(lock)}$", commands, re.M
        )


def test_make_run_installs_only_the_run_lock_and_make_test_the_dev_lock_with_hash_checks():
    run_install = pip_installs(make_dry_run("run"))
    test_install = pip_installs(make_dry_run("test"))

    assert run_install == ["--no-input --require-hashes --no-deps -r requirements-run.txt"]
    assert test_install == ["--no-input --require-hashes --no-deps -r requirements-dev.txt"]


def test_the_image_installs_the_runtime_lock_with_hash_checks():
    dockerfile = logical_lines((ROOT / "Dockerfile").read_text())

    installs = [line for line in dockerfile if "pip install" in line]
    assert len(installs) == 1
    assert re.search(r"pip install .*--require-hashes --no-deps -r /tmp/requirements\.txt$", installs[0])
    assert "COPY requirements.txt /tmp/requirements.txt" in dockerfile


def make_dry_run(target: str) -> str:
    """Return the commands `make TARGET` would run from scratch (-B: as if nothing were built)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # Not the settings of a `make test` this may run under: only the Makefile's own.
    env = {key: value for key, value in os.environ.items() if key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    result = subprocess.run(
        ["make", "-n", "-B", "-C", str(ROOT), target], capture_output=True, text=True, check=True, env=env
    )
    return result.stdout


def pip_installs(commands: str) -> list[str]:
    """Return the arguments of each `pip install` among make's commands."""
    return re.findall(r"/bin/pip install (.*)$", commands, re.M)
