"""App configuration: after `migrate`, the log's partitions for the days ahead exist (PostgreSQL)."""

from django.apps import AppConfig
from django.db import DEFAULT_DB_ALIAS
from django.db.models.signals import post_migrate


class EventsAppConfig(AppConfig):
    name = "events_app"
    verbose_name = "Player events"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Here, not at the top: logstore imports the models, which need the app registry ready.
        from events_app import logstore

        def ensure_partitions(sender, using=DEFAULT_DB_ALIAS, **kwargs) -> None:
            if using == DEFAULT_DB_ALIAS:
                logstore.ensure_partitions()

        post_migrate.connect(ensure_partitions, sender=self, weak=False)
