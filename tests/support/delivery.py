"""Delivery helpers: the lines in the bucket, storing events through the service, spies and stubs, derived states."""

from collections import Counter

from botocore.stub import Stubber
from django.utils import timezone

from events_app import conf
from events_app.delivery import status
from events_app.ingest.service import ingest_events
from events_app.models import DeliveryIssue, Event


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


def delivery_state(event: Event) -> str:
    """Return the event's delivery state as the admin shows it, read afresh (no issue remembered on the object)."""
    return status.delivery_state(Event.objects.get(pk=event.pk))


def delivery_states() -> Counter:
    """Return how many stored events are in each delivery state."""
    return Counter(status.delivery_state(event) for event in Event.objects.all())


def issue_of(*, player_id: str) -> DeliveryIssue:
    """Return the delivery issue of the one event of `player_id`."""
    return DeliveryIssue.objects.get(event_id=Event.objects.get(player_id=player_id).pk)


def stub_put_record_batch(client, *calls: list[str | None]) -> Stubber:
    """Stub one PutRecordBatch answer per call: for each record, None if taken, else the error code it fails with.

    A sender sends the records a destination failed again at once (twice, by
    default): a stub must answer those calls too, or it raises.
    """
    stubber = Stubber(client)
    for codes in calls:
        responses = [
            {"ErrorCode": code, "ErrorMessage": "refused"} if code else {"RecordId": f"record-{position}"}
            for position, code in enumerate(codes)
        ]
        stubber.add_response(
            "put_record_batch",
            {"FailedPutCount": sum(1 for code in codes if code), "RequestResponses": responses},
        )
    return stubber


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
