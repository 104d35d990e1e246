"""Export of what the event list's filter shows: NDJSON (the Firehose line) or CSV, streamed by keyset chunks."""

import csv
import io
from collections.abc import Iterator
from datetime import datetime

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from events_app.delivery.records import encode_line
from events_app.event_types.timeutil import iso_utc
from events_app.models import DeliveryState, IssueState

# Rows read per query: memory stays that of one chunk, whatever the export's size.
CHUNK = 2000
FORMATS = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
CSV_COLUMNS = (
    "event_id",
    "event_type",
    "game",
    "player_id",
    "platform",
    "occurred_at",
    "sent_at",
    "received_at",
    "derived_at",
    "transaction_id",
    "product_id",
    "price",
    "currency",
    "revenue",
    "revenue_base",
    "base_currency",
    "delivery_state",
)
# A spreadsheet runs a cell starting with one of these as a formula: player ids and products are the client's.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def keyset_chunks(queryset: QuerySet, fields: tuple[str, ...], *, chunk: int | None = None) -> Iterator[list[tuple]]:
    """Yield the queryset's rows as value tuples (pk first), newest first by id, `chunk` rows per query.

    Each query starts below the last id of the one before (never OFFSET), so every chunk
    costs the same on the primary key or (game, id) index, and no server-side cursor is
    held between them.
    """
    chunk = chunk or CHUNK
    rows = queryset.order_by("-pk").values_list("pk", *fields)
    before = None
    while True:
        page = list((rows if before is None else rows.filter(pk__lt=before))[:chunk])
        if not page:
            return
        yield page
        if len(page) < chunk:
            return
        before = page[-1][0]


def ndjson_lines(queryset: QuerySet, *, emitted_at: datetime | None = None) -> Iterator[bytes]:
    """Yield each event's Firehose line: its delivery issue's copy if it has one (what a resend sends), else its own.

    `emitted_at` is stamped at each send; an export stamps the time it was made.
    """
    emitted_at = emitted_at or timezone.now()
    for page in keyset_chunks(queryset, ("payload", "issue__payload")):
        yield b"".join(encode_line(issued or payload, emitted_at=emitted_at) for _, payload, issued in page)


def csv_lines(queryset: QuerySet) -> Iterator[str]:
    """Yield the CSV header and each event as a row of CSV_COLUMNS, one chunk of rows per string."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    fields = (
        "event_id",
        "event_type",
        "game__slug",
        "player_id",
        "platform",
        "occurred_at",
        "sent_at",
        "received_at",
        "derived_at",
        "transaction_id",
        "product",
        "price",
        "currency",
        "revenue",
        "revenue_base",
        "base_currency",
        "issue_state",
        "waiting",
    )
    for page in keyset_chunks(queryset, fields):
        buffer.seek(0)
        buffer.truncate()
        for row in page:
            writer.writerow([_cell(value) for value in _csv_row(row[1:])])
        yield buffer.getvalue()


def _csv_row(values: tuple) -> list:
    *columns, issue_state, waiting = values
    return [*columns, _delivery_state(issue_state, waiting)]


def _delivery_state(issue_state: str | None, waiting: bool) -> str:
    """Return the derived delivery state as events_app.delivery.status.delivery_state gives it."""
    if issue_state is not None:
        return DeliveryState.PENDING if issue_state == IssueState.PENDING else issue_state
    return DeliveryState.PENDING if waiting else DeliveryState.DELIVERED


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    return str(value)


def export_response(queryset: QuerySet, *, format: str, name: str) -> StreamingHttpResponse:
    """Return the streamed download of `queryset` as `format` (ndjson or csv), as the file `name`.<format>."""
    lines = ndjson_lines(queryset) if format == "ndjson" else csv_lines(queryset)
    response = StreamingHttpResponse(lines, content_type=FORMATS[format])
    response["Content-Disposition"] = f'attachment; filename="{name}.{format}"'
    return response
