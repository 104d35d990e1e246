"""Requests refused whole for their body (400, 413, 415), listed among their game's rejected events."""

from django.utils import timezone
from rest_framework.exceptions import APIException
from rest_framework.response import Response

from events_app.ingest.rejections import record_rejections

REFUSED_REQUEST_STATUSES = frozenset({400, 413, 415})


class RecordsRefusedRequests:
    """A view mixin: a request of a known game refused whole (bad envelope, body or type) is listed once.

    The view owns its request, so it records the refusal; the exception handler only
    translates errors into answers. An error that says it is `already_recorded` (the
    Segment service lists some with their message first) is not listed twice.
    """

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        api_key = getattr(self.request, "_auth", None)  # set only once the key was accepted
        if (
            api_key is not None
            and isinstance(exc, APIException)
            and response.status_code in REFUSED_REQUEST_STATUSES
            and not getattr(exc, "already_recorded", False)
        ):
            record_rejections(
                game=api_key.game,
                received_at=timezone.now(),
                rejected=[(b"", _errors(exc))],
                status_code=response.status_code,
            )
        return response


def _errors(exc: APIException) -> dict | list:
    # DRF's own answer body for the error, before any endpoint reshapes it (Segment's).
    return exc.detail if isinstance(exc.detail, (dict, list)) else {"detail": exc.detail}
