"""Delivery helpers: the lines in the bucket, storing events through the service, a PutRecordBatch spy."""

from django.utils import timezone

from events_app import conf
from events_app.ingest.service import ingest_events


def read_s3_lines(s3) -> list[bytes]:
    """Return every NDJSON line in the delivery bucket, checking each object ends with a newline."""
    lines = []
    listing = s3.list_objects_v2(Bucket=conf.s3_bucket())
    for item in listing.get("Contents", []):
        body = s3.get_object(Bucket=conf.s3_bucket(), Key=item["Key"])["Body"].read()
        assert body.endswith(b"\n")
        lines.extend(body.splitlines())
    return lines


def store(game_key, events):
    """Ingest `events` through the service, 500 at a time like the batch endpoint."""
    for start in range(0, len(events), 500):
        outcome = ingest_events(api_key=game_key[0], raw_events=events[start : start + 500], received_at=timezone.now())
        assert outcome.rejected == 0


class PutRecordBatchSpy:
    """Count PutRecordBatch calls and the sizes of the records each one carries."""

    def __init__(self, client):
        self.calls: list[list[int]] = []
        client.meta.events.register("before-parameter-build.firehose.PutRecordBatch", self._on_call)

    def _on_call(self, params, **kwargs):
        self.calls.append([len(record["Data"]) for record in params["Records"]])

    @property
    def record_sizes(self) -> list[int]:
        return [size for call in self.calls for size in call]
