"""List the objects in the local AWS emulator's S3 bucket, or print their NDJSON lines: `python -m devtools.s3`."""

from __future__ import annotations

import argparse
import os
import sys

import django
from botocore.exceptions import BotoCoreError, ClientError
from django.core.exceptions import ImproperlyConfigured

from events_app import conf
from events_app.delivery.destinations.aws import setup_client


def list_objects(s3, bucket: str) -> list[dict]:
    """Return every object of `bucket` (key, size, last modified), oldest first."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.extend(page.get("Contents", []))
    return sorted(found, key=lambda item: (item["LastModified"], item["Key"]))


def show(*, lines: bool) -> int:
    """Print the bucket's objects, or with `lines` every NDJSON line in them; return the exit status."""
    endpoint, bucket = conf.aws_endpoint_url(), conf.s3_bucket()
    if not endpoint:
        print("error: AWS_ENDPOINT_URL is empty (real AWS): this tool reads the local emulator only", file=sys.stderr)
        return 1
    s3 = setup_client("s3")
    try:
        objects = list_objects(s3, bucket)
        if lines:
            for item in objects:
                sys.stdout.write(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode())
            return 0
    except (BotoCoreError, ClientError) as exc:
        print(f"error: cannot read bucket {bucket} at {endpoint} (is `make run` going?): {exc}", file=sys.stderr)
        return 1
    print(f"s3://{bucket} at {endpoint}:")
    for item in objects:
        print(f"  {item['LastModified']:%Y-%m-%d %H:%M:%S} UTC  {item['Size']:>9,} bytes  {item['Key']}")
    total = sum(item["Size"] for item in objects)
    print(f"{len(objects)} objects, {total:,} bytes (--lines prints their NDJSON lines)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.s3",
        description="List what the delivery stream wrote to the local emulator's bucket "
        "(FIREHOSE_S3_BUCKET at AWS_ENDPOINT_URL, read from .env like every manage.py command).",
    )
    parser.add_argument("--lines", action="store_true", help="print every NDJSON line of the objects, oldest first")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracking_project.settings")  # they read .env
    try:
        django.setup()
    except ImproperlyConfigured as exc:  # no .env yet: production settings
        print(f"error: {exc} (`make run` writes the local .env)", file=sys.stderr)
        return 1
    return show(lines=args.lines)


if __name__ == "__main__":
    sys.exit(main())
