"""Request bodies as Segment's and RudderStack's SDKs send them: JSON labelled four ways, gzip, chunked uploads."""

import io
import logging

from django.http import HttpRequest
from rest_framework.exceptions import UnsupportedMediaType

from events_app import conf
from events_app.api.parsers import EventJSONParser

logger = logging.getLogger(__name__)

_READ_CHUNK = 64 * 1024

# The body is JSON whatever its label: analytics.js and analytics-kotlin say text/plain
# (a browser sends that cross-origin without a preflight), analytics-csharp sends no
# Content-Type, and RudderStack's Node SDK posts its gzip JSON as a Buffer, which its
# HTTP client (axios) labels application/x-www-form-urlencoded. Refusing that label
# loses every event: the SDK takes a 415 as not worth retrying and drops the batch.
SEGMENT_MEDIA_TYPES = frozenset({"application/json", "text/plain", "application/x-www-form-urlencoded", ""})


class SegmentJSONParser(EventJSONParser):
    """Parse JSON declared as any of SEGMENT_MEDIA_TYPES; gzip and the 1 MiB limit as for native events."""

    media_type = "*/*"  # chosen for any type; anything but SEGMENT_MEDIA_TYPES is refused with 415

    def parse(self, stream, media_type=None, parser_context=None):
        base_type = (media_type or "").split(";", 1)[0].strip().lower()
        if base_type not in SEGMENT_MEDIA_TYPES:
            raise UnsupportedMediaType(media_type)
        return super().parse(stream, media_type, parser_context)


def buffer_chunked_body(request: HttpRequest) -> None:
    """Give a chunked request body (no Content-Length) a length, so Django and DRF read it at all.

    analytics-kotlin streams its uploads with `Transfer-Encoding: chunked`. gunicorn
    de-chunks them (and says so with `wsgi.input_terminated`), but Django reads a body
    only up to CONTENT_LENGTH, which such a request lacks, so the batch would read as
    empty, be answered 400, and the SDK would drop it. Reads at most one byte past the
    1 MiB limit, which the parser then refuses with 413.
    """
    meta = request.META
    if meta.get("CONTENT_LENGTH") or "chunked" not in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        return
    if not meta.get("wsgi.input_terminated"):
        return  # the server passes the chunks through undecoded: nothing safe to read
    stream = meta["wsgi.input"]
    chunks = []
    total = 0
    try:
        while total <= conf.MAX_BODY_BYTES:
            chunk = stream.read(_READ_CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except Exception as exc:  # a broken chunk or a client gone: this runs before DRF could answer it
        logger.info("could not read a chunked body (%s): answered as an empty one", exc.__class__.__name__)
        chunks = []
    body = b"".join(chunks)[: conf.MAX_BODY_BYTES + 1]
    # Django's request reads its body from _stream, sized from CONTENT_LENGTH when built.
    request._stream = io.BytesIO(body)
    meta["CONTENT_LENGTH"] = str(len(body))
