"""Django settings, read from the environment (every setting: docs/configuration.md)."""

import importlib.util
from datetime import timedelta
from pathlib import Path

import environ
from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)
from django.core.checks.security.base import _check_secret_key as secret_key_is_strong
from django.core.exceptions import ImproperlyConfigured

from events_app.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A clone's local settings (`manage.py dev_setup` writes .env); variables already in the
# environment win. DJANGO_ENV_FILE names another file, or none when empty (the tests).
ENV_FILE = env.str("DJANGO_ENV_FILE", default=str(BASE_DIR / ".env"))
if ENV_FILE:
    environ.Env.read_env(ENV_FILE)

DEBUG = env.bool("DJANGO_DEBUG", default=False)

# A development key exists only in debug mode; production must bring its own, and a strong
# one: Django's security.W009 rule (the deploy check's warning), enforced at start-up.
generate_secret_key = "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
if DEBUG:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="insecure-development-key-do-not-use-in-production")
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
else:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
    if not SECRET_KEY:
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off. Generate one with: {generate_secret_key}"
        )
    if not secret_key_is_strong(SECRET_KEY):
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY is too weak for production (DJANGO_DEBUG off): it needs at least "
            f"{SECRET_KEY_MIN_LENGTH} characters, at least {SECRET_KEY_MIN_UNIQUE_CHARACTERS} different ones, "
            f"and must not start with '{SECRET_KEY_INSECURE_PREFIX}'. Generate one with: {generate_secret_key}"
        )
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "events_app",
]
# The development commands (dev_setup, run_emulator) live in the devtools app: a clone in
# debug mode has it, the production image leaves the folder out and so lists no command
# it cannot run.
if DEBUG and importlib.util.find_spec("devtools") is not None:
    INSTALLED_APPS.append("devtools")

MIDDLEWARE = [
    # First: every line logged while a request runs carries its id, and the timing covers the rest.
    "events_app.logs.RequestIdMiddleware",
    "events_app.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "tracking_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "tracking_project.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Many writers on one file: WAL lets readers run beside the writer, IMMEDIATE takes
    # the write lock at BEGIN (no deadlock-prone lock upgrades), and the timeout makes
    # a busy writer wait instead of failing. synchronous=FULL fsyncs every commit so an
    # acknowledged event survives a power cut, not only a process crash.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("SQLITE_BUSY_TIMEOUT_SECONDS", default=20),
        "init_command": (
            "PRAGMA journal_mode=WAL;"
            f"PRAGMA synchronous={env.str('SQLITE_SYNCHRONOUS', default='FULL')};"
            "PRAGMA cache_size=-16384;"  # 16 MiB of pages per connection: bounded worker memory
        ),
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Parameters travel apart from the SQL instead of being quoted into it by psycopg
    # in Python, which for a 100-event insert cost more than the insert itself.
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# The API reads its own bodies (gzip, 1 MiB limit, see events_app.api.parsers); this caps
# everything else, such as admin forms.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

# Production answers plain HTTP with a redirect to https; a deployment that serves plain
# HTTP on purpose (a local compose run) turns it off.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Probes and Prometheus talk plain HTTP to the container, behind the TLS-ending balancer.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# X-Forwarded-Proto says a request came over TLS only when a proxy that ends TLS sets it and
# drops the client's own: trusted only when told so, else any client could claim https.
if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
# Once https is enforced, browsers are told to keep to it for a year (sent on https answers only).
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000 if SECURE_SSL_REDIRECT else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
# An operator's login lasts a working day, not Django's two weeks (seconds).
SESSION_COOKIE_AGE = env.int("DJANGO_SESSION_COOKIE_AGE", default=8 * 3600)
# Content-Security-Policy (django-csp) on every answer: scripts, styles, fonts and images
# only from this site (the admin, its dashboard charts and the API docs ship their own),
# no plugins, no framing, forms post here only. Inline styles stay allowed: the admin's
# templates and widgets set `style` attributes; inline scripts do not.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Admin login throttle (django-axes): after DJANGO_LOGIN_FAILURE_LIMIT wrong passwords for one
# user name from one address, that pair is refused (429) for DJANGO_LOGIN_COOLOFF_MINUTES,
# the right password included. The pair, not the address alone: behind a proxy every
# login comes from the proxy's address, and one attacker must not lock out everyone.
AUTHENTICATION_BACKENDS = [
    "events_app.admin.site.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("DJANGO_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("DJANGO_LOGIN_COOLOFF_MINUTES", default=15.0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Only failures are recorded (deleted past the cool-off at the next login or logout): no table of every login.
AXES_DISABLE_ACCESS_LOG = True
# The address the server saw (REMOTE_ADDR): a client-sent X-Forwarded-For would let it pick its own.
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_PARSER_CLASSES": ["events_app.api.parsers.EventJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["events_app.api.renderers.FastJSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "events_app.api.handler.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Player event tracker API",
    "DESCRIPTION": "Ingests player events (built-in and custom types) and forwards them to Kinesis Data Firehose.",
    "VERSION": "1.2.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The shared error bodies, the Segment calls, the probes and the tags (events_app/api/openapi_hooks.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "events_app.api.openapi_hooks.finish",
    ],
    # Swagger UI from our own static files: nothing is fetched from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Product settings: read through events_app.conf, documented there and in docs/configuration.md.
FIREHOSE_STREAM_NAME = env.str("FIREHOSE_STREAM_NAME", default="game-events")
FIREHOSE_S3_BUCKET = env.str("FIREHOSE_S3_BUCKET", default="game-events")
FIREHOSE_S3_PREFIX = env.str("FIREHOSE_S3_PREFIX", default="events/")
AWS_ENDPOINT_URL = env.str("AWS_ENDPOINT_URL", default="") or None
AWS_REGION = env.str("AWS_REGION", default="us-east-1")
EVENTS_BASE_CURRENCY = env.str("EVENTS_BASE_CURRENCY", default="USD")
# A purchase on a day without a rate (weekend, holiday) takes the latest rate at most
# this many days older (events_app.money.currency); none within it: base fields stay null.
EVENTS_FX_LOOKBACK_DAYS = env.int("EVENTS_FX_LOOKBACK_DAYS", default=7)
# How long each process reuses a looked-up rate, or its absence, per currency and day.
EVENTS_FX_CACHE_SECONDS = env.float("EVENTS_FX_CACHE_SECONDS", default=60.0)
# Purchases after the newest rate take it (local runs, whose bundled ECB history ends at its release).
EVENTS_FX_CARRY_FORWARD = env.bool("EVENTS_FX_CARRY_FORWARD", default=DEBUG)
# Accepted and without effect: forwarding belongs wholly to `deliver_events` (the relay), see docs/delivery.md.
EVENTS_INLINE_DELIVERY = env.bool("EVENTS_INLINE_DELIVERY", default=True)
# Idempotency: an event_id repeated within this many hours of its first arrival is a duplicate
# (events_app.idempotency); a purchase's transaction_id stays one for EVENTS_PURCHASE_KEY_DAYS.
EVENTS_DEDUP_WINDOW_HOURS = env.float("EVENTS_DEDUP_WINDOW_HOURS", default=168.0)
EVENTS_PURCHASE_KEY_DAYS = env.float("EVENTS_PURCHASE_KEY_DAYS", default=400.0)
# Relay shards: events are split by a hash of (game, player), one relay process sends each shard.
EVENTS_RELAY_SHARDS = env.int("EVENTS_RELAY_SHARDS", default=1)
EVENTS_RECORD_TARGET_BYTES = env.int("EVENTS_RECORD_TARGET_BYTES", default=128 * 1024)
EVENTS_MAX_ATTEMPTS = env.int("EVENTS_MAX_ATTEMPTS", default=12)
EVENTS_DELIVERY_BATCH_SIZE = env.int("EVENTS_DELIVERY_BATCH_SIZE", default=2000)
EVENTS_RETRY_BASE_SECONDS = env.float("EVENTS_RETRY_BASE_SECONDS", default=5.0)
EVENTS_RETRY_MAX_SECONDS = env.float("EVENTS_RETRY_MAX_SECONDS", default=3600.0)
EVENTS_CLAIM_LEASE_SECONDS = env.float("EVENTS_CLAIM_LEASE_SECONDS", default=60.0)
# Where events go (events_app.delivery.destinations.base): "firehose", "kinesis" or a dotted class path.
EVENTS_DESTINATION = env.str("EVENTS_DESTINATION", default="firehose")
KINESIS_STREAM_NAME = env.str("KINESIS_STREAM_NAME", default="game-events")
# How long each process reuses a compiled custom-event schema before checking for a newer version.
EVENTS_SCHEMA_CACHE_SECONDS = env.float("EVENTS_SCHEMA_CACHE_SECONDS", default=2.0)
EVENTS_REJECTIONS_KEPT = env.int("EVENTS_REJECTIONS_KEPT", default=10_000)
# Rejected bodies hold what clients sent (personal data too): kept days, and a few per request.
EVENTS_REJECTIONS_MAX_AGE_DAYS = env.float("EVENTS_REJECTIONS_MAX_AGE_DAYS", default=7.0)
EVENTS_REJECTIONS_PER_REQUEST = env.int("EVENTS_REJECTIONS_PER_REQUEST", default=20)
# Requests per API key per window ("2000/s", "100000/m"); "0" turns the limit off.
EVENTS_RATE_LIMIT = env.str("EVENTS_RATE_LIMIT", default="2000/s")
# Failed key lookups per client address ("100/m"; "0" = off); beyond, its unknown keys answer 429.
EVENTS_AUTH_FAILURE_RATE = env.str("EVENTS_AUTH_FAILURE_RATE", default="100/m")
# How long one call to Redis may take: a cache that hangs must not hold requests (events_app/sharedcache.py).
EVENTS_CACHE_TIMEOUT_SECONDS = env.float("EVENTS_CACHE_TIMEOUT_SECONDS", default=0.25)

# Rate-limit counters and the Firehose circuit breaker live in the cache: Redis
# shares them across processes and machines; without it each process keeps its own.
REDIS_URL = env.str("REDIS_URL", default="")
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "tracker",
            "OPTIONS": {
                "socket_connect_timeout": EVENTS_CACHE_TIMEOUT_SECONDS,
                "socket_timeout": EVENTS_CACHE_TIMEOUT_SECONDS,
            },
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# Log lines as text or one JSON object per line, each with its request's id (events_app/logs.py).
EVENTS_LOG_FORMAT = env.str("EVENTS_LOG_FORMAT", default="text")
try:
    LOGGING = logging_config(log_format=EVENTS_LOG_FORMAT, level=env.str("EVENTS_LOG_LEVEL", default="INFO"))
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from exc

# Operations (events_app/conf.py documents each; docs/operations.md has the alerts and the schedule).
# /metrics and the worker's port: a bearer token to ask for; without one, production serves
# them only when EVENTS_METRICS_PUBLIC says so. How long the database figures are reused.
EVENTS_METRICS_TOKEN = env.str("EVENTS_METRICS_TOKEN", default="")
EVENTS_METRICS_PUBLIC = env.bool("EVENTS_METRICS_PUBLIC", default=DEBUG)
EVENTS_METRICS_CACHE_SECONDS = env.float("EVENTS_METRICS_CACHE_SECONDS", default=5.0)
EVENTS_WORKER_METRICS_PORT = env.int("EVENTS_WORKER_METRICS_PORT", default=0)
EVENTS_WORKER_METRICS_ADDR = env.str("EVENTS_WORKER_METRICS_ADDR", default="127.0.0.1")
# Retention (purge_events): delivered events, then the other tables by age.
EVENTS_RETENTION_DAYS = env.float("EVENTS_RETENTION_DAYS", default=30.0)
EVENTS_KPI_RETENTION_DAYS = env.float("EVENTS_KPI_RETENTION_DAYS", default=800.0)
EVENTS_CALL_RETENTION_DAYS = env.float("EVENTS_CALL_RETENTION_DAYS", default=EVENTS_RETENTION_DAYS)
EVENTS_DUPLICATE_TALLY_RETENTION_DAYS = env.float(
    "EVENTS_DUPLICATE_TALLY_RETENTION_DAYS", default=EVENTS_RETENTION_DAYS
)
# The relays' per-hour counts (the dashboard's charts, a game's types, the list's filters).
EVENTS_HOUR_COUNT_RETENTION_DAYS = env.float("EVENTS_HOUR_COUNT_RETENTION_DAYS", default=90.0)
# When the admin's pipeline panel turns amber or red (events_app/admin/outage.py): the oldest
# undelivered event's age in seconds, the failed events, and the hours of its delivery chart.
EVENTS_ALERT_AMBER_AGE_SECONDS = env.float("EVENTS_ALERT_AMBER_AGE_SECONDS", default=60.0)
EVENTS_ALERT_RED_AGE_SECONDS = env.float("EVENTS_ALERT_RED_AGE_SECONDS", default=600.0)
EVENTS_ALERT_AMBER_FAILED = env.int("EVENTS_ALERT_AMBER_FAILED", default=1)
EVENTS_ALERT_RED_FAILED = env.int("EVENTS_ALERT_RED_FAILED", default=100)
EVENTS_ALERT_CHART_HOURS = env.int("EVENTS_ALERT_CHART_HOURS", default=3)
EVENTS_REJECTION_RETENTION_DAYS = env.float("EVENTS_REJECTION_RETENTION_DAYS", default=EVENTS_RETENTION_DAYS)
EVENTS_PURGE_BATCH_SIZE = env.int("EVENTS_PURGE_BATCH_SIZE", default=200)
EVENTS_PURGE_PAUSE_FACTOR = env.float("EVENTS_PURGE_PAUSE_FACTOR", default=1.0)
# The scheduler's rates job (events_app/ops/schedule.py) imports this file every weekday.
EVENTS_RATES_URL = env.str("EVENTS_RATES_URL", default="https://www.ecb.europa.eu/stats/eurofxref/eurofxref-hist.zip")

# Errors to Sentry only when SENTRY_DSN is set; no request body, header value, key or
# local variable is sent (events_app/ops/sentry.py).
SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    from events_app.ops.sentry import init_sentry

    init_sentry(
        dsn=SENTRY_DSN,
        environment=env.str("SENTRY_ENVIRONMENT", default="") or None,
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
    )
