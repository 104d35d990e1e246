"""Errors the API and the delivery code raise, declared once with their status and message."""

import logging

from django.db import InterfaceError, OperationalError
from rest_framework import status
from rest_framework.exceptions import APIException

logger = logging.getLogger(__name__)


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is over 1 MiB (after decompression)."
    default_code = "body_too_large"

    def __init__(self, limit: int | None = None):
        super().__init__(None if limit is None else body_too_large_message(limit))


def body_too_large_message(limit: int) -> str:
    """Return the 413 message naming the endpoint's limit, e.g. "over 64 KiB (65536 bytes)"."""
    size = f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit / 1024:g} KiB"
    return f"Request body is over {size} ({limit} bytes), this endpoint's limit (after decompression too)."


class UnsupportedContentEncoding(APIException):
    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    default_detail = "Unsupported Content-Encoding; use gzip or none."
    default_code = "unsupported_content_encoding"

    def __init__(self, encoding: str):
        super().__init__(f'Unsupported Content-Encoding "{encoding}"; use gzip or none.')


class DatabaseUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Database unavailable; retry later."
    default_code = "database_unavailable"
    retry_after_seconds = 2


class DestinationError(Exception):
    """A call to the destination failed as a whole; the cause is chained.

    `permanent` when the destination refused the request itself (retrying cannot help).
    """

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class FirehoseError(DestinationError):
    """A PutRecordBatch call failed as a whole."""


class KinesisError(DestinationError):
    """A Kinesis Data Streams PutRecords call failed as a whole."""


def api_exception_handler(exc, context):
    """Answer DRF's errors as usual, and a lost database with 503 and Retry-After, never 500."""
    # Imported here: rest_framework.views loads the parser classes, which import this module.
    from rest_framework.views import exception_handler

    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.warning("database unavailable: %s", exc.__class__.__name__)
        exc = DatabaseUnavailable()
    response = exception_handler(exc, context)
    if response is not None and isinstance(exc, DatabaseUnavailable):
        response["Retry-After"] = str(exc.retry_after_seconds)
    elif response is not None and response.status_code in (400, 413, 415):
        _record_request_rejection(context.get("request"), response)
    return response


def _record_request_rejection(request, response) -> None:
    """Keep a whole refused request (bad envelope, body, type) of a known game among the rejections."""
    api_key = getattr(request, "_auth", None)
    if api_key is None:
        return
    from django.utils import timezone

    from .rejections import record_rejections

    record_rejections(
        game=api_key.game,
        received_at=timezone.now(),
        rejected=[(b"", response.data)],
        status_code=response.status_code,
    )
