"""URLs of the v1 ingestion API."""

from django.urls import include, path

from . import views

urlpatterns = [
    path("events", views.EventView.as_view(), name="events"),
    path("events/batch", views.EventBatchView.as_view(), name="events-batch"),
    # Segment's HTTP Tracking API: /v1/batch, /v1/track, ... (events_app/segment/urls.py)
    path("", include("events_app.segment.urls")),
]
