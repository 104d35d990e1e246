"""The API's exception handler: DRF's answers, and a lost database answered 503 with Retry-After."""

import logging

from django.db import InterfaceError, OperationalError
from django.utils import timezone
from rest_framework.views import exception_handler

from events_app.api.errors import DatabaseUnavailable
from events_app.ingest.rejections import record_rejections

logger = logging.getLogger(__name__)


def api_exception_handler(exc, context):
    """Answer DRF's errors as usual, and a lost database with 503 and Retry-After, never 500."""
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
    record_rejections(
        game=api_key.game,
        received_at=timezone.now(),
        rejected=[(b"", response.data)],
        status_code=response.status_code,
    )
