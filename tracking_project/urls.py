"""Top-level URL map: the v1 API, health probes, metrics, OpenAPI schema and docs, and the admin."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from events_app.ops import exposition, health

urlpatterns = [
    path("v1/", include("events_app.api.urls")),
    # Segment's HTTP Tracking API: /v1/batch, /v1/track, ...
    path("v1/", include("events_app.segment.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", exposition.metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Its start-up script served as a file, not inline: the Content-Security-Policy allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]
