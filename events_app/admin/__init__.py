"""Django admin, the operator console: one module per concern, each registering the admins of its models."""

from django.contrib import admin
from django.urls import reverse_lazy

from . import events, games, keys, privacy, rates, rejections, schemas
from .events import EventAdmin
from .games import GameAdmin
from .keys import ApiKeyAdmin
from .privacy import SuppressedPlayerAdmin
from .rates import ExchangeRateAdmin
from .rejections import RejectedEventAdmin
from .schemas import EventSchemaAdmin

__all__ = [
    "ApiKeyAdmin",
    "EventAdmin",
    "EventSchemaAdmin",
    "ExchangeRateAdmin",
    "GameAdmin",
    "RejectedEventAdmin",
    "SuppressedPlayerAdmin",
    "events",
    "games",
    "keys",
    "privacy",
    "rates",
    "rejections",
    "schemas",
]

# The admin index links the dashboard (the template adds one module above the app list).
admin.site.index_template = "admin/events_app/index.html"
# "View site" goes to the API's browsable docs: the service has no public pages, and "/" is no page.
admin.site.site_url = reverse_lazy("api-docs")
