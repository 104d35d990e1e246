"""Management commands and production-mode settings."""

import io
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from events_app.delivery import engine
from events_app.delivery.status import backlog
from events_app.delivery.worker import run_worker
from events_app.models import ApiKey, DeliveryCall, DeliveryState, Game
from tests.support.delivery import delivery_states

ROOT = Path(__file__).resolve().parents[2]


def test_create_api_key_prints_the_key_alone_on_the_last_line_and_stores_only_its_hash(db):
    out = io.StringIO()

    call_command("create_api_key", "moon-miners", "--name", "ios build", stdout=out, stderr=io.StringIO())

    plaintext = out.getvalue().strip().splitlines()[-1]
    key = ApiKey.objects.get()
    assert key.game == Game.objects.get(slug="moon-miners")
    assert key.name == "ios build"
    assert key.key_hash == ApiKey.hash(plaintext) != plaintext
    assert plaintext.startswith(key.prefix)
    assert not ApiKey.objects.filter(key_hash=plaintext).exists()


def test_a_second_key_for_the_same_game_reuses_the_game(db):
    call_command("create_api_key", "moon-miners", stdout=io.StringIO(), stderr=io.StringIO())
    call_command("create_api_key", "moon-miners", stdout=io.StringIO(), stderr=io.StringIO())

    assert Game.objects.count() == 1
    assert ApiKey.objects.count() == 2


def test_deliver_events_once_drains_what_is_due_and_exits(api, moto_firehose, make_install):
    api.post("/v1/events/batch", {"events": [make_install() for _ in range(30)]}, format="json")
    out = io.StringIO()

    call_command("deliver_events", "--once", stdout=out)

    assert "delivered=30" in out.getvalue()
    assert delivery_states() == {DeliveryState.DELIVERED: 30}
    assert backlog().pending == 0


def test_worker_claims_in_batches_of_the_configured_size(api, settings, moto_firehose, make_install):
    settings.EVENTS_DELIVERY_BATCH_SIZE = 7
    api.post("/v1/events/batch", {"events": [make_install() for _ in range(30)]}, format="json")

    totals = run_worker(once=True)

    assert totals.delivered == 30
    assert totals.calls == 5  # ceil(30 / 7) relay batches, one call each
    assert sorted(DeliveryCall.objects.values_list("events", flat=True)) == [2, 7, 7, 7, 7]
    assert engine.deliver_due().claimed == 0


def test_ensure_firehose_is_idempotent(moto_firehose):
    out = io.StringIO()

    call_command("ensure_firehose", "--real-aws", stdout=out)  # moto in-process stands in for AWS

    assert "already exist" in out.getvalue()


@pytest.mark.parametrize("debug", ["0", ""])
def test_production_mode_refuses_to_start_without_a_secret_key(debug):
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SECRET_KEY", "DJANGO_DEBUG")}
    env.update(DJANGO_SETTINGS_MODULE="tracking_project.settings")
    if debug:
        env["DJANGO_DEBUG"] = debug

    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check"], env=env, cwd=ROOT, capture_output=True, text=True
    )

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_production_settings_pass_the_deployment_checks():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tracking_project.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "a-long-random-production-secret-" + "x" * 40,
        "DJANGO_ALLOWED_HOSTS": "events.example.com",
        "DJANGO_SECURE_SSL_REDIRECT": "1",
        "DJANGO_SECURE_HSTS_PRELOAD": "1",
    }

    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr


def run_in_production(arguments: list[str], **variables: str) -> subprocess.CompletedProcess:
    """Run `python ARGUMENTS` with the real settings in production mode (DJANGO_DEBUG off) and `variables`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="tracking_project.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="testserver",
    )
    env.update(variables)
    return subprocess.run([sys.executable, *arguments], env=env, cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize(
    "weak_key",
    [
        "changeme",
        "short-but-varied-0123456789",  # 27 characters
        "ab" * 40,  # long, 2 distinct characters
        "django-insecure-" + "k3y5-fr0m-startproject-3xampl3-w1th-3n0ugh-ch4r5",  # startproject's marker
    ],
)
def test_production_mode_refuses_a_weak_secret_key_and_says_how_to_make_one(weak_key):
    result = run_in_production([str(ROOT / "manage.py"), "check"], DJANGO_SECRET_KEY=weak_key)

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is too weak for production" in result.stderr
    assert "python -c 'import secrets; print(secrets.token_urlsafe(50))'" in result.stderr
    assert weak_key not in result.stderr


def test_production_mode_accepts_the_key_it_tells_to_generate():
    key = subprocess.run(
        [sys.executable, "-c", "import secrets; print(secrets.token_urlsafe(50))"], capture_output=True, text=True
    ).stdout.strip()

    result = run_in_production([str(ROOT / "manage.py"), "check"], DJANGO_SECRET_KEY=key)

    assert result.returncode == 0, result.stderr


# What the security middleware answers a plain-HTTP request claiming, in X-Forwarded-Proto, to be https.
SPOOFED_HTTPS_REQUEST = """
import django
django.setup()
from django.test import Client
response = Client().get("/admin/", HTTP_X_FORWARDED_PROTO="https")
print(response.status_code, response.get("Location", ""))
"""


def test_a_spoofed_forwarded_proto_does_not_skip_the_ssl_redirect_by_default():
    result = run_in_production(["-c", SPOOFED_HTTPS_REQUEST], DJANGO_SECURE_SSL_REDIRECT="1")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["301", "https://testserver/admin/"]


def test_behind_a_tls_proxy_its_forwarded_proto_is_trusted_when_configured():
    result = run_in_production(
        ["-c", SPOOFED_HTTPS_REQUEST], DJANGO_SECURE_SSL_REDIRECT="1", DJANGO_SECURE_PROXY_SSL_HEADER="1"
    )

    assert result.returncode == 0, result.stderr
    status, location = result.stdout.split()
    assert status == "302" and location.startswith("/admin/login/")  # served over "https": on to the login page
