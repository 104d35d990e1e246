"""`python -m devtools.s3`: what the delivery stream wrote to the local emulator's bucket, as a developer sees it."""

import io
import subprocess
import sys

import orjson
import pytest
from django.core.management import call_command

from devtools import s3
from devtools.processes import ROOT
from events_app import conf
from events_app.delivery.destinations.base import ensure_emulator_streams
from tests.support.delivery import store


@pytest.fixture
def emulator(settings, moto_process):
    """Point the app at a moto server with the bucket and delivery stream created; return its URL."""
    settings.AWS_ENDPOINT_URL = moto_process.url
    ensure_emulator_streams()
    return moto_process.url


@pytest.mark.django_db(transaction=True)
def test_lists_the_objects_the_worker_delivered_and_prints_their_lines(emulator, game_key, make_install, capsys):
    bucket = conf.s3_bucket()
    assert s3.main([]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"s3://{bucket} at {emulator}:",
        "0 objects, 0 bytes (--lines prints their NDJSON lines)",
    ]
    events = [make_install(player_id=f"player-{n}") for n in range(3)]
    store(game_key, events)
    call_command("deliver_events", "--once", stdout=io.StringIO())

    assert s3.main([]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0] == f"s3://{bucket} at {emulator}:"
    assert len(listing) == 3 and " UTC " in listing[1] and " bytes  events/" in listing[1]
    assert listing[-1].startswith("1 objects, ")

    assert s3.main(["--lines"]) == 0
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["event_id"] for line in lines] == [event["event_id"] for event in events]
    assert {line["game"] for line in lines} == {"space-raiders"}


def test_without_an_emulator_it_says_so_and_exits_1(settings, capsys):
    settings.AWS_ENDPOINT_URL = None
    assert s3.main([]) == 1
    assert "AWS_ENDPOINT_URL is empty" in capsys.readouterr().err


def test_it_runs_as_a_module_with_the_clones_settings(moto_process, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"DJANGO_DEBUG=1\nAWS_ENDPOINT_URL={moto_process.url}\nAWS_ACCESS_KEY_ID=testing\n"
        "AWS_SECRET_ACCESS_KEY=testing\nFIREHOSE_S3_BUCKET=no-such-bucket\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "devtools.s3"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "DJANGO_ENV_FILE": str(env_file)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"cannot read bucket no-such-bucket at {moto_process.url}" in done.stderr
