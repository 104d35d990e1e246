"""kpi_report on a synthetic history: every column as computed by hand, through late events, duplicates,
another game's events, reconvert, a purge of the log and erasures; on SQLite and PostgreSQL alike."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.management import CommandError, call_command

from events_app.delivery.reconvert import reconvert_missing
from events_app.models import Event, Game, KpiDay, KpiPlayer
from events_app.money.rates import import_rates
from tests.kpi.history import DAYS, KWD_DAY, START, TODAY, at, build_history, expected, parse_lines

pytestmark = pytest.mark.django_db

LAST = START + timedelta(days=DAYS - 1)
KWD_BASE = Decimal("4.07")  # 1.250 KWD at 0.3070 KWD per USD, to the cent


@pytest.fixture(scope="module")
def history(django_db_setup, django_db_blocker):
    """Send the 40-day history once for the module's tests (each test then runs in its own rolled-back transaction)."""
    with django_db_blocker.unblock():
        from django.db import transaction

        # The module's data lives in an outer transaction, undone after the module.
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            yield build_history()
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


def report(*args: str) -> list[dict]:
    out = io.StringIO()
    with time_machine.travel(at(TODAY, 9), tick=False):
        call_command("kpi_report", "space-raiders", *args, stdout=out)
    return parse_lines(out.getvalue())


def whole_range() -> list[dict]:
    return report("--from", START.isoformat(), "--to", LAST.isoformat())


def test_every_column_of_every_day_matches_the_events_sent(history):
    assert history.late_sent > 50 and history.duplicates_sent > 50  # the history has what it claims
    lines = whole_range()
    assert lines == expected(history.events, start=START, end=LAST)
    assert list(lines[0]) == [
        "date",
        "dau",
        "new_players",
        "sessions",
        "avg_session_seconds",
        "purchases",
        "paying_players",
        "revenue_base",
        "ad_revenue_base",
        "arpdau",
        "retention_d1",
        "retention_d7",
        "retention_d30",
    ]
    # A few figures read off the history by eye, so the oracle itself is checked too.
    assert sum(line["new_players"] for line in lines) == 301  # 300 players and the late mover
    assert [line["retention_d30"] for line in lines[10:]] == [None] * 30  # day +30 not over yet
    assert lines[-1]["retention_d1"] is None  # the day after the last one is today
    assert all(line["retention_d1"] is not None for line in lines[:-1] if line["new_players"])


def test_a_late_event_moves_its_player_into_the_cohort_of_its_own_day(history):
    day12 = START + timedelta(days=12)
    player = KpiPlayer.objects.get(game__slug="space-raiders", player_id="late-first")
    assert player.first_day == day12  # seen first on day 20; day 12 arrived on day 22
    line = next(line for line in whole_range() if line["date"] == day12.isoformat())
    assert line == expected(history.events, start=day12, end=day12)[0]


def test_the_default_range_is_the_last_30_days_through_yesterday(history):
    lines = report()
    assert [line["date"] for line in lines] == [(TODAY - timedelta(days=n)).isoformat() for n in range(30, 0, -1)]
    assert lines == expected(history.events, start=TODAY - timedelta(days=30), end=TODAY - timedelta(days=1))


def test_days_without_events_are_reported_with_zeros(history):
    before = START - timedelta(days=2)
    (line, _) = report("--from", before.isoformat(), "--to", (before + timedelta(days=1)).isoformat())
    assert line == {
        "date": before.isoformat(),
        "dau": 0,
        "new_players": 0,
        "sessions": 0,
        "avg_session_seconds": None,
        "purchases": 0,
        "paying_players": 0,
        "revenue_base": "0.00",
        "ad_revenue_base": "0.000000",
        "arpdau": None,
        "retention_d1": None,
        "retention_d7": None,
        "retention_d30": None,
    }


def test_reconvert_adds_the_revenue_of_a_purchase_that_had_no_rate(history, tmp_path):
    day = KWD_DAY.isoformat()
    without = next(line for line in whole_range() if line["date"] == day)
    (tmp_path / "kwd.csv").write_text(f"date,currency,rate\n{day},KWD,0.3070\n")
    import_rates(path=tmp_path / "kwd.csv")
    with time_machine.travel(at(TODAY, 8), tick=False):
        assert reconvert_missing().converted == 1
    lines = whole_range()
    assert lines == expected(history.events, start=START, end=LAST, kwd_base=KWD_BASE)
    with_rate = next(line for line in lines if line["date"] == day)
    assert Decimal(with_rate["revenue_base"]) - Decimal(without["revenue_base"]) == KWD_BASE


def test_the_figures_survive_a_purge_of_the_log_and_erasures_take_players_out(history):
    before = whole_range()
    with time_machine.travel(at(TODAY, 9), tick=False):
        out = io.StringIO()
        call_command("purge_events", "--older-than", "10", stdout=out)
    purged = {
        event_id for event_id, day in history.sent_day.items() if at(day, 23, 30) < at(TODAY, 9) - timedelta(days=10)
    }
    assert Event.objects.filter(game__slug="space-raiders").count() < len(history.events) - len(purged) // 2
    assert "kpi_rows=0" in out.getvalue()
    assert whole_range() == before  # the days' figures stay when their events go

    # p024 is active only in the kept days? Pick players by where their events are.
    days_of: dict[str, set] = {}
    for event in history.events:
        days_of.setdefault(event["player_id"], set()).add(event["event_id"] in purged)
    recent = next(player for player, where in sorted(days_of.items()) if where == {False} and player != "p000")
    spanning = next(player for player, where in sorted(days_of.items()) if where == {False, True} and player != "p000")
    for player in (recent, spanning):
        with time_machine.travel(at(TODAY, 10), tick=False):
            call_command("erase_player", "space-raiders", player, stdout=io.StringIO())
    assert whole_range() == expected(
        history.events, start=START, end=LAST, erased={recent}, erased_after_purge={spanning}, purged=purged
    )
    # Erasing again subtracts nothing twice.
    with time_machine.travel(at(TODAY, 11), tick=False):
        call_command("erase_player", "space-raiders", recent, stdout=io.StringIO())
    assert not KpiPlayer.objects.filter(player_id__in=[recent, spanning], game__slug="space-raiders").exists()
    assert whole_range() == expected(
        history.events, start=START, end=LAST, erased={recent}, erased_after_purge={spanning}, purged=purged
    )


def test_kpi_days_older_than_their_retention_are_purged(history, settings):
    settings.EVENTS_KPI_RETENTION_DAYS = 20
    with time_machine.travel(at(TODAY, 9), tick=False):
        out = io.StringIO()
        call_command("purge_events", "--dry-run", stdout=out)
        would = int(out.getvalue().rsplit("kpi_rows=", 1)[1].split()[0])
        call_command("purge_events", stdout=io.StringIO())
    assert would > 20  # 20 days and the players last seen before them
    assert KpiDay.objects.filter(game__slug="space-raiders").order_by("day").first().day == TODAY - timedelta(days=20)
    assert not KpiPlayer.objects.filter(last_day__lt=TODAY - timedelta(days=20)).exists()


def test_another_games_events_have_figures_of_their_own(history):
    out = io.StringIO()
    call_command("kpi_report", "other-game", "--from", START.isoformat(), "--to", START.isoformat(), stdout=out)
    (line,) = parse_lines(out.getvalue())
    assert line["dau"] == 50 and line["new_players"] == 50


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "No game 'nope'"),
        (["space-raiders", "--from", "2026-13-01"], "--from must be a date as YYYY-MM-DD"),
        (["space-raiders", "--to", "2026-W49-1"], "--to must be a date as YYYY-MM-DD"),
        (["space-raiders", "--from", "2026-10-05", "--to", "2026-10-01"], "is after --to"),
        (["space-raiders", "--from", "1990-01-01", "--to", "2026-10-01"], "longer than"),
    ],
)
def test_bad_arguments_exit_with_status_1_naming_the_option(history, args, message):
    with pytest.raises(CommandError, match=message) as raised:
        call_command("kpi_report", *args, stdout=io.StringIO())
    assert raised.value.returncode == 1
    assert Game.objects.filter(slug="space-raiders").exists()
