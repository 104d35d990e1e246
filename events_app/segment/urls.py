"""URLs of the Segment-compatible endpoints, mounted under /v1/ beside the native ones."""

from django.urls import path

from events_app.segment.views import SegmentBatchView, SegmentCallView, SegmentSettingsView

# Each call's endpoint, and the one-letter path analytics.js posts it to (the first
# letter of its type). The aliases are left out of the OpenAPI schema: same views.
_CALLS = {"track": "t", "identify": "i", "page": "p", "screen": "s", "group": "g", "alias": "a"}

urlpatterns = [
    path("batch", SegmentBatchView.as_view(), name="segment-batch"),
    # The mobile SDKs (Swift, Kotlin, C#) and analytics.js's batching post to /b; older
    # libraries to /import.
    path("b", SegmentBatchView.as_view(schema=None), name="segment-b"),
    path("import", SegmentBatchView.as_view(schema=None), name="segment-import"),
    *[path(call, SegmentCallView.as_view(call_type=call), name=f"segment-{call}") for call in _CALLS],
    *[
        path(letter, SegmentCallView.as_view(call_type=call, schema=None), name=f"segment-{letter}")
        for call, letter in _CALLS.items()
    ],
    path("projects/<str:write_key>/settings", SegmentSettingsView.as_view(), name="segment-settings"),
]
