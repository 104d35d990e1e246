"""gunicorn's part in operations: one metrics directory for all its workers, and safe access and error logs.

gunicorn.conf.py takes these by name (docs/operations.md, "gunicorn"):

    from tracking_project.gunicorn_hooks import Logger, child_exit, on_exit, on_starting  # noqa: F401
    logger_class = Logger
    accesslog = "-"

The master runs on_starting before it forks any worker, so every worker inherits
the same PROMETHEUS_MULTIPROC_DIR and `/metrics` sums them all. The access log
leaves out the query string and the HTTP Basic user name: gunicorn's default format
logs that user, and on the Segment endpoints it is the game's API key.

This module runs in the master, before Django is set up: it reads EVENTS_LOG_FORMAT
from the environment itself (events_app.conf.log_format documents it).
"""

import glob
import os
import shutil
import tempfile

from gunicorn.glogging import Logger as GunicornLogger

from events_app.logs import LOG_FORMATS, REQUEST_ID_HEADER, RedactKeysFilter, json_formatter, redact_keys

_PRIVATE_DIR_ATTRIBUTE = "events_private_metrics_dir"


def on_starting(server) -> None:
    """Give the workers an empty PROMETHEUS_MULTIPROC_DIR: the configured one, emptied, else a new private one."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        # Files of a previous run would be summed in as if its processes were alive.
        for name in glob.glob(os.path.join(path, "*.db")):
            os.remove(name)
    else:
        path = tempfile.mkdtemp(prefix="events-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        setattr(server, _PRIVATE_DIR_ATTRIBUTE, path)
    server.log.info("metrics of all workers in %s", path)


def child_exit(server, worker) -> None:
    """Forget a dead worker's live gauges (its counters stay summed: counters never go down)."""
    # Imported here: prometheus_client picks its value class (multiprocess or not) from
    # PROMETHEUS_MULTIPROC_DIR when first imported, which on_starting sets only later.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    """Remove the metrics directory on_starting made, if it made one."""
    path = getattr(server, _PRIVATE_DIR_ATTRIBUTE, None)
    if path:
        shutil.rmtree(path, ignore_errors=True)


def _log_format() -> str:
    log_format = os.environ.get("EVENTS_LOG_FORMAT", "text") or "text"
    if log_format not in LOG_FORMATS:
        raise RuntimeError(f"EVENTS_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    return log_format


class Logger(GunicornLogger):
    """gunicorn's logger with a fixed, safe access line; JSON lines with EVENTS_LOG_FORMAT=json.

    The access line ignores `access_log_format`: its atoms include request headers
    and the Basic-auth user, either of which could carry an API key.
    """

    def setup(self, cfg) -> None:
        super().setup(cfg)
        self._json_lines = _log_format() == "json"
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if getattr(handler, "_gunicorn", False):
                    handler.addFilter(RedactKeysFilter())  # gunicorn's errors quote request lines
                    if self._json_lines:
                        handler.setFormatter(json_formatter())

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        request_id = next((value for name, value in resp.headers if name.lower() == REQUEST_ID_HEADER.lower()), None)
        fields = {
            "remote_addr": environ.get("REMOTE_ADDR"),
            "method": environ.get("REQUEST_METHOD"),
            "path": redact_keys(environ.get("PATH_INFO") or ""),  # no query string; a key can be in the path
            "protocol": environ.get("SERVER_PROTOCOL"),
            "status": int(status),
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "user_agent": environ.get("HTTP_USER_AGENT"),
        }
        try:
            if self._json_lines:
                if request_id:
                    fields["request_id"] = request_id
                self.access_log.info("%s %s %s", fields["method"], fields["path"], status, extra=fields)
            else:
                self.access_log.info(
                    '%s %s "%s %s %s" %s %s %.1fms "%s" request_id=%s',
                    fields["remote_addr"] or "-",
                    self.now(),
                    fields["method"],
                    fields["path"],
                    fields["protocol"],
                    status,
                    fields["bytes"] if fields["bytes"] is not None else "-",
                    fields["duration_ms"],
                    fields["user_agent"] or "-",
                    request_id or "-",
                )
        except Exception:
            self.exception("could not write the access log line")
