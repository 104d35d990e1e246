"""HTTP views of the v1 API: thin shells over ingestion."""

from django.utils import timezone
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from events_app import conf
from events_app.api import openapi, openapi_events  # noqa: F401  (openapi registers the OpenAPI extensions)
from events_app.api.authentication import ApiKeyAuthentication
from events_app.api.refusals import RecordsRefusedRequests
from events_app.api.throttling import ApiKeyRateThrottle
from events_app.ingest.rejections import record_rejections
from events_app.ingest.serializers import BatchSerializer
from events_app.ingest.service import REJECTED, ingest_events


class HasApiKey(BasePermission):
    """Allow requests that carried a valid API key."""

    def has_permission(self, request, view) -> bool:
        return request.auth is not None


class _EventAPIView(RecordsRefusedRequests, APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasApiKey]
    throttle_classes = [ApiKeyRateThrottle]


class EventView(_EventAPIView):
    """POST /v1/events: one event."""

    max_body_bytes = conf.MAX_EVENT_BODY_BYTES  # one event is at most 32 KiB: a bigger body is refused unread

    @openapi_events.single_event
    def post(self, request: Request) -> Response:
        received_at = timezone.now()
        outcome = ingest_events(api_key=request.auth, raw_events=[request.data], received_at=received_at)
        record_rejections(game=request.auth.game, received_at=received_at, rejected=outcome.rejections)
        result = outcome.results[0]
        if result["status"] == REJECTED:
            return Response(result["errors"], status=status.HTTP_400_BAD_REQUEST)
        # A suppressed event has no event_id of ours (nothing was stored), only the client's if it sent one.
        answer = {key: result[key] for key in ("event_id", "status") if key in result}
        return Response(answer, status=status.HTTP_202_ACCEPTED)


class EventBatchView(_EventAPIView):
    """POST /v1/events/batch: up to 500 events, each accepted or rejected on its own."""

    @openapi_events.event_batch
    def post(self, request: Request) -> Response:
        received_at = timezone.now()
        envelope = BatchSerializer(data=request.data)
        if not envelope.is_valid():
            raise ValidationError(envelope.errors)
        outcome = ingest_events(
            api_key=request.auth,
            raw_events=envelope.validated_data["events"],
            received_at=received_at,
            batch_sent_at=envelope.validated_data.get("sent_at"),
        )
        record_rejections(game=request.auth.game, received_at=received_at, rejected=outcome.rejections)
        return Response(
            {
                "accepted": outcome.accepted,
                "duplicates": outcome.duplicates,
                "rejected": outcome.rejected,
                "suppressed": outcome.suppressed,
                "results": outcome.results,
            }
        )
