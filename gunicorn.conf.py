"""gunicorn's settings for the tracker, read by default from the project folder (`gunicorn tracking_project.wsgi`).

Measured with bench/server_config.py on the 2-core machine (docs/delivery.md has
the figures). Every value can be overridden on the command line or in
GUNICORN_CMD_ARGS; WEB_CONCURRENCY sets the number of workers.
"""

import multiprocessing
import os

wsgi_app = "tracking_project.wsgi"
# sync workers: each accepts one connection at a time, so requests spread over all
# processes. With gthread and one thread, one process accepted every keep-alive
# connection while the others idled (all 3,104 requests of a run in one pid); more
# threads per process spread them but measured slower still, the thread holding
# SQLite's write lock waiting for the GIL behind threads parsing other requests.
# sync workers do not keep connections alive: put a load balancer or reverse proxy in
# front, as for any sync worker, so slow clients never hold a worker.
worker_class = "sync"
# One process per core plus one: while one waits on its commit (fsync) or the write
# lock, another has the core. 3 beat 2, 4 and 6 here.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() + 1))
threads = 1
backlog = 2048
# Enough for a slow client's 1 MiB body; the API never waits on the destination (the relay sends).
timeout = 30
graceful_timeout = 15


# Metrics in multiprocess mode (the master empties and forgets dead workers' files) and
# the access log as the app logs (JSON with EVENTS_LOG_FORMAT=json, no query string, no
# Basic user: a Segment client's user name is its API key). tracking_project/gunicorn_hooks.py.
from tracking_project.gunicorn_hooks import Logger, child_exit, on_exit, on_starting  # noqa: E402, F401

logger_class = Logger
accesslog = "-"
