"""Django admin, the operator console: one module per concern, each registering the admins of its models."""

from django.contrib import admin
from django.urls import reverse_lazy

from events_app.admin import events, games, keys, privacy, rates, rejections, schemas
from events_app.admin.events import EventAdmin
from events_app.admin.games import GameAdmin
from events_app.admin.keys import ApiKeyAdmin
from events_app.admin.privacy import SuppressedPlayerAdmin
from events_app.admin.rates import ExchangeRateAdmin
from events_app.admin.rejections import RejectedEventAdmin
from events_app.admin.schemas import EventSchemaAdmin

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
# The header and the tab titles name the product, not "Django administration".
admin.site.site_header = "Player event tracker"
admin.site.site_title = "Player event tracker"
admin.site.index_title = "Operator console"
# "View site" goes to the API's browsable docs: the service has no public pages, and "/" is no page.
admin.site.site_url = reverse_lazy("api-docs")
