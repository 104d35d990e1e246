"""The SDK stands on its own: requests is its only dependency, and its package metadata says so."""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import sdk
import sdk.client
import sdk.outbox
import sdk.sender
import sdk.spool
import sdk.tracker

SDK_DIR = Path(sdk.__file__).parent


def test_importing_the_whole_sdk_pulls_in_nothing_of_the_server():
    code = (
        "import json, sys\n"
        "import sdk.client, sdk.contract, sdk.events, sdk.gameplay, sdk.outbox, sdk.retry, sdk.sender, sdk.simulate\n"
        "import sdk.spool, sdk.tracker, sdk.validation\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=SDK_DIR.parent, capture_output=True, text=True, check=True)

    loaded = set(json.loads(out.stdout))
    assert "requests" in loaded
    assert not loaded & {"django", "rest_framework", "events_app", "pycountry", "iso4217", "orjson", "boto3"}


def test_the_package_depends_on_requests_only_and_takes_its_version_from_the_code():
    project = tomllib.loads((SDK_DIR / "pyproject.toml").read_text())["project"]

    assert [dependency.split(">")[0] for dependency in project["dependencies"]] == ["requests"]
    assert project["dynamic"] == ["version"]
    assert (SDK_DIR / project["readme"]).exists()
    assert project["scripts"]["tracker-simulate"] == "playertrack.simulate:main"


def test_the_sdk_is_published_under_its_own_name_and_the_repositorys_licence():
    config = tomllib.loads((SDK_DIR / "pyproject.toml").read_text())
    project = config["project"]

    # `sdk` is someone else's package on PyPI; `playertrack` was free (PyPI's JSON API answered 404).
    assert project["name"] == "playertrack"
    assert config["tool"]["setuptools"]["package-dir"] == {"playertrack": "."}
    assert project["license"] == "Apache-2.0"
    assert (SDK_DIR / "LICENSE").read_bytes() == (SDK_DIR.parent / "LICENSE").read_bytes()
    assert "Apache License" in (SDK_DIR / "LICENSE").read_text()[:200]
    assert (SDK_DIR / "py.typed").exists() and "py.typed" in config["tool"]["setuptools"]["package-data"]["playertrack"]
    assert f"## {sdk.__version__}" in (SDK_DIR / "CHANGELOG.md").read_text()


def test_every_logger_is_named_after_the_published_package():
    modules = [sdk.client, sdk.outbox, sdk.sender, sdk.spool, sdk.tracker]

    assert {module.log.name for module in modules} == {"playertrack.client", "playertrack.tracker"}


def test_no_module_imports_the_package_by_its_repository_name():
    # Installed, the package is playertrack: an absolute `sdk` import would fail there.
    absolute = re.compile(r"^\s*(?:from|import)\s+sdk\b", re.MULTILINE)

    assert [path.name for path in SDK_DIR.glob("*.py") if absolute.search(path.read_text())] == []


def test_the_readme_stands_alone_linking_only_within_the_sdk_folder_or_to_absolute_urls():
    text = (SDK_DIR / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)

    outside = [
        target
        for target in targets
        if not target.startswith(("https://", "http://", "#")) and not (SDK_DIR / target.split("#")[0]).exists()
    ]
    assert outside == []
    assert "from playertrack import" in text and "pip install playertrack" in text


def test_the_public_names_import_from_the_package_and_from_their_old_modules():
    from sdk import DROP_OLDEST, Tracker, TrackerClient, TrackerStats, tracker

    assert DROP_OLDEST is tracker.DROP_OLDEST
    assert TrackerStats is tracker.TrackerStats
    for name in (
        "track_session_start",
        "track_session_end",
        "track_progression",
        "track_resource",
        "track_ad_impression",
        "track_install",
        "track_purchase",
        "track",
    ):
        assert callable(getattr(Tracker, name)) and callable(getattr(TrackerClient, name))


def test_the_names_of_0_4_import_from_the_package():
    from sdk import (
        EventSetAsideError,
        InsecureEndpointWarning,
        SetAsideEvent,
        SpoolPermissionWarning,
        TrackerError,
        TrackerStats,
        default_spool_path,
    )

    assert issubclass(EventSetAsideError, TrackerError) and not EventSetAsideError.retryable
    assert issubclass(InsecureEndpointWarning, UserWarning) and issubclass(SpoolPermissionWarning, UserWarning)
    assert SetAsideEvent._fields == ("event_id", "event", "set_aside_at", "reason")
    assert "set_aside" in TrackerStats.__dataclass_fields__
    assert default_spool_path("mygame").name == "mygame.sqlite3"
    assert set(sdk.__all__) >= {"EventSetAsideError", "InsecureEndpointWarning", "SetAsideEvent", "default_spool_path"}
