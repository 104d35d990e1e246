"""Fill the base-currency amounts of purchases stored without a rate, and send their corrected records again."""

from django.core.management.base import BaseCommand

from events_app.delivery.reconvert import reconvert_missing


class Command(BaseCommand):
    help = (
        "Convert purchases that lacked an exchange rate when they arrived, now that rates exist, and queue "
        "their corrected records for the delivery worker (the warehouse view keeps the newest)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000, help="Events converted per transaction.")

    def handle(self, *args, batch_size: int, **options):
        counts = reconvert_missing(batch_size=batch_size)
        self.stdout.write(f"converted={counts.converted} still_missing={counts.still_missing}")
