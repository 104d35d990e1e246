"""App configuration."""

from django.apps import AppConfig


class EventsAppConfig(AppConfig):
    name = "events_app"
    verbose_name = "Player events"
    default_auto_field = "django.db.models.BigAutoField"
