"""A destination that takes every record at once and keeps nothing: benchmarks measure the bookkeeping alone.

Named by its dotted path (EVENTS_DESTINATION=null_destination.NullDestination, with
bench/ on PYTHONPATH); the interface is the one both the current tree and older
commits know (events_app's Destination protocol).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class _Limits:
    max_record_bytes: int = 1000 * 1024
    max_call_records: int = 500
    max_call_bytes: int = 4 * 1024 * 1024
    billing_unit_bytes: int = 5 * 1024


class NullDestination:
    name = "null"
    keyed = False
    limits = _Limits()

    def partition_key(self, payload):
        return None

    def open(self, *, policy):
        pass

    def send(self, records, *, policy):
        return [None] * len(records)

    def ensure(self):
        return []
