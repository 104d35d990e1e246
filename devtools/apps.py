"""The devtools app: development-only commands, installed only in debug mode where the folder exists."""

from django.apps import AppConfig


class DevtoolsConfig(AppConfig):
    name = "devtools"
    verbose_name = "Development tools"
