"""Errors the API answers with, declared once with their status and message."""

from rest_framework import status
from rest_framework.exceptions import APIException


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
