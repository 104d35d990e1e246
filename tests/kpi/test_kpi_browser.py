"""The KPI page in chromium: charts, the cohort triangle, a chosen range; and its screenshot for the docs."""

import os
import random
import shutil
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from events_app.models import Game, KpiDay
from tests.admin.browser.conftest import ARTIFACTS, DOCS_IMAGES

pytestmark = pytest.mark.e2e


def seed(game: Game, *, days: int = 120) -> None:
    """Store `days` days of a growing game's figures up to yesterday, with weekends busier."""
    rng = random.Random(5)
    today = timezone.now().date()
    rows = []
    for back in range(days, 0, -1):
        day = today - timedelta(days=back)
        weekend = 1.25 if day.weekday() >= 5 else 1.0
        dau = int((4000 + 30 * (days - back)) * weekend * rng.uniform(0.93, 1.07))
        new = int(dau * rng.uniform(0.08, 0.12))
        rows.append(
            KpiDay(
                game=game,
                day=day,
                dau=dau,
                new_players=new,
                sessions=int(dau * 1.8),
                session_ends=int(dau * 1.7),
                session_ms=int(dau * 1.7 * rng.uniform(380_000, 460_000)),
                purchases=int(dau * 0.03),
                paying_players=int(dau * 0.025),
                revenue_base=(Decimal(int(dau * 0.03)) * Decimal("5.49")).quantize(Decimal("0.01")),
                ad_revenue_base=Decimal(dau) * Decimal("0.0042"),
                retained_d1=int(new * rng.uniform(0.36, 0.44)) if back > 1 else 0,
                retained_d7=int(new * rng.uniform(0.13, 0.18)) if back > 7 else 0,
                retained_d30=int(new * rng.uniform(0.05, 0.08)) if back > 30 else 0,
            )
        )
    KpiDay.objects.bulk_create(rows)


def test_the_kpi_page_shows_charts_the_cohort_triangle_and_a_chosen_range(operator_login):
    game = Game.objects.create(slug="space-raiders", name="Space Raiders")
    seed(game)
    browser = operator_login()
    browser.goto(f"/admin/events_app/game/{game.pk}/change/")
    browser.click("#kpi-link")
    expect(browser.locator("#kpi-summary")).to_contain_text("mean daily active players")
    for chart in ("players", "revenue", "arpdau", "sessions"):
        expect(browser.locator(f"#chart-{chart} svg")).to_be_visible()
    yesterday = timezone.now().date() - timedelta(days=1)
    expect(browser.locator("#kpi-table tbody tr")).to_have_count(30)
    # The triangle: yesterday's cohort has no D1 yet, the day before has.
    assert browser.locator(f"#cohort-{yesterday} td.cell").first.inner_text() == ""
    assert browser.locator(f"#cohort-{yesterday - timedelta(days=1)} td.cell").first.inner_text().endswith("%")
    save(browser, "kpi.png")

    browser.fill("#kpi-from", str(yesterday - timedelta(days=6)))
    browser.click("#kpi-range input[type=submit]")
    expect(browser.locator("#kpi-table tbody tr")).to_have_count(7)
    expect(browser.locator("#kpi-range .help")).to_contain_text(str(yesterday - timedelta(days=13)))


def save(browser_page, name: str) -> None:
    """Save a full-page screenshot under tests/artifacts; with UPDATE_DOCS_SCREENSHOTS=1 also into docs/img."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser_page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
        shutil.copyfile(ARTIFACTS / name, DOCS_IMAGES / name)
