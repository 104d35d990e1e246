"""The destination seam: where events are sent, behind one small interface.

The relay and the retry worker pack event lines into records, group records into
calls within the destination's limits and hand each call to `Destination.send`,
which answers per record. Firehose is the default (`EVENTS_DESTINATION=firehose`),
Kinesis Data Streams the second (`kinesis`). A further one (Kafka, say) is one
module with a class like these, named in DESTINATIONS or by its dotted path.
"""

import functools
from dataclasses import dataclass, field
from typing import Protocol

from django.utils.module_loading import import_string

from events_app import conf
from events_app.delivery.policies import SendPolicy

DESTINATIONS = {
    "firehose": "events_app.delivery.destinations.firehose.FirehoseDestination",
    "kinesis": "events_app.delivery.destinations.kinesis.KinesisDestination",
}


@dataclass(frozen=True)
class Limits:
    """A destination's hard limits per record and per call, and the unit it bills records by."""

    max_record_bytes: int
    max_call_records: int
    max_call_bytes: int
    billing_unit_bytes: int


@dataclass(frozen=True)
class RecordError:
    """Why the destination did not take a record, and whether trying again could help."""

    message: str
    permanent: bool = False


@dataclass
class PackedRecord:
    """One record: whole NDJSON lines, the positions of the events they carry, and its partition key."""

    data: bytes
    members: list[int] = field(default_factory=list)
    partition_key: str | None = None

    @property
    def size(self) -> int:
        """Return the bytes this record counts for against a call's limit (the key counts on Kinesis)."""
        return len(self.data) + (len(self.partition_key.encode()) if self.partition_key else 0)


class Destination(Protocol):
    """What the relay and the retry worker need from a destination."""

    name: str
    limits: Limits
    keyed: bool  # records are routed by a partition key, so lines of different keys never share one

    def partition_key(self, payload: dict) -> str | None:
        """Return the key a line is routed by (lines are packed only with lines of the same key), or None."""

    def open(self, *, policy: SendPolicy) -> None:
        """Get ready to send under `policy` (build the client), so the first send does not pay for it."""

    def send(self, records: list[PackedRecord], *, policy: SendPolicy) -> list[RecordError | None]:
        """Send one call's records; return, per record, None if taken, else its error.

        Raises DestinationError if the call as a whole failed.
        """

    def ensure(self) -> list[str]:
        """Create what a local emulator is missing for this destination; return what was created."""


@functools.cache
def _load(path: str) -> Destination:
    return import_string(path)()


def get_destination() -> Destination:
    """Return the destination EVENTS_DESTINATION names (a key of DESTINATIONS or a dotted class path)."""
    name = conf.destination()
    return _load(DESTINATIONS.get(name, name))


def ensure_emulator_streams() -> list[str]:
    """Create what a local emulator lacks: the S3 bucket and Firehose stream, and the destination's own; return them.

    Firehose's always (the default destination, and the one S3 lands in), the configured
    destination's too when it is another. `ensure_firehose`, `dev_setup` and the local
    emulator's supervisor all call this.
    """
    firehose = _load(DESTINATIONS["firehose"])
    created = firehose.ensure()
    destination = get_destination()
    if destination is not firehose:
        created += destination.ensure()
    return created
