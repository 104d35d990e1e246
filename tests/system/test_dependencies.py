"""The lock files: every package hash-pinned, in step with requirements/*.in, nested, and installed with hash checks.

No network: the checks read the files, the installed packages' metadata and `make -n`;
they resolve nothing. A failure here after editing requirements/*.in means `make lock`
was not run.
"""

import itertools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from devtools.processes import ROOT

# Each lock and the input it is compiled from, smallest set first: each set contains the one before.
LOCKS = {
    "requirements.txt": "requirements/runtime.in",
    "requirements-run.txt": "requirements/run.in",
    "requirements-dev.txt": "requirements/dev.in",
}
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Locked:
    name: str
    version: str
    marker: Marker | None
    hashes: frozenset[str]
    via: tuple[str, ...]

    @property
    def applies_here(self) -> bool:
        """Return True if pip installs this package on this machine (the locks are for every platform)."""
        return self.marker is None or self.marker.evaluate()


def logical_lines(text: str) -> list[str]:
    """Return the lines of a requirements file with backslash continuations joined."""
    return re.sub(r"\s*\\\n\s*", " ", text).splitlines()


def read_lock(name: str) -> list[Locked]:
    """Return the entries of a lock file, with what their `# via` comments name.

    A package can have two entries, one version per Python range (e.g. one for 3.11, one for 3.12+).
    """
    entries: list[Locked] = []
    current = None
    via: list[str] = []
    for line in [*logical_lines((ROOT / name).read_text()), ""]:
        stripped = line.strip()
        if line.startswith("    #"):
            via.append(stripped.removeprefix("#").strip().removeprefix("via").strip())
            continue
        if current is not None:
            entries.append(Locked(*current, via=tuple(item for item in via if item)))
            current, via = None, []
        if not stripped or stripped.startswith("#"):
            continue
        requirement_text, *options = stripped.split(" --")
        assert all(HASH.match("--" + option) for option in options), f"{name}: {stripped[:80]}"
        requirement = Requirement(requirement_text)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==" and not requirement.extras and not requirement.url, f"{name}: {stripped}"
        hashes = frozenset(option.split(":", 1)[1] for option in options)
        current = (canonicalize_name(requirement.name), specifier.version, requirement.marker, hashes)
    return entries


def locked_here(name: str) -> dict[str, Locked]:
    """Return {canonical name: entry} of what pip installs from a lock file on this machine."""
    entries = [entry for entry in read_lock(name) if entry.applies_here]
    assert len({entry.name for entry in entries}) == len(entries), f"{name}: two entries apply here"
    return {entry.name: entry for entry in entries}


def top_level_requirements(name: str) -> dict[str, Requirement]:
    """Return the requirements of an input file and of the inputs it includes with -r (not its -c constraints)."""
    path = ROOT / name
    requirements: dict[str, Requirement] = {}
    for line in logical_lines(path.read_text()):
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-c "):
            continue
        if line.startswith("-r "):
            included = (path.parent / line.removeprefix("-r ").strip()).resolve().relative_to(ROOT)
            requirements |= top_level_requirements(str(included))
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{name}: pin {line} exactly"
        requirements[canonicalize_name(requirement.name)] = requirement
    return requirements


def top_level_pins(name: str) -> dict[str, str]:
    """Return {canonical name: version} of what an input file pins."""
    requirements = top_level_requirements(name)
    return {package: next(iter(requirement.specifier)).version for package, requirement in requirements.items()}


def needed_here(requirements: list[Requirement]) -> set[str]:
    """Return the canonical names of REQUIREMENTS and all they need on this machine, from the installed metadata."""
    names: set[str] = set()
    done: set[tuple[str, str]] = set()
    todo = [(canonicalize_name(req.name), frozenset(req.extras)) for req in requirements]
    while todo:
        name, extras = todo.pop()
        names.add(name)
        for extra in {"", *extras}:
            if (name, extra) in done:
                continue
            done.add((name, extra))
            for text in metadata.requires(name) or []:
                requirement = Requirement(text)
                if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                    todo.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return names


@pytest.mark.parametrize("lock", LOCKS)
def test_every_locked_package_is_pinned_with_hashes(lock):
    entries = read_lock(lock)  # fails on a line without == or with anything but sha256 hashes

    unhashed = sorted(entry.name for entry in entries if not entry.hashes)
    assert entries and not unhashed, f"{lock}: no --hash for {unhashed}"


@pytest.mark.parametrize(("lock", "source"), LOCKS.items())
def test_every_top_level_pin_is_locked_at_its_version(lock, source):
    locked: dict[str, set[str]] = {}
    for entry in read_lock(lock):
        locked.setdefault(entry.name, set()).add(entry.version)

    drifted = {
        name: (version, sorted(locked.get(name, ())))
        for name, version in top_level_pins(source).items()
        if locked.get(name) != {version}
    }
    assert not drifted, f"{source} pins differ from {lock} (pin, locked): {drifted}; run `make lock`"


@pytest.mark.parametrize(("lock", "source"), LOCKS.items())
def test_the_lock_holds_no_top_level_pin_its_inputs_dropped(lock, source):
    pins = top_level_pins(source)

    stale = sorted(
        entry.name
        for entry in read_lock(lock)
        if any(item.startswith("-r requirements/") for item in entry.via) and entry.name not in pins
    )
    assert not stale, f"{lock} still has {stale} from an input that no longer pins them; run `make lock`"


@pytest.mark.parametrize(("lock", "source"), LOCKS.items())
def test_the_lock_names_exactly_what_its_inputs_need(lock, source):
    here = locked_here(lock)
    # The metadata read is the installed packages': the locked one only in a venv made from the locks.
    other = {name: installed_version(name) for name, entry in here.items() if installed_version(name) != entry.version}
    if other:
        pytest.skip(f"this venv is not made from the locks (installed: {other}); `make test` builds one that is")

    needed = needed_here(list(top_level_requirements(source).values()))

    missing, unneeded = sorted(needed - set(here)), sorted(set(here) - needed)
    assert not missing, f"{lock} misses {missing}, which its packages need; run `make lock`"
    assert not unneeded, f"{lock} has {unneeded}, which nothing in {source} needs; run `make lock`"


def test_each_lock_contains_the_smaller_ones_at_the_same_versions_and_files():
    for smaller_lock, larger_lock in itertools.pairwise(LOCKS):
        larger = {(entry.name, entry.version, entry.hashes) for entry in read_lock(larger_lock)}

        differing = sorted(
            f"{entry.name}=={entry.version}"
            for entry in read_lock(smaller_lock)
            if (entry.name, entry.version, entry.hashes) not in larger
        )
        assert not differing, f"{smaller_lock} has {differing}, which {larger_lock} lacks at that version or files"


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


def installed_version(name: str) -> str | None:
    """Return the version of package NAME installed here, None if it is not."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


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
