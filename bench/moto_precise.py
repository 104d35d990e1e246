"""moto's server with S3 LastModified to the microsecond, so a benchmark can time when each line landed.

Usage: .venv/bin/python bench/moto_precise.py -H 127.0.0.1 -p PORT (the arguments of `moto_server`).
moto itself answers whole seconds (S3's wire format zeroes the milliseconds), too
coarse for runs of a few seconds.
"""

import sys

from moto import server
from moto.core.serialize import TimestampSerializer
from moto.s3.models import FakeKey


def _iso_with_microseconds(key: FakeKey) -> str:
    return key.last_modified.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


FakeKey.last_modified_ISO8601 = property(_iso_with_microseconds)
TimestampSerializer._timestamp_iso8601_zeroed = lambda self, value: value.strftime(self.ISO8601_MICRO)

if __name__ == "__main__":
    server.main(sys.argv[1:])
