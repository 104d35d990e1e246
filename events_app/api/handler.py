"""The API's exception handler: DRF's answers, and a lost database answered 503 with Retry-After."""

import logging

from django.db import InterfaceError, OperationalError
from rest_framework.views import exception_handler

from events_app.api.errors import DatabaseUnavailable

logger = logging.getLogger(__name__)


def api_exception_handler(exc, context):
    """Answer DRF's errors as usual, and a lost database with 503 and Retry-After, never 500."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.warning("database unavailable: %s", exc.__class__.__name__)
        exc = DatabaseUnavailable()
    response = exception_handler(exc, context)
    if response is not None and isinstance(exc, DatabaseUnavailable):
        response["Retry-After"] = str(exc.retry_after_seconds)
    return response
