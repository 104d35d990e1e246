"""`manage.py dev_setup` (devtools/dev_setup.py) and the clone's .env (devtools/localenv.py, read by the settings)."""

import io
import os
import stat
import subprocess
import sys

import boto3
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from devtools import localenv
from devtools.processes import MANAGE, ROOT, free_port
from events_app.models import ApiKey, Event, ExchangeRate, Game


@pytest.fixture
def clone(settings, tmp_path):
    """Point dev_setup's files (key, static files) at a temporary folder instead of the developer's clone."""
    settings.DEBUG = True  # as .env sets it; the test runner turns it off
    settings.BASE_DIR = tmp_path
    settings.STATIC_ROOT = tmp_path / "staticfiles"
    return tmp_path


def dev_setup() -> str:
    out = io.StringIO()
    call_command("dev_setup", stdout=out)
    return out.getvalue()


def state(endpoint: str) -> dict:
    firehose = boto3.client("firehose", endpoint_url=endpoint, region_name="us-east-1")
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    return {
        "games": list(Game.objects.values_list("slug", flat=True)),
        "keys": ApiKey.objects.count(),
        "users": list(get_user_model().objects.values_list("username", "is_superuser")),
        "rates": ExchangeRate.objects.count(),
        "events": Event.objects.count(),
        "streams": firehose.list_delivery_streams()["DeliveryStreamNames"],
        "buckets": [bucket["Name"] for bucket in s3.list_buckets()["Buckets"]],
    }


@pytest.mark.django_db(transaction=True)
def test_dev_setup_twice_leaves_the_same_state_and_the_same_working_key(clone, settings, moto_process):
    settings.AWS_ENDPOINT_URL = moto_process.url

    first_output = dev_setup()
    first, key = state(moto_process.url), (clone / ".local" / "dev_api_key").read_text()
    second_output = dev_setup()

    assert state(moto_process.url) == first
    assert (clone / ".local" / "dev_api_key").read_text() == key
    assert first == {
        "games": ["demo-game"],
        "keys": 1,
        "users": [("admin", True)],
        "rates": first["rates"],
        "events": 5,
        "streams": [settings.FIREHOSE_STREAM_NAME],
        "buckets": [settings.FIREHOSE_S3_BUCKET],
    }
    assert first["rates"] > 0
    assert "wrote a new development key in .local/dev_api_key" in first_output
    assert "keeping the development key in .local/dev_api_key" in second_output
    # The file is the key's only copy: nobody else may read it.
    assert stat.S_IMODE((clone / ".local" / "dev_api_key").stat().st_mode) == 0o600
    answer = Client().post(
        "/v1/events",
        {"event_type": "install", "player_id": "p1", "occurred_at": "2026-01-15T10:00:00Z"},
        content_type="application/json",
        headers={"authorization": f"Bearer {key.strip()}"},
    )
    assert answer.status_code == 202


@pytest.mark.django_db(transaction=True)
def test_the_printed_admin_login_logs_in(clone):
    output = dev_setup()

    assert "login: admin / admin" in output
    assert Client().login(username="admin", password="admin")


@pytest.mark.django_db(transaction=True)
def test_a_key_file_from_a_reset_database_is_replaced_by_a_working_key(clone):
    (clone / ".local").mkdir()
    (clone / ".local" / "dev_api_key").write_text("pet_from_a_database_since_deleted\n")

    dev_setup()

    plaintext = (clone / ".local" / "dev_api_key").read_text().strip()
    assert ApiKey.objects.get(key_hash=ApiKey.hash(plaintext)).game.slug == "demo-game"


@pytest.mark.django_db(transaction=True)
def test_a_stopped_emulator_is_no_failure_and_the_banner_says_who_creates_the_stream(clone, settings):
    settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"

    output = dev_setup()

    assert f"no emulator answers at {settings.AWS_ENDPOINT_URL} yet" in output
    assert "send a first event: .venv/bin/python -m sdk.client" in output


@pytest.mark.django_db(transaction=True)
def test_an_admin_with_its_own_password_is_kept(clone):
    get_user_model().objects.create_superuser("admin", password="a-better-password")

    output = dev_setup()

    assert "login: admin (with the password you gave it)" in output
    assert Client().login(username="admin", password="a-better-password")


@pytest.mark.django_db(transaction=True)
def test_revenue_is_complete_after_dev_setup_also_for_purchases_stored_before_it_and_after_the_history(
    clone, settings, game_key, make_purchase
):
    settings.EVENTS_FX_CARRY_FORWARD = True  # as .env's DJANGO_DEBUG=1 sets it
    api = Client(headers={"authorization": f"Bearer {game_key[1]}"})

    def purchase(price: str, currency: str, occurred_at: str) -> dict:
        event = make_purchase(occurred_at=occurred_at)
        event["properties"].update(price=price, currency=currency)
        return event

    before = purchase("500", "JPY", "2026-01-09T10:00:00Z")
    assert api.post("/v1/events", before, content_type="application/json").status_code == 202
    assert Event.objects.get(event_id=before["event_id"]).revenue_base is None  # no rates yet

    dev_setup()
    today = purchase("27.90", "BRL", "2026-11-30T10:00:00Z")  # after the history's last day
    assert api.post("/v1/events", today, content_type="application/json").status_code == 202

    purchases = Event.objects.filter(event_type="purchase")
    assert purchases.count() == 3  # the two above and the sample one
    assert not purchases.filter(revenue_base__isnull=True).exists()
    assert Event.objects.get(event_id=today["event_id"]).payload["fx_date"] == "2026-10-30"  # the rate it took


def test_dev_setup_refuses_to_run_with_debug_off(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DJANGO_DEBUG=1"):
        call_command("dev_setup")


# The clone's .env


def clean_environment(**extra: str) -> dict:
    """Return this environment without the Django, database and AWS variables the test settings set."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "AWS_", "DATABASE_URL", "EVENTS_", "FIREHOSE_"))
    }
    return {**kept, **extra}


def read_settings(names: list[str], env: dict) -> list[str]:
    code = "import django; django.setup(); from django.conf import settings; " + "; ".join(
        f"print(settings.{name})" for name in names
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True, text=True, timeout=120
    ).stdout.splitlines()


def test_settings_read_the_env_file_and_a_real_environment_variable_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DJANGO_DEBUG=1\nFIREHOSE_STREAM_NAME=from-the-file\nFIREHOSE_S3_BUCKET=from-the-file\n")
    env = clean_environment(
        DJANGO_SETTINGS_MODULE="tracking_project.settings",
        DJANGO_ENV_FILE=str(env_file),
        FIREHOSE_S3_BUCKET="from-the-environment",
    )

    assert read_settings(["DEBUG", "FIREHOSE_STREAM_NAME", "FIREHOSE_S3_BUCKET"], env) == [
        "True",
        "from-the-file",
        "from-the-environment",
    ]


def test_the_test_settings_ignore_a_developers_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("FIREHOSE_STREAM_NAME=from-the-file\n")
    env = clean_environment(DJANGO_SETTINGS_MODULE="tracking_project.test_settings", DJANGO_ENV_FILE=str(env_file))

    assert read_settings(["FIREHOSE_STREAM_NAME"], env) == ["game-events"]


def test_with_the_written_env_file_manage_py_commands_run_as_printed(tmp_path):
    env_file = tmp_path / ".env"
    assert localenv.write_env_file(env_file, root=tmp_path)
    # No DJANGO_DEBUG, no secret key, no AWS variables: only what a newcomer's shell has.
    env = clean_environment(DJANGO_SETTINGS_MODULE="tracking_project.settings", DJANGO_ENV_FILE=str(env_file))

    subprocess.run([*MANAGE, "migrate", "-v", "0"], env=env, cwd=ROOT, check=True, timeout=300)
    created = subprocess.run(
        [*MANAGE, "create_api_key", "newcomer-game"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert created.stdout.strip().startswith("pet_")
    assert (tmp_path / "db.sqlite3").exists()  # the clone's database, as the file says
    assert read_settings(["AWS_ENDPOINT_URL"], env) == ["http://127.0.0.1:4566"]


def test_an_existing_env_file_is_kept_as_the_developer_edited_it(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DJANGO_DEBUG=1\nAWS_ENDPOINT_URL=http://127.0.0.1:4599\n")

    assert not localenv.write_env_file(env_file, root=tmp_path)

    assert env_file.read_text() == "DJANGO_DEBUG=1\nAWS_ENDPOINT_URL=http://127.0.0.1:4599\n"
