"""Create the S3 bucket and Firehose delivery stream on a local AWS emulator if missing."""

from django.core.management.base import BaseCommand

from events_app import conf
from events_app.firehose import ensure_stream


class Command(BaseCommand):
    help = "For a local AWS emulator: create the S3 bucket and the delivery stream if missing."

    def handle(self, *args, **options):
        created = ensure_stream(stream=conf.stream_name(), bucket=conf.s3_bucket(), prefix=conf.s3_prefix())
        if created:
            self.stdout.write("Created " + ", ".join(created) + ".")
        else:
            self.stdout.write(f"Delivery stream {conf.stream_name()} and bucket {conf.s3_bucket()} already exist.")
