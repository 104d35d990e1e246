"""Create the S3 bucket and Firehose delivery stream (and the Kinesis data stream, if that is the destination)."""

from django.core.management.base import BaseCommand

from events_app import conf
from events_app.delivery.destinations.base import ensure_emulator_streams


class Command(BaseCommand):
    help = (
        "For a local AWS emulator: create the S3 bucket and the delivery stream if missing, and the Kinesis data "
        "stream too with EVENTS_DESTINATION=kinesis."
    )

    def handle(self, *args, **options):
        created = ensure_emulator_streams()
        if created:
            self.stdout.write("Created " + ", ".join(created) + ".")
        else:
            self.stdout.write(f"Delivery stream {conf.stream_name()} and bucket {conf.s3_bucket()} already exist.")
