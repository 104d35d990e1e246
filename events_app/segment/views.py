"""HTTP views of Segment's Tracking API: thin shells over the Segment service, plus the SDK settings."""

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from events_app.api.refusals import RecordsRefusedRequests
from events_app.api.throttling import ApiKeyRateThrottle
from events_app.segment import (
    mapping,
    openapi,  # noqa: F401  (registers the OpenAPI write-key schemes)
)
from events_app.segment.auth import PathWriteKeyAuthentication, WriteKeyAuthentication
from events_app.segment.cdn import sdk_settings
from events_app.segment.cors import allow_any_origin, preflight_response
from events_app.segment.errors import BatchTooLarge, MalformedBatch, MalformedCall, segment_exception_handler
from events_app.segment.parsers import SegmentJSONParser, buffer_chunked_body
from events_app.segment.service import ingest_segment_call, ingest_segment_calls

SUCCESS = {"success": True}

_ERROR = inline_serializer(
    "SegmentError",
    {"success": serializers.BooleanField(), "code": serializers.CharField(), "message": serializers.CharField()},
)
_SUCCESS = inline_serializer("SegmentSuccess", {"success": serializers.BooleanField()})
_ANSWERS = {
    200: OpenApiResponse(_SUCCESS, description="The valid messages are stored; invalid ones are listed in the admin."),
    400: OpenApiResponse(_ERROR, description="Malformed body, or over Segment's size limits."),
    401: OpenApiResponse(_ERROR, description="Missing, unknown or revoked write key."),
    413: OpenApiResponse(_ERROR, description="Body over 1 MiB (after decompression)."),
    415: OpenApiResponse(
        _ERROR,
        description="Declared as neither application/json, text/plain, application/x-www-form-urlencoded "
        "nor untyped, or encoded other than gzip.",
    ),
    429: OpenApiResponse(
        _ERROR,
        description="Rate limit of the key exceeded, or too many unknown keys from this address; see Retry-After.",
    ),
    503: OpenApiResponse(_ERROR, description="Database unavailable; see Retry-After."),
}


class HasWriteKey(BasePermission):
    """Allow calls that carried a valid write key, and browsers' preflight requests."""

    def has_permission(self, request, view) -> bool:
        return request.method == "OPTIONS" or request.auth is not None


class _SegmentAnswers(RecordsRefusedRequests, APIView):
    """Errors in Segment's body, and answers any web page may read."""

    def get_exception_handler(self):
        return segment_exception_handler

    def finalize_response(self, request: Request, response: Response, *args, **kwargs) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        allow_any_origin(response)
        return response


class _SegmentAPIView(_SegmentAnswers):
    authentication_classes = [WriteKeyAuthentication]
    permission_classes = [HasWriteKey]
    throttle_classes = [ApiKeyRateThrottle]
    parser_classes = [SegmentJSONParser]

    def initialize_request(self, request: HttpRequest, *args, **kwargs) -> Request:
        buffer_chunked_body(request)
        return super().initialize_request(request, *args, **kwargs)

    def options(self, request: Request, *args, **kwargs) -> Response:
        """Answer a browser's CORS preflight (RudderStack's JS SDK, analytics.js with custom headers)."""
        return preflight_response(request.headers.get("Access-Control-Request-Headers", ""))


class SegmentBatchView(_SegmentAPIView):
    """POST /v1/batch (also /v1/b, /v1/import): Segment's batch of calls."""

    @extend_schema(
        request={"application/json": OpenApiTypes.OBJECT},
        responses=_ANSWERS,
        description='Segment\'s batch: `{"batch": [messages], "sentAt", "context", "writeKey"}` (docs/segment.md).',
    )
    def post(self, request: Request) -> Response:
        received_at = timezone.now()
        body = request.data
        if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
            raise MalformedBatch()
        context = body.get("context")
        if context is not None and not isinstance(context, dict):
            raise MalformedBatch('"context" of a batch must be an object.')
        # Checked once here: every message of the batch merges it into its own context.
        context_size = mapping.json_size(context) if context else 0
        if context_size is not None and context_size > mapping.MAX_CONTEXT_BYTES:
            raise MalformedBatch(
                f'"context" of the batch is {context_size} bytes as JSON; at most {mapping.MAX_CONTEXT_BYTES}.'
            )
        size = mapping.json_size(body)
        if size is None:
            raise MalformedBatch(mapping.NESTED_TOO_DEEPLY)
        if size > mapping.MAX_BATCH_BYTES:
            raise BatchTooLarge()
        ingest_segment_calls(
            api_key=request.auth,
            messages=body["batch"],
            received_at=received_at,
            envelope=mapping.Envelope(sent_at=body.get("sentAt"), context=context or {}),
        )
        return Response(SUCCESS)

    @extend_schema(exclude=True)
    def put(self, request: Request) -> Response:
        """Take PUT as POST: Unity's sample HTTP client for analytics-csharp uploads with PUT."""
        return self.post(request)


class SegmentCallView(_SegmentAPIView):
    """POST /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group, /v1/alias (and /v1/t, /v1/i...): one call."""

    call_type: str = ""

    @extend_schema(
        request={"application/json": OpenApiTypes.OBJECT},
        responses=_ANSWERS,
        description="One Segment call of this endpoint's type (docs/segment.md).",
    )
    def post(self, request: Request) -> Response:
        received_at = timezone.now()
        if not isinstance(request.data, dict):
            raise MalformedCall()
        ingest_segment_call(
            api_key=request.auth, message=request.data, call_type=self.call_type, received_at=received_at
        )
        return Response(SUCCESS)

    @extend_schema(exclude=True)
    def put(self, request: Request) -> Response:
        """Take PUT as POST, as the batch endpoint does."""
        return self.post(request)


class SegmentSettingsView(_SegmentAnswers):
    """GET /v1/projects/{writeKey}/settings: what Segment's SDKs fetch at start-up, pointing them at this host."""

    authentication_classes = [PathWriteKeyAuthentication]
    throttle_classes = [ApiKeyRateThrottle]

    @extend_schema(
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="Settings naming this host as apiHost."),
            401: OpenApiResponse(_ERROR, description="Unknown or revoked write key."),
            429: OpenApiResponse(
                _ERROR,
                description="Rate limit of the key exceeded, or too many unknown keys from this address.",
            ),
            503: OpenApiResponse(_ERROR, description="Database unavailable; see Retry-After."),
        },
    )
    def get(self, request: Request, write_key: str) -> Response:
        # The path of the Segment endpoints as this request reached the server, so a
        # deployment under a prefix or behind a proxy names itself correctly.
        api_path = reverse("segment-batch").rsplit("/", 1)[0]
        return Response(
            sdk_settings(
                write_key=write_key,
                api_host=request.get_host() + api_path,
                protocol="https" if request.is_secure() else "http",
            )
        )
