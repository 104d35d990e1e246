"""Currency rules: ISO 4217 minor units, rounding of base amounts, conversion on ingest, the rate cache, the admin."""

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from events_app.ingest.service import ingest_events
from events_app.models import Event, ExchangeRate
from events_app.money import currency
from events_app.money.codes import CURRENCY_CODES
from events_app.money.rates import import_rates

pytestmark = pytest.mark.django_db

SAMPLE = Path(django_settings.BASE_DIR) / "events_app" / "data" / "eurofxref-sample.csv"


@pytest.fixture(autouse=True)
def _fresh_rate_cache():
    currency.clear_rate_cache()
    yield
    currency.clear_rate_cache()


@pytest.fixture
def sample_rates():
    return import_rates(path=SAMPLE)


def purchase(*, price="4.99", code="EUR", quantity=1, occurred_at="2026-01-09T12:00:00Z", **fields) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "purchase",
        "player_id": "player-1",
        "occurred_at": occurred_at,
        "properties": {
            "transaction_id": f"txn-{uuid.uuid4()}",
            "product_id": "gems",
            "price": price,
            "currency": code,
            "quantity": quantity,
        },
        **fields,
    }


def ingest(game_key, *events, received_at: datetime | None = None) -> list[Event]:
    outcome = ingest_events(api_key=game_key[0], raw_events=list(events), received_at=received_at or timezone.now())
    assert outcome.rejected == 0, outcome.results
    return [Event.objects.get(event_id=event["event_id"]) for event in events]


# Minor units


@pytest.mark.parametrize(
    ("code", "units"), [("JPY", 0), ("EUR", 2), ("USD", 2), ("KWD", 3), ("CLF", 4), ("XAU", None), ("jpy", 0)]
)
def test_minor_units_are_the_iso_4217_exponents(code, units):
    assert currency.minor_units(code) == units


def test_every_accepted_currency_code_has_iso_minor_units_data():
    assert set(CURRENCY_CODES) <= set(currency.MINOR_UNITS)


@pytest.mark.parametrize(
    ("price", "code", "message"),
    [
        ("4.999", "EUR", "EUR allows at most 2 decimal places (ISO 4217); 4.999 has 3."),
        ("1200.5", "JPY", "JPY has no minor units (ISO 4217): 1200.5 must be a whole number."),
        (0.5, "JPY", "JPY has no minor units (ISO 4217): 0.5 must be a whole number."),
        ("1.2345", "KWD", "KWD allows at most 3 decimal places (ISO 4217); 1.2345 has 4."),
    ],
    ids=["eur-3-places", "jpy-fraction", "jpy-json-number", "kwd-4-places"],
)
def test_price_with_more_decimals_than_its_currency_allows_is_rejected_naming_the_rule(api, price, code, message):
    response = api.post("/v1/events", purchase(price=price, code=code), format="json")

    assert response.status_code == 400
    assert response.json()["properties"] == {"price": [message]}
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    ("price", "code", "revenue"),
    [("1200", "JPY", "1200"), ("1200.00", "JPY", "1200"), ("4.990", "EUR", "4.99"), ("0.125", "KWD", "0.125")],
    ids=["jpy-whole", "jpy-trailing-zeros", "eur-trailing-zero", "kwd-3-places"],
)
def test_price_within_its_currency_minor_units_is_accepted(api, price, code, revenue):
    response = api.post("/v1/events", purchase(price=price, code=code), format="json")

    assert response.status_code == 202
    assert Event.objects.get().payload["revenue"] == revenue


def test_currency_without_iso_minor_units_takes_any_scale_the_field_allows():
    assert currency.minor_units_error(Decimal("1.123456"), "XAU") is None


def test_batch_rejects_only_the_purchase_with_too_many_decimals(api):
    good, bad = purchase(price="1200", code="JPY"), purchase(price="1200.5", code="JPY")

    response = api.post("/v1/events/batch", {"events": [good, bad]}, format="json")

    assert response.json()["accepted"] == 1
    assert response.json()["results"][1]["errors"] == {
        "properties": {"price": ["JPY has no minor units (ISO 4217): 1200.5 must be a whole number."]}
    }


# Rounding


@pytest.mark.parametrize(
    ("amount", "base", "rounded"),
    [
        ("0.125", "USD", "0.12"),  # a tie goes to the even cent
        ("0.135", "USD", "0.14"),
        ("0.1251", "USD", "0.13"),
        ("22.5", "JPY", "22"),
        ("23.5", "JPY", "24"),
        ("1.23456", "KWD", "1.235"),
        ("1.2345675", "XAU", "1.234568"),  # no ISO minor unit: 6 places
    ],
)
def test_base_amount_is_rounded_half_even_to_the_base_minor_units(amount, base, rounded):
    assert currency.round_base(Decimal(amount), base) == Decimal(rounded)
    assert str(currency.round_base(Decimal(amount), base)) == rounded


@pytest.mark.parametrize(
    ("table_rate", "fx_rate"),
    [
        ("157.510729614", "0.006348773842"),  # 1 USD in JPY -> 1 JPY in USD
        ("0.858369098712", "1.165"),  # the 12-place cross rate's noise is dropped
        ("0.307", "3.25732899"),
        ("42000", "0.000023809524"),  # at most 12 places
    ],
)
def test_fx_rate_is_the_inverse_table_rate_to_10_significant_digits(table_rate, fx_rate):
    assert currency.plain(currency.fx_rate_from(Decimal(table_rate))) == fx_rate


def test_revenue_base_is_revenue_times_fx_rate_so_the_record_can_be_checked_on_its_own():
    rate = currency.FxRate(date=date(2026, 1, 9), rate=Decimal("0.006348773842"))

    fields = currency.base_fields(revenue=Decimal("3600"), rate=rate, base="USD")

    assert fields == {
        "revenue_base": "22.86",
        "base_currency": "USD",
        "fx_rate": "0.006348773842",
        "fx_date": "2026-01-09",
    }
    assert currency.round_base(Decimal("3600") * Decimal(fields["fx_rate"]), "USD") == Decimal(fields["revenue_base"])


# Conversion on ingest


def test_purchases_are_converted_at_the_sample_rates_of_their_day(game_key, sample_rates):
    jpy, eur = ingest(
        game_key,
        purchase(price="1200", code="JPY", quantity=3, occurred_at="2026-01-09T12:00:00Z"),
        purchase(price="4.99", code="EUR", occurred_at="2026-01-09T18:30:00Z"),
    )

    assert {key: jpy.payload[key] for key in ("price", "quantity", "currency", "revenue", *currency.BASE_FIELDS)} == {
        "price": "1200",
        "quantity": 3,
        "currency": "JPY",
        "revenue": "3600",
        "revenue_base": "22.86",
        "base_currency": "USD",
        "fx_rate": "0.006348773842",
        "fx_date": "2026-01-09",
    }
    assert (eur.payload["revenue"], eur.payload["revenue_base"], eur.payload["fx_rate"]) == ("4.99", "5.81", "1.165")
    assert (jpy.revenue, jpy.revenue_base, jpy.base_currency) == (Decimal("3600"), Decimal("22.86"), "USD")
    assert (jpy.fx_rate, jpy.fx_date) == (Decimal("0.006348773842"), date(2026, 1, 9))


@pytest.mark.parametrize(
    ("occurred_at", "code", "fx_date"),
    [
        ("2026-01-10T09:00:00Z", "EUR", "2026-01-09"),  # Saturday
        ("2026-01-11T23:59:59Z", "EUR", "2026-01-09"),  # Sunday
        ("2026-01-12T00:30:00+02:00", "EUR", "2026-01-09"),  # Monday locally, still Sunday in UTC
        ("2026-01-13T10:00:00Z", "BRL", "2026-01-12"),  # N/A for BRL that day in the file
        ("2026-01-23T10:00:00Z", "EUR", "2026-01-16"),  # 7 days after the last rate: still in the window
    ],
    ids=["saturday", "sunday", "utc-day", "gap-in-one-currency", "edge-of-window"],
)
def test_day_without_a_rate_takes_the_latest_earlier_rate_and_records_its_date(
    game_key, sample_rates, occurred_at, code, fx_date
):
    (event,) = ingest(game_key, purchase(code=code, occurred_at=occurred_at))

    assert event.payload["fx_date"] == fx_date
    assert event.fx_date == date.fromisoformat(fx_date)
    assert event.payload["revenue_base"] is not None


def test_the_rate_day_comes_from_derived_at_not_the_clients_clock(game_key, sample_rates):
    # The client's clock is 8 days fast: sent_at says Jan 20, the server received it on Jan 12.
    event = purchase(occurred_at="2026-01-20T09:00:00Z", sent_at="2026-01-20T10:00:00Z")

    (row,) = ingest(game_key, event, received_at=datetime(2026, 1, 12, 10, 0, tzinfo=UTC))

    assert row.payload["derived_at"].startswith("2026-01-12T09:00:00")
    assert row.payload["fx_date"] == "2026-01-12"


def test_purchase_with_no_rate_in_the_window_is_accepted_with_null_base_fields(game_key, sample_rates):
    too_late, no_such_rate = ingest(
        game_key,
        purchase(code="EUR", occurred_at="2026-01-24T10:00:00Z"),  # 8 days after the file's last day
        purchase(price="1.250", code="KWD", occurred_at="2026-01-12T10:00:00Z"),  # the ECB has no KWD
    )

    for row in (too_late, no_such_rate):
        assert {key: row.payload[key] for key in currency.BASE_FIELDS} == dict.fromkeys(currency.BASE_FIELDS)
        assert (row.revenue_base, row.base_currency, row.fx_rate, row.fx_date) == (None, "", None, None)
        assert row.revenue is not None
    assert currency.missing_rate_count() == 2


def test_purchase_dated_in_year_1_is_stored_without_a_rate_not_crashed_on(game_key, sample_rates):
    (row,) = ingest(game_key, purchase(code="EUR", occurred_at="0001-01-02T00:00:00Z"))

    assert row.payload["revenue_base"] is None


def test_lookback_window_is_configurable(game_key, sample_rates, settings):
    settings.EVENTS_FX_LOOKBACK_DAYS = 10

    (row,) = ingest(game_key, purchase(code="EUR", occurred_at="2026-01-24T10:00:00Z"))

    assert row.payload["fx_date"] == "2026-01-16"


def test_purchase_in_the_base_currency_converts_at_1_without_a_rate_table(game_key):
    (row,) = ingest(game_key, purchase(price="2.99", code="USD", quantity=2, occurred_at="2026-01-10T10:00:00Z"))

    assert {key: row.payload[key] for key in currency.BASE_FIELDS} == {
        "revenue_base": "5.98",
        "base_currency": "USD",
        "fx_rate": "1",
        "fx_date": "2026-01-10",
    }


def test_other_base_currency_converts_against_it(game_key, settings):
    settings.EVENTS_BASE_CURRENCY = "EUR"
    import_rates(path=SAMPLE)

    (row,) = ingest(game_key, purchase(price="1200", code="JPY", quantity=3, occurred_at="2026-01-09T12:00:00Z"))

    # 1 EUR = 183.50 JPY: 3600 / 183.50 = 19.6185...
    assert (row.payload["base_currency"], row.payload["revenue_base"]) == ("EUR", "19.62")
    assert row.payload["fx_rate"] == "0.005449591281"


def test_installs_carry_no_money_fields(game_key):
    install = {
        "event_id": str(uuid.uuid4()),
        "event_type": "install",
        "player_id": "p",
        "occurred_at": "2026-01-09T10:00:00Z",
    }

    (row,) = ingest(game_key, install)

    assert not set(row.payload) & {"revenue", *currency.BASE_FIELDS}


# The rate cache


def _rate_queries(queries) -> list[str]:
    table = ExchangeRate._meta.db_table
    return [query["sql"] for query in queries if table in query["sql"]]


def test_ingest_looks_rates_up_once_per_currency_and_day_not_per_purchase(game_key, sample_rates):
    events = [purchase(price="1200", code="JPY") for _ in range(100)] + [purchase(code="EUR") for _ in range(100)]
    events += [purchase(code="KWD") for _ in range(50)]  # no rate: the miss is cached too

    with CaptureQueriesContext(connection) as captured:
        ingest(game_key, *events)
        ingest(game_key, purchase(price="1300", code="JPY"))

    assert len(_rate_queries(captured.captured_queries)) == 3


def test_cached_rates_expire_after_the_configured_seconds(sample_rates, settings, monkeypatch):
    settings.EVENTS_FX_CACHE_SECONDS = 60
    day = date(2026, 1, 12)
    assert currency.find_rate(currency="KWD", on=day) is None
    ExchangeRate.objects.create(date=day, currency="KWD", base_currency="USD", rate=Decimal("0.307"))

    assert currency.find_rate(currency="KWD", on=day) is None  # the miss is remembered
    now = currency.time.monotonic()
    monkeypatch.setattr(currency.time, "monotonic", lambda: now + 61)

    assert currency.find_rate(currency="KWD", on=day) == currency.FxRate(date=day, rate=Decimal("3.25732899"))


def test_rates_spread_over_months_are_looked_up_one_by_one(sample_rates):
    far = date(2025, 6, 1)
    ExchangeRate.objects.create(date=far, currency="JPY", base_currency="USD", rate=Decimal("140"))

    found = currency.find_rates([("JPY", far), ("JPY", date(2026, 1, 9)), ("JPY", date(2025, 9, 1))])

    assert found[("JPY", far)].date == far
    assert found[("JPY", date(2026, 1, 9))].rate == Decimal("0.006348773842")
    assert found[("JPY", date(2025, 9, 1))] is None


# The admin


def test_rate_admin_lists_rates_and_says_how_many_purchases_lack_a_rate(admin_client, game_key, sample_rates):
    ingest(game_key, purchase(code="KWD"), purchase(code="KWD"), purchase(code="EUR"))

    response = admin_client.get("/admin/events_app/exchangerate/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "2 purchases lack a rate" in page
    assert "manage.py reconvert" in page
    assert "157.510729614" in page


def test_purchases_lacking_a_rate_link_opens_the_filtered_event_list(admin_client, game_key, sample_rates):
    ingest(game_key, purchase(code="KWD"))

    response = admin_client.get("/admin/events_app/event/?revenue__isnull=False&revenue_base__isnull=True")

    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_rate_admin_says_when_every_purchase_is_converted(admin_client, game_key, sample_rates):
    ingest(game_key, purchase(code="EUR"))

    response = admin_client.get("/admin/events_app/exchangerate/")

    assert "Every purchase has its amount in the base currency USD." in response.content.decode()


def test_rate_is_added_in_the_admin_with_iso_codes_and_used_at_once(admin_client, game_key):
    assert currency.find_rate(currency="KWD", on=date(2026, 1, 12)) is None  # cached miss

    response = admin_client.post(
        "/admin/events_app/exchangerate/add/",
        {"date": "2026-01-12", "base_currency": "usd", "currency": "kwd", "rate": "0.307", "source": "manual"},
    )

    assert response.status_code == 302
    rate = ExchangeRate.objects.get()
    assert (rate.currency, rate.base_currency, rate.rate) == ("KWD", "USD", Decimal("0.307"))
    (row,) = ingest(game_key, purchase(price="1.250", code="KWD", occurred_at="2026-01-12T10:00:00Z"))
    assert row.payload["revenue_base"] == "4.07"


@pytest.mark.parametrize(
    ("currency_code", "error"),
    [("XYZ", "XYZ is not an ISO 4217 currency code."), ("USD", "A currency has no rate against itself.")],
)
def test_rate_admin_refuses_bad_currency_codes(admin_client, currency_code, error):
    response = admin_client.post(
        "/admin/events_app/exchangerate/add/",
        {"date": "2026-01-12", "base_currency": "USD", "currency": currency_code, "rate": "1.5", "source": ""},
    )

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not ExchangeRate.objects.exists()


def test_rate_admin_refuses_a_second_rate_for_the_same_day(admin_client, sample_rates):
    response = admin_client.post(
        "/admin/events_app/exchangerate/add/",
        {"date": "2026-01-09", "base_currency": "USD", "currency": "JPY", "rate": "150", "source": "manual"},
    )

    assert response.status_code == 200
    assert ExchangeRate.objects.get(date=date(2026, 1, 9), currency="JPY").rate == Decimal("157.510729614")
