"""Sentry: off without SENTRY_DSN; with it, errors are reported without a key, a body, a cookie or local variables."""

import json
import subprocess
import sys
import uuid

from devtools.processes import ROOT


def test_sentry_is_off_without_a_dsn():
    import sentry_sdk

    assert not sentry_sdk.get_client().is_active()


def test_an_error_report_carries_no_key_body_cookie_query_or_local_variables(tmp_path):
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [sys.executable, "-m", "tests.ops.sentry_probe"],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path / 's.sqlite3'}", "PROBE_MARKER": marker},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["status"].startswith("500")
    errors = [event for event in report["events"] if event.get("exception")]
    assert len(errors) == 1
    error = errors[0]
    assert error["exception"]["values"][-1]["value"] == "ingest failed"
    assert error["tags"]["request_id"] == "sentry-req-1"
    request = error["request"]
    assert request["url"] == "http://testserver/v1/events"
    assert set(request) <= {"url", "method", "headers"}  # no data, query string, cookies or environment
    assert {name.lower() for name in request["headers"]} <= {
        "content-type",
        "content-length",
        "user-agent",
        "x-request-id",
    }
    frames = [frame for value in error["exception"]["values"] for frame in value["stacktrace"]["frames"]]
    assert frames and not any("vars" in frame for frame in frames)
    sent = json.dumps(report["events"])
    assert report["key"] not in sent
    assert marker not in sent
