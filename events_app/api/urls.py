"""URLs of the v1 ingestion API."""

from django.urls import path

from events_app.api import views

urlpatterns = [
    path("events", views.EventView.as_view(), name="events"),
    path("events/batch", views.EventBatchView.as_view(), name="events-batch"),
]
