"""Money: ISO 4217 minor units, exchange-rate lookup and conversion of revenue to the base currency.

Amounts are `Decimal` throughout, never float. Conventions (docs/currency.md):

- An `ExchangeRate` row says 1 unit of `base_currency` bought `rate` units of
  `currency` on `date` (the ECB's way round: 1 EUR = 1.1650 USD).
- A converted purchase carries `fx_rate`, the other way round: units of the base
  currency per 1 unit of the purchase's currency, i.e. 1 / rate, rounded half-even
  to 10 significant digits and at most 12 decimal places (the column's scale).
  `revenue_base = revenue x fx_rate`, rounded half-even to the base currency's ISO
  4217 minor units (USD: cents), so anyone can recompute it from the record alone.
- The rate used is the one of the purchase's `derived_at` day (UTC) or, when that day
  has none (weekends, holidays), the latest earlier one within
  EVENTS_FX_LOOKBACK_DAYS; its day is `fx_date`. No rate: the four fields are null
  until `manage.py reconvert` fills them.

Rate lookups on ingest are cached in-process per (base, currency, day) for
EVENTS_FX_CACHE_SECONDS, misses too, so a busy server asks the database about each
currency and day about once a minute instead of once per purchase.
"""

import bisect
import decimal
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import iso4217
from django.utils import timezone

from events_app import conf
from events_app.models import Event, ExchangeRate

logger = logging.getLogger(__name__)

FX_RATE_DECIMALS = 12  # scale of ExchangeRate.rate and Event.fx_rate
FX_SIGNIFICANT_DIGITS = 10  # of a purchase's fx_rate
# A base currency for which ISO 4217 defines no minor unit (gold, XAU) keeps the
# scale of Event.revenue_base.
FALLBACK_DECIMALS = 6
ONE = Decimal(1)
# Wide enough that products and quotients of the largest accepted amounts and rates
# are exact before the one deliberate rounding.
_EXACT = decimal.Context(prec=80, rounding=ROUND_HALF_EVEN, traps=[decimal.InvalidOperation, decimal.DivisionByZero])
BASE_FIELDS = ("revenue_base", "base_currency", "fx_rate", "fx_date")


# Minor units


def _iso_minor_units() -> dict[str, int | None]:
    units: dict[str, int | None] = {}
    for code, entry in iso4217.raw_table.items():
        text = (entry.get("CcyMnrUnts") or "").strip()
        if code:
            units[code] = int(text) if text.isdigit() else None  # "N.A." for gold, SDR, test codes
    return units


# ISO 4217's own table (SIX, the maintenance agency), as the iso4217 package ships it.
# CLDR (babel) differs for some on purpose (IQD 0 instead of 3), which would refuse
# amounts that ISO allows.
MINOR_UNITS: dict[str, int | None] = _iso_minor_units()


def minor_units(currency: str) -> int | None:
    """Return the ISO 4217 exponent of `currency` (JPY 0, EUR 2, KWD 3), None if ISO defines none."""
    return MINOR_UNITS.get(currency.upper())


def decimal_places(amount: Decimal) -> int:
    """Return how many decimals `amount` really has, trailing zeros ignored ("4.990" has 2)."""
    exponent = amount.normalize(_EXACT).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def minor_units_error(amount: Decimal, currency: str) -> str | None:
    """Return why `amount` has more decimals than `currency` allows, or None if it fits.

    A currency without an ISO minor unit (XAU, XDR, ...) takes any scale the field allows.
    """
    allowed = minor_units(currency)
    places = decimal_places(amount)
    if allowed is None or places <= allowed:
        return None
    shown = plain(amount)
    if allowed == 0:
        return f"{currency} has no minor units (ISO 4217): {shown} must be a whole number."
    unit = "place" if allowed == 1 else "places"
    return f"{currency} allows at most {allowed} decimal {unit} (ISO 4217); {shown} has {places}."


def plain(value: Decimal) -> str:
    """Return a decimal as plain digits without exponent or trailing zeros ("4.99", "1200")."""
    return format(value.normalize(_EXACT), "f")


def round_base(amount: Decimal, base: str, *, to_minor_units: bool = True) -> Decimal:
    """Round an amount in `base` half-to-even to its minor units (6 places where ISO gives none, or when not asked).

    Half-even (banker's rounding) so that ties do not push sums of many purchases up.
    Sub-cent revenue (an ad impression's) is kept to 6 places: rounding each
    impression to the cent would sum a million 0.004 USD impressions to zero.
    """
    places = minor_units(base) if to_minor_units else None
    quantum = Decimal(1).scaleb(-(FALLBACK_DECIMALS if places is None else places))
    return amount.quantize(quantum, rounding=ROUND_HALF_EVEN, context=_EXACT)


def fx_rate_from(rate: Decimal) -> Decimal:
    """Return units of base per 1 unit of currency for a table rate (1 base = `rate` currency).

    Rounded half-even to 10 significant digits, at most 12 decimal places: a table rate
    is itself rounded (to 12 significant digits), so further digits of its inverse are
    noise (1 / 0.858369098712 = 1.16500000000058..., which is 1.165).
    """
    inverse = _EXACT.divide(ONE, rate)
    exponent = max(inverse.adjusted() - (FX_SIGNIFICANT_DIGITS - 1), -FX_RATE_DECIMALS)
    return inverse.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_EVEN, context=_EXACT)


# Rate lookup


@dataclass(frozen=True)
class FxRate:
    """The rate a purchase is converted at: `rate` units of base per 1 unit of its currency, of day `date`."""

    date: date
    rate: Decimal


_cache: dict[tuple[str, str, date], tuple[float, FxRate | None]] = {}
_cache_lock = threading.Lock()
# Clients' clocks can put purchases on any day; an unbounded cache would let them grow it.
_CACHE_MAX_ENTRIES = 20_000
# Keys spread wider than this are looked up one by one rather than in one range query.
_RANGE_QUERY_MAX_DAYS = 62


def clear_rate_cache() -> None:
    """Forget every cached rate; call after rates change in this process (import, admin edit)."""
    with _cache_lock:
        _cache.clear()


def utc_day(moment: datetime) -> date:
    """Return the UTC calendar day of an aware datetime: the day whose rate applies."""
    return moment.astimezone(UTC).date()


def find_rate(*, currency: str, on: date, base: str | None = None) -> FxRate | None:
    """Return the rate for converting `currency` into the base on day `on`, or None if none is usable."""
    base = base or conf.base_currency()
    cached = _cache.get((base, currency, on))
    if cached is not None and cached[0] > time.monotonic():  # the ingest path, once per purchase
        return cached[1]
    return find_rates([(currency, on)], base=base)[(currency, on)]


def find_rates(keys: Iterable[tuple[str, date]], *, base: str | None = None) -> dict[tuple[str, date], FxRate | None]:
    """Return the rate (or None) for each (currency, day); what the cache lacks costs one query."""
    base = base or conf.base_currency()
    now = time.monotonic()
    found: dict[tuple[str, date], FxRate | None] = {}
    missing: set[tuple[str, date]] = set()
    for currency, day in keys:
        if currency == base:
            found[(currency, day)] = FxRate(date=day, rate=ONE)
            continue
        cached = _cache.get((base, currency, day))
        if cached is not None and cached[0] > now:
            found[(currency, day)] = cached[1]
        else:
            missing.add((currency, day))
    if missing:
        looked_up = _carried_forward(missing, base=base) if conf.fx_carry_forward() else {key: key for key in missing}
        loaded = _load_rates(base=base, keys=set(looked_up.values()))
        expires = now + conf.fx_cache_seconds()
        with _cache_lock:
            if len(_cache) + len(missing) > _CACHE_MAX_ENTRIES:
                _cache.clear()
            for key in missing:
                _cache[(base, *key)] = (expires, loaded.get(looked_up[key]))
        for key in missing:
            found[key] = loaded.get(looked_up[key])
    return found


def newest_rate_day(base: str | None = None) -> date | None:
    """Return the newest day of any rate against the base in the table, or None if it has none."""
    return (
        ExchangeRate.objects.filter(base_currency=base or conf.base_currency())
        .order_by("-date")
        .values_list("date", flat=True)
        .first()
    )


def _carried_forward(keys: set[tuple[str, date]], *, base: str) -> dict[tuple[str, date], tuple[str, date]]:
    """Map each (currency, day) to the key to look up: a day after the table's newest is looked up as that day.

    The local-development rule (conf.fx_carry_forward): the purchase converts at the
    newest published rate, and its fx_date names that rate's day, so the record says
    plainly which day's rate it took. Gaps inside the table are not filled.
    """
    newest = newest_rate_day(base)
    if newest is None:
        return {key: key for key in keys}
    return {(code, day): (code, min(day, newest)) for code, day in keys}


def carry_forward_note(last_day: date | None, *, today: date | None = None) -> str | None:
    """Return what happens to purchases after `last_day`, the newest rate day, or None if it is recent enough.

    Said by import_rates and docs/currency.md, so that no carried rate passes for a
    published one.
    """
    if last_day is None:
        return None
    today = today or utc_day(timezone.now())
    if (today - last_day).days <= conf.fx_lookback_days():
        return None
    if conf.fx_carry_forward():
        return (
            f"Rates after {last_day.isoformat()} are carried forward from the last rate imported (local "
            f"development only): such purchases get fx_date {last_day.isoformat()}."
        )
    return (
        f"No rate after {last_day.isoformat()}: purchases after {(last_day + timedelta(days=conf.fx_lookback_days()))} "
        "stay unconverted until newer rates are imported and `manage.py reconvert` runs."
    )


def _earliest_day(day: date, lookback: timedelta) -> date:
    """Return the oldest day whose rate may serve `day` (clients can send year 1)."""
    try:
        return day - lookback
    except OverflowError:
        return date.min


def _load_rates(*, base: str, keys: set[tuple[str, date]]) -> dict[tuple[str, date], FxRate]:
    """Look the keys up in the rate table: one range query when their days are close together."""
    lookback = timedelta(days=conf.fx_lookback_days())
    days = [day for _, day in keys]
    first, last = min(days), max(days)
    if (last - first).days > _RANGE_QUERY_MAX_DAYS:
        result = {}
        for currency, day in keys:
            row = (
                ExchangeRate.objects.filter(
                    base_currency=base, currency=currency, date__lte=day, date__gte=_earliest_day(day, lookback)
                )
                .order_by("-date")
                .values_list("date", "rate")
                .first()
            )
            if row is not None:
                result[(currency, day)] = FxRate(date=row[0], rate=fx_rate_from(row[1]))
        return result
    rows = (
        ExchangeRate.objects.filter(
            base_currency=base,
            currency__in={currency for currency, _ in keys},
            date__gte=_earliest_day(first, lookback),
            date__lte=last,
        )
        .order_by("currency", "date")
        .values_list("currency", "date", "rate")
    )
    by_currency: dict[str, list[tuple[date, Decimal]]] = {}
    for currency, day, rate in rows:
        by_currency.setdefault(currency, []).append((day, rate))
    result = {}
    for currency, day in keys:
        series = by_currency.get(currency, [])
        position = bisect.bisect_right(series, day, key=lambda item: item[0])
        if position and series[position - 1][0] >= _earliest_day(day, lookback):
            rate_day, rate = series[position - 1]
            result[(currency, day)] = FxRate(date=rate_day, rate=fx_rate_from(rate))
    return result


# Conversion


def base_fields(*, revenue: Decimal, rate: FxRate | None, base: str | None = None, minor_units: bool = True) -> dict:
    """Return the record's four base-currency fields (strings), all None when there is no rate.

    `minor_units` is the revenue's Money rule (sdk.contract): round to the base currency's cents, or keep sub-cents.
    """
    if rate is None:
        return dict.fromkeys(BASE_FIELDS)
    base = base or conf.base_currency()
    revenue_base = round_base(_EXACT.multiply(revenue, rate.rate), base, to_minor_units=minor_units)
    return {
        "revenue_base": plain(revenue_base),
        "base_currency": base,
        "fx_rate": plain(rate.rate),
        "fx_date": rate.date.isoformat(),
    }


def convert(*, revenue: Decimal, currency: str, on: date, base: str | None = None, minor_units: bool = True) -> dict:
    """Return the base-currency fields of `revenue` `currency` earned on day `on` (see base_fields)."""
    base = base or conf.base_currency()
    rate = find_rate(currency=currency, on=on, base=base)
    return base_fields(revenue=revenue, rate=rate, base=base, minor_units=minor_units)


def missing_rate_count() -> int:
    """Return how many stored purchases still lack a base-currency amount."""
    return Event.objects.filter(revenue__isnull=False, revenue_base__isnull=True).count()
