"""gunicorn's access log for the local web server: the app's access lines, less those of static files.

An admin page pulls a dozen CSS, JS and image files; in `make run`'s terminal their
lines buried everything else (580 of 1,871 lines in one session). Procfile.local
passes `--logger-class devtools.weblog.LocalLogger`; production keeps every line.
"""

from django.conf import settings

from tracking_project.gunicorn_hooks import Logger


def is_static(path: str) -> bool:
    """Return True if `path` is under STATIC_URL (the files whitenoise serves)."""
    return path.startswith("/" + settings.STATIC_URL.lstrip("/"))


class LocalLogger(Logger):
    """The tracker's access log without the lines of static files; every other line as in production."""

    def access(self, resp, req, environ, request_time) -> None:
        if is_static(environ.get("PATH_INFO") or ""):
            return
        super().access(resp, req, environ, request_time)
