"""Logs: text or JSON lines, a request id on every line of a request and in the answer, never a key or a body."""

import base64
import io
import json
import logging
import subprocess
import uuid
from pathlib import Path

import pytest
import requests

from devtools.processes import BIN, ROOT, free_port, stop, wait_for, wait_until_up
from events_app.logs import (
    API_KEY_PATTERN,
    RedactKeysFilter,
    RequestIdFilter,
    json_formatter,
    logging_config,
    redact_keys,
)
from events_app.models import API_KEY_PREFIX, ApiKey
from tests.ops.test_metrics import GUNICORN_HOOK_LINES


def test_an_unknown_log_format_is_refused():
    with pytest.raises(ValueError, match="EVENTS_LOG_FORMAT"):
        logging_config(log_format="xml", level="INFO")


def test_api_keys_are_cut_down_to_their_prefix_wherever_they_appear():
    key = ApiKey.generate()

    assert API_KEY_PATTERN.pattern.startswith(f"({API_KEY_PREFIX}")
    assert (
        redact_keys(f"Unauthorized: /v1/projects/{key}/settings")
        == f"Unauthorized: /v1/projects/{key[:12]}.../settings"
    )
    assert redact_keys("ingested game=space-raiders accepted=1") == "ingested game=space-raiders accepted=1"


def test_every_answer_carries_a_request_id(client, db):
    generated = client.get("/healthz")["X-Request-ID"]
    assert len(generated) == 32 and int(generated, 16) >= 0

    assert client.get("/healthz", HTTP_X_REQUEST_ID="lb-1234.abc")["X-Request-ID"] == "lb-1234.abc"
    # An id that could forge a log line is replaced, not echoed.
    assert client.get("/healthz", HTTP_X_REQUEST_ID='x" level=error\n')["X-Request-ID"] != 'x" level=error\n'


def test_a_key_sent_as_the_request_id_is_replaced_not_echoed_or_logged(client, db):
    key = API_KEY_PREFIX + "A" * 43

    answered = client.get("/healthz", HTTP_X_REQUEST_ID=key)["X-Request-ID"]

    assert answered != key and not API_KEY_PATTERN.search(answered)


def test_control_characters_in_a_logged_value_cannot_start_a_line_of_their_own():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactKeysFilter())
    target = logging.getLogger("events_app.test_controls")
    target.addHandler(handler)
    try:
        target.warning("refused path %s", "/v1/x\nINFO forged line\r\x1b[2J\u2028")
    finally:
        target.removeHandler(handler)

    lines = stream.getvalue().splitlines()
    assert lines == ["WARNING refused path /v1/x\\nINFO forged line\\r\\x1b[2J\\u2028"]


@pytest.fixture
def json_lines():
    """Capture the events_app logger as the JSON handler writes it; yield a function returning the parsed lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(RequestIdFilter())
    target = logging.getLogger("events_app")
    target.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    target.removeHandler(handler)


def test_json_lines_of_a_request_carry_its_id_and_no_key(api, game_key, make_install, json_lines):
    response = api.post(
        "/v1/events", make_install(player_id="body-marker-7f3a"), format="json", HTTP_X_REQUEST_ID="r-42"
    )

    lines = json_lines()
    ingested = [line for line in lines if line["message"].startswith("ingested game=")]
    assert response["X-Request-ID"] == "r-42"
    assert ingested and all(line["request_id"] == "r-42" for line in ingested)
    assert {"time", "level", "logger", "message"} <= set(ingested[0])
    text = json.dumps(lines)
    assert game_key[1] not in text
    assert "body-marker-7f3a" not in text


def test_a_key_sent_as_the_request_id_never_reaches_a_log_line(api, game_key, make_install, json_lines):
    key = game_key[1]  # the api client sends it as its bearer too

    response = api.post("/v1/events", make_install(), format="json", HTTP_X_REQUEST_ID=key)

    lines = json_lines()
    assert response.status_code == 202 and lines
    assert all(line["request_id"] == response["X-Request-ID"] != key for line in lines)
    assert key not in json.dumps(lines)


def test_lines_outside_a_request_have_no_request_id(json_lines):
    logging.getLogger("events_app.test").warning("outside")

    assert "request_id" not in json_lines()[0]


# --- Real processes --------------------------------------------------------------------


def parse_lines(path: Path) -> list[dict]:
    """Return every line of `path` parsed as JSON (fails on any line that is not one JSON object)."""
    lines = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            lines.append(json.loads(line))
        except ValueError:
            pytest.fail(f"{path.name} line {number} is not JSON: {line!r}")
        assert isinstance(lines[-1], dict)
    return lines


@pytest.mark.e2e
def test_gunicorn_app_and_worker_log_json_with_request_ids_and_no_key_or_body(deployment, tmp_path):
    key = deployment.create_key("log-game")
    config = tmp_path / "gunicorn.conf.py"
    shipped = (ROOT / "gunicorn.conf.py").read_text()
    config.write_text(shipped if "gunicorn_hooks" in shipped else shipped + GUNICORN_HOOK_LINES)
    port = free_port()
    log = tmp_path / "web.log"
    env = {**deployment.env, "EVENTS_LOG_FORMAT": "json", "EVENTS_LOG_LEVEL": "INFO"}
    with log.open("wb") as out:
        web = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", str(config), "-w", "2", "-b", f"127.0.0.1:{port}", "--no-control-socket"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/healthz", web)
        marker = f"body-marker-{uuid.uuid4().hex[:8]}"
        event = {"event_type": "install", "player_id": marker, "occurred_at": "2026-01-01T00:00:00Z"}
        bearer = {"Authorization": f"Bearer {key}"}
        given = requests.post(f"{url}/v1/events", json=event, headers={**bearer, "X-Request-ID": "given-id-1"})
        made = requests.post(f"{url}/v1/events?writeKey={key}", json={"event_type": 1}, headers=bearer)
        basic = "Basic " + base64.b64encode(f"{key}:".encode()).decode()  # Segment's way: the key as the user name
        segment = requests.post(
            f"{url}/v1/track", json={"userId": marker, "event": "Level Up"}, headers={"Authorization": basic}
        )
        # Segment's SDKs fetch their settings with the key in the path; a wrong key is logged as a 401.
        assert requests.get(f"{url}/v1/projects/{key}/settings").status_code == 200
        other_key = ApiKey.generate()
        assert requests.get(f"{url}/v1/projects/{other_key}/settings").status_code == 401
        assert given.status_code == 202 and given.headers["X-Request-ID"] == "given-id-1"
        assert made.status_code == 400 and len(made.headers["X-Request-ID"]) == 32
        wait_for(lambda: '"path": "/v1/track"' in log.read_text(), what="the access line of the last request")
    finally:
        stop(web)
    worker = deployment.manage("deliver_events", "--once", EVENTS_LOG_FORMAT="json", EVENTS_LOG_LEVEL="INFO")

    lines = parse_lines(log)
    by_id = {}
    for line in lines:
        by_id.setdefault(line.get("request_id"), []).append(line)
    for request_id in ("given-id-1", made.headers["X-Request-ID"], segment.headers["X-Request-ID"]):
        loggers = {line["logger"] for line in by_id[request_id]}
        assert "gunicorn.access" in loggers, f"no access line for {request_id}"
    assert any(line["logger"] == "events_app.ingest.service" for line in by_id["given-id-1"])
    assert any(line["logger"] == "django.request" for line in by_id[made.headers["X-Request-ID"]])  # "Bad Request"
    access = next(line for line in by_id["given-id-1"] if line["logger"] == "gunicorn.access")
    assert (access["method"], access["path"], access["status"]) == ("POST", "/v1/events", 202)
    assert any(line["logger"] == "gunicorn.error" for line in lines)  # gunicorn's own lines are JSON too
    worker_log = tmp_path / "worker.log"
    worker_log.write_text(worker.stderr)  # its log; stdout has the command's own summary line
    worker_lines = parse_lines(worker_log)
    assert any(line["message"].startswith("worker stopped") for line in worker_lines)
    # The worker sent the events (the web processes only store them), and logged no line's body either.
    assert any(line["message"].startswith("delivery batch sender=relay") for line in worker_lines)

    captured = log.read_text() + worker.stdout + worker.stderr
    assert f"/v1/projects/{key[:12]}.../settings" in captured
    assert key not in captured and other_key not in captured
    assert base64.b64encode(f"{key}:".encode()).decode() not in captured
    assert marker not in captured
