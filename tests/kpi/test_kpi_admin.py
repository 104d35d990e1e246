"""The KPI page of a game: linked from the game's page, the report's figures, the previous period, bad input, access."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
import time_machine

from events_app.models import Game, KpiDay
from tests.kpi.history import at
from tests.support.users import make_user

pytestmark = pytest.mark.django_db

TODAY = date(2026, 11, 10)


@pytest.fixture
def game(db):
    """A game with 60 days of figures: the last 30 twice as busy as the 30 before."""
    game = Game.objects.create(slug="space-raiders")
    for back in range(1, 61):
        busy = 2 if back <= 30 else 1
        KpiDay.objects.create(
            game=game,
            day=TODAY - timedelta(days=back),
            dau=100 * busy,
            new_players=10 * busy,
            sessions=150 * busy,
            session_ends=150 * busy,
            session_ms=150 * busy * 300_000,
            purchases=3 * busy,
            paying_players=2 * busy,
            revenue_base=Decimal("14.97") * busy,
            ad_revenue_base=Decimal("1.250000") * busy,
            retained_d1=4 * busy,
            retained_d7=2 * busy,
            retained_d30=1 * busy,
        )
    return game


def kpi_url(game: Game, query: str = "") -> str:
    return f"/admin/events_app/game/{game.pk}/kpis/{query}"


def test_the_game_page_links_its_kpis(admin_client, game):
    page = admin_client.get(f"/admin/events_app/game/{game.pk}/change/").content.decode()
    assert f'href="{kpi_url(game)}" id="kpi-link"' in page


def test_the_page_shows_the_last_30_days_and_the_change_from_the_30_before(admin_client, game):
    with time_machine.travel(at(TODAY, 9), tick=False):
        response = admin_client.get(kpi_url(game))
    page = response.content.decode()
    assert response.status_code == 200
    first, last = TODAY - timedelta(days=30), TODAY - timedelta(days=1)
    assert f'value="{first.isoformat()}"' in page and f'value="{last.isoformat()}"' in page
    lines = response.context["lines"]
    assert [line["date"] for line in lines] == [(last - timedelta(days=n)).isoformat() for n in range(30)]
    summary = {row["key"]: row for row in response.context["summary"]}
    assert summary["dau"]["current"] == "200.0" and summary["dau"]["previous"] == "100.0"
    assert summary["dau"]["change"] == Decimal("100.0")
    assert summary["revenue_base"]["current"] == "898.20 USD"  # 30 days of 2 x 14.97
    assert summary["arpdau"]["current"] == "0.1622 USD"  # (14.97 + 1.25) / 100, both doubled
    assert summary["arpdau"]["change"] == Decimal("0.0")
    assert summary["avg_session_seconds"]["current"] == "5.0 min"
    # Retention is known only for install days whose day +N is over: D30 of none of the last 30.
    assert summary["retention_d1"]["current"] == "40.0 %"
    assert summary["retention_d30"]["current"] == "—"
    assert 'id="chart-players"' in page and "<svg" in page and 'data-series="ARPDAU"' in page
    cohort = page.split(f'id="cohort-{last.isoformat()}"', 1)[1].split("</tr>", 1)[0]
    assert "40.0 %" not in cohort  # day +1 of yesterday is today: blank
    assert "40.0 %" in page.split(f'id="cohort-{(last - timedelta(days=1)).isoformat()}"', 1)[1].split("</tr>", 1)[0]


def test_a_chosen_range_is_shown_day_by_day_with_the_reports_figures(admin_client, game):
    first = TODAY - timedelta(days=3)
    with time_machine.travel(at(TODAY, 9), tick=False):
        response = admin_client.get(kpi_url(game, f"?from={first}&to={first}"))
    (line,) = response.context["lines"]
    assert line["dau"] == 200 and line["avg_session_seconds"] == 300.0 and line["arpdau"] == "0.1622"
    assert f'id="day-{first}"' in response.content.decode()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?from=yesterday", "from"),
        ("?to=2026-02-30", "to"),
        ("?from=2026-11-05&to=2026-11-01", "from"),
        ("?from=1900-01-01", "from"),
    ],
)
def test_a_bad_range_is_refused_with_400_naming_the_field(admin_client, game, query, field):
    response = admin_client.get(kpi_url(game, query))
    assert response.status_code == 400
    assert response.content.decode().startswith(field)


def test_an_unknown_game_is_404_and_a_user_who_may_not_view_games_is_refused(client, game):
    client.force_login(make_user("keys-only", ["view_apikey"]))
    assert client.get(kpi_url(game)).status_code == 403
    client.force_login(make_user("games", ["view_game"]))
    assert client.get(kpi_url(game)).status_code == 200
    assert client.get("/admin/events_app/game/999999/kpis/").status_code == 404
    assert client.get("/admin/events_app/game/x'/kpis/").status_code == 404


def test_the_page_reads_800_days_in_a_few_queries(admin_client, game, django_assert_max_num_queries):
    with time_machine.travel(at(TODAY, 9), tick=False), django_assert_max_num_queries(8):
        response = admin_client.get(
            kpi_url(game, f"?from={TODAY - timedelta(days=800)}&to={TODAY - timedelta(days=1)}")
        )
    assert response.status_code == 200
    assert len(response.context["lines"]) == 800
