"""Errors of the Segment endpoints, declared with the status Segment answers them with, and their answer body."""

from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response

from events_app.api.handler import api_exception_handler
from events_app.segment import mapping


class MalformedBatch(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = 'Expected a JSON object with "batch": a list of Segment messages.'
    default_code = "malformed_batch"


class MalformedCall(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Expected a JSON object: one Segment message."
    default_code = "malformed_call"


class BatchTooLarge(APIException):
    status_code = status.HTTP_400_BAD_REQUEST  # Segment's answer to a batch over its limit
    default_detail = f"Batch is over {mapping.MAX_BATCH_BYTES} bytes as JSON (Segment's 500 KB)."
    default_code = "batch_too_large"


class MessageTooLarge(APIException):
    """A single call over 32 KiB: the service has listed it among the rejected events already."""

    status_code = status.HTTP_400_BAD_REQUEST  # Segment's answer to a call over its limit
    default_code = "message_too_large"
    already_recorded = True

    def __init__(self, size: int):
        super().__init__(mapping.too_large_message(size))


def segment_exception_handler(exc: Exception, context: dict) -> Response | None:
    """Answer errors with the project's statuses and headers, in the body Segment's clients read.

    Segment's libraries log `code` and `message` of a refused request (analytics-python
    raises them as its APIError).
    """
    response = api_exception_handler(exc, context)
    if response is not None:
        response.data = {"success": False, "code": _code(exc, response), "message": _message(response.data)}
    return response


def _code(exc: Exception, response: Response) -> str:
    codes = exc.get_codes() if isinstance(exc, APIException) else None
    if isinstance(codes, str):
        return codes
    return "database_unavailable" if response.status_code == status.HTTP_503_SERVICE_UNAVAILABLE else "error"


def _message(data: object) -> str:
    if isinstance(data, dict) and "detail" in data:
        return str(data["detail"])
    return str(data)
