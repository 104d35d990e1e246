"""Rate import: the ECB's reference-rate CSV and plain date,currency,rate files, cross rates, idempotence."""

import zipfile
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from events_app.models import ExchangeRate
from events_app.money import currency
from events_app.money.rates import RateFileError, import_rates

pytestmark = pytest.mark.django_db

SAMPLE = Path(django_settings.BASE_DIR) / "events_app" / "data" / "eurofxref-sample.csv"
# In the sample: 11 days; USD is the base; EUR comes in crossed; JPY CZK GBP CHF AUD BRL CAD
# KRW SEK as published, BRL with one N/A; BGN (euro since 2026) and CYP (gone) all N/A.
SAMPLE_RATES = 11 * 10 - 1
SAMPLE_SKIPPED = 11 + 11 + 1


@pytest.fixture(autouse=True)
def _fresh_rate_cache():
    currency.clear_rate_cache()
    yield
    currency.clear_rate_cache()


def stored(day: str, code: str, base: str = "USD") -> Decimal:
    return ExchangeRate.objects.get(date=date.fromisoformat(day), currency=code, base_currency=base).rate


def write(tmp_path: Path, text: str, name: str = "rates.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_ecb_file_is_imported_against_usd_through_cross_rates():
    counts = import_rates(path=SAMPLE)

    assert (counts.added, counts.updated, counts.unchanged, counts.skipped) == (SAMPLE_RATES, 0, 0, SAMPLE_SKIPPED)
    assert (counts.first_day, counts.last_day) == (date(2026, 1, 2), date(2026, 1, 16))
    # 1 EUR = 1.1650 USD = 183.50 JPY on Jan 9: 1 USD = 183.50 / 1.1650 JPY, 1 USD = 1 / 1.1650 EUR.
    assert stored("2026-01-09", "JPY") == Decimal("157.510729614")
    assert stored("2026-01-09", "EUR") == Decimal("0.858369098712")
    assert stored("2026-01-16", "GBP") == Decimal("0.744530849427")
    assert not ExchangeRate.objects.filter(currency__in=["USD", "BGN", "CYP"]).exists()
    assert not ExchangeRate.objects.filter(date=date(2026, 1, 13), currency="BRL").exists()
    assert ExchangeRate.objects.get(date=date(2026, 1, 9), currency="JPY").source == "ECB reference rate, via EUR"


def test_importing_the_same_file_again_changes_nothing():
    import_rates(path=SAMPLE)
    before = list(ExchangeRate.objects.order_by("pk").values())

    counts = import_rates(path=SAMPLE)

    assert (counts.added, counts.updated, counts.unchanged) == (0, 0, SAMPLE_RATES)
    assert list(ExchangeRate.objects.order_by("pk").values()) == before


def test_a_corrected_rate_is_updated_and_new_days_are_added(tmp_path):
    import_rates(path=SAMPLE)
    corrected = SAMPLE.read_text().replace("2026-01-09,1.1650,183.50,", "2026-01-09,1.1650,183.60,")
    corrected += "2026-01-19,1.1710,184.30,N/A,N/A,,,,,,,,,\n"

    counts = import_rates(path=write(tmp_path, corrected))

    assert (counts.added, counts.updated, counts.unchanged) == (2, 1, SAMPLE_RATES - 1)
    assert stored("2026-01-09", "JPY") == Decimal("157.596566524")
    assert stored("2026-01-19", "EUR") == Decimal("0.853970964987")


def test_with_a_eur_base_the_ecb_rates_are_stored_as_published(settings):
    settings.EVENTS_BASE_CURRENCY = "EUR"

    counts = import_rates(path=SAMPLE)

    assert counts.added == 11 * 10 - 1  # USD now a quoted currency, EUR the base
    assert stored("2026-01-09", "USD", base="EUR") == Decimal("1.165")
    assert ExchangeRate.objects.get(date=date(2026, 1, 9), currency="USD").source == "ECB reference rate"


def test_the_ecb_zip_is_read_too(tmp_path):
    archive = tmp_path / "eurofxref-hist.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(SAMPLE, "eurofxref-hist.csv")

    assert import_rates(path=archive).added == SAMPLE_RATES


def test_plain_file_quotes_rates_against_the_base_currency(tmp_path):
    path = write(tmp_path, "date,currency,rate\n2026-01-12,KWD,0.3070\n2026-01-12,jpy,157.2\n2026-01-13,KWD,N/A\n")

    counts = import_rates(path=path)

    assert (counts.added, counts.skipped) == (2, 1)
    assert stored("2026-01-12", "KWD") == Decimal("0.307")
    assert stored("2026-01-12", "JPY") == Decimal("157.2")
    assert ExchangeRate.objects.get(currency="KWD").source == "CSV"


def test_plain_file_quoted_against_another_currency_is_crossed(tmp_path):
    path = write(tmp_path, "Date,Currency,Rate\n2026-01-09,USD,1.1650\n2026-01-09,JPY,183.50\n2026-01-10,JPY,183\n")

    counts = import_rates(path=path, quote_currency="eur")

    assert (counts.added, counts.skipped) == (2, 1)  # Jan 10 has no USD rate to cross through
    assert stored("2026-01-09", "JPY") == Decimal("157.510729614")
    assert stored("2026-01-09", "EUR") == Decimal("0.858369098712")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("when,what\n2026-01-09,1\n", "Unknown layout"),
        ("Date,USD,JPY\n2026-01-09,1.1650,abc\n", "line 2: 'abc' is not a rate."),
        ("Date,USD,JPY\n2026-01-09,1.1650,183\n09/01/2026,1.1650,183\n", "line 3: '09/01/2026' is not a date"),
        ("Date,USD,JPY\n2026-01-09,1.1650,-183\n", "line 2: '-183' is not a positive rate."),
        ("date,currency,rate\n2026-01-09,XYZ,1.5\n", "line 2: 'XYZ' is not an ISO 4217 currency code."),
        ("date,currency,rate\n2026-01-09,JPY\n", "line 2: expected date,currency,rate, got 2 fields."),
    ],
    ids=["header", "rate", "date", "negative", "code", "fields"],
)
def test_a_bad_file_is_refused_naming_the_line_and_nothing_is_stored(tmp_path, text, message):
    with pytest.raises(RateFileError, match=message.replace("(", r"\(")):
        import_rates(path=write(tmp_path, text))

    assert not ExchangeRate.objects.exists()


def test_a_file_without_the_base_currency_cannot_be_crossed(settings):
    settings.EVENTS_BASE_CURRENCY = "KWD"

    with pytest.raises(RateFileError, match="no KWD rate against EUR"):
        import_rates(path=SAMPLE)


def test_import_rates_command_reports_added_and_updated(capsys):
    call_command("import_rates", str(SAMPLE))
    call_command("import_rates", str(SAMPLE))

    first, note, second, _ = capsys.readouterr().out.strip().splitlines()
    assert first == (
        f"added={SAMPLE_RATES} updated=0 unchanged=0 skipped={SAMPLE_SKIPPED} "
        "(rates against USD from 2026-01-02 to 2026-01-16)"
    )
    # The sample ends long ago: what happens to later purchases is said, not left to find out.
    assert note.startswith("No rate after 2026-01-16: purchases after 2026-01-23 stay unconverted")
    assert second.startswith(f"added=0 updated=0 unchanged={SAMPLE_RATES} ")


def test_import_rates_command_fails_clearly_on_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_rates", str(tmp_path / "missing.csv"))


def test_import_makes_new_rates_visible_to_lookups_in_this_process():
    day = date(2026, 1, 9)
    assert currency.find_rate(currency="JPY", on=day) is None  # a cached miss

    import_rates(path=SAMPLE)

    assert currency.find_rate(currency="JPY", on=day) == currency.FxRate(date=day, rate=Decimal("0.006348773842"))
