"""The scheduler of the recurring jobs: its list, and each job run now."""

import contextlib
import sqlite3

import pytest
from django.core.management import CommandError, call_command

from devtools.processes import ROOT
from events_app.models import ExchangeRate
from events_app.ops import schedule

SAMPLE_RATES = ROOT / "events_app" / "data" / "eurofxref-sample.csv"


def test_the_schedule_lists_rates_reconvert_purge_and_partitions(capsys):
    call_command("run_schedule", "--list")

    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["rates", "reconvert", "purge", "partitions"]


def test_each_job_runs_its_command(monkeypatch):
    ran = []
    monkeypatch.setattr(schedule, "manage", lambda *args: ran.append(args) or 0)

    schedule.run_job("reconvert")
    schedule.run_job("purge")
    schedule.run_job("partitions")

    assert ran == [("reconvert",), ("purge_events",), ("ensure_partitions",)]


def test_the_rates_job_downloads_and_imports_the_file(settings, tmp_path, monkeypatch):
    settings.EVENTS_RATES_URL = SAMPLE_RATES.as_uri()
    database = tmp_path / "rates.sqlite3"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database}")  # the jobs' child processes use this one

    assert schedule.manage("migrate", "-v", "0") == 0
    assert schedule.run_job("rates") == 0

    with contextlib.closing(sqlite3.connect(database)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events_app_exchangerate").fetchone()[0] > 100


def test_a_failing_job_fails_the_command(settings, db):
    settings.EVENTS_RATES_URL = "file:///no/such/rates.csv"

    with pytest.raises(CommandError, match="rates failed"):
        call_command("run_schedule", "--now", "rates")
    assert not ExchangeRate.objects.exists()
