"""The SDK stands on its own: requests is its only dependency, and its package metadata says so."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import sdk

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
    assert project["scripts"]["tracker-simulate"] == "sdk.simulate:main"


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
