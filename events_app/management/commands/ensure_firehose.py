"""Create the S3 bucket and Firehose delivery stream (and the Kinesis data stream, if that is the destination).

For a local AWS emulator only: the stream it makes has a placeholder IAM role and none of
the bucket's protections. On real AWS deploy deploy/aws/cloudformation.yaml instead
(docs/deploy.md); `--real-aws` overrides the refusal, for whoever means it.
"""

import ipaddress
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError

from events_app import conf
from events_app.delivery.destinations.base import ensure_emulator_streams

REFUSAL = (
    "ensure_firehose is for a local AWS emulator: AWS_ENDPOINT_URL is {endpoint}. On real AWS deploy "
    "deploy/aws/cloudformation.yaml instead (docs/deploy.md): it gives the stream a real IAM role, the bucket "
    "encryption, a lifecycle and alarms. Pass --real-aws to create them here all the same."
)


def is_local_endpoint(endpoint: str | None, extra_hosts: tuple[str, ...] = ()) -> bool:
    """Return True if `endpoint` is an emulator on this machine: localhost or a loopback address (or `extra_hosts`)."""
    if not endpoint:
        return False
    host = (urlsplit(endpoint).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost") or host in {name.lower() for name in extra_hosts}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Command(BaseCommand):
    help = (
        "For a local AWS emulator: create the S3 bucket and the delivery stream if missing, and the Kinesis data "
        "stream too with EVENTS_DESTINATION=kinesis. Refuses any AWS_ENDPOINT_URL but localhost or a loopback "
        "address (real AWS: deploy/aws/cloudformation.yaml) unless --real-aws."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--real-aws",
            action="store_true",
            help="create them even though AWS_ENDPOINT_URL is not a local emulator (real AWS): prefer the template",
        )
        parser.add_argument(
            "--emulator-host",
            action="append",
            default=[],
            metavar="HOST",
            help="a host name that is an emulator too (a compose service such as `moto`); repeatable",
        )

    def handle(self, *args, **options):
        endpoint = conf.aws_endpoint_url()
        if not options["real_aws"] and not is_local_endpoint(endpoint, tuple(options["emulator_host"])):
            raise CommandError(REFUSAL.format(endpoint=repr(endpoint) if endpoint else "empty (real AWS)"))
        created = ensure_emulator_streams()
        if created:
            self.stdout.write("Created " + ", ".join(created) + ".")
        else:
            self.stdout.write(f"Delivery stream {conf.stream_name()} and bucket {conf.s3_bucket()} already exist.")
