# The tracker's image: web (the default command), delivery worker and scheduler alike.
#   docker build -t player-event-tracker .
#   docker run -e DJANGO_SECRET_KEY=... -e DATABASE_URL=... -p 127.0.0.1:8000:8000 player-event-tracker
#   (a key of 50+ random characters; behind a TLS-ending proxy add -e DJANGO_SECURE_PROXY_SSL_HEADER=1)
#   docker run ... player-event-tracker python manage.py deliver_events
#   docker run ... player-event-tracker python manage.py run_schedule
# The web process runs gunicorn's sync workers: it must run behind a buffering reverse proxy
# (nginx: deploy/nginx/tracker.conf) that reads each request whole, so a slow client never
# holds a worker; never publish port 8000 to clients directly.
# docker-compose.yml runs them all with PostgreSQL, Redis, moto and that proxy; docs/deploy.md has the rest.

# Pin by digest (python:3.11-slim-bookworm@sha256:...) for reproducible production builds.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY requirements.txt /tmp/requirements.txt
# Wheels only: every runtime dependency ships one for this platform, so no compiler is needed.
# requirements.txt is the lock (`make lock`): every package, transitive ones too, with its
# hashes; pip refuses a file whose hash differs and, with --no-deps, resolves nothing else.
RUN python -m venv /venv \
    && /venv/bin/pip install --no-cache-dir --only-binary=:all: --require-hashes --no-deps -r /tmp/requirements.txt

FROM ${PYTHON_IMAGE}
ENV PATH=/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=tracking_project.settings \
    EVENTS_LOG_FORMAT=json
RUN groupadd --system --gid 10001 tracker \
    && useradd --system --uid 10001 --gid tracker --no-create-home --home-dir /app --shell /usr/sbin/nologin tracker
COPY --from=build /venv /venv
WORKDIR /app
COPY . .
# Static files (admin, API docs) collected into the image; whitenoise serves them.
# A random key for this command only: settings refuse to start without a strong one, and none
# stays in the image.
RUN DJANGO_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    python manage.py collectstatic --noinput --verbosity 0 \
    && python -m compileall -q /app
USER 10001:10001
EXPOSE 8000
# /healthz answers while the process is up. The Host header must be in DJANGO_ALLOWED_HOSTS.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen(r.Request('http://127.0.0.1:8000/healthz', headers={'Host': 'localhost'}), timeout=4)"]
# gunicorn.conf.py (in /app) gives workers, threads, timeouts and the logging and metrics hooks.
CMD ["gunicorn", "--bind", "0.0.0.0:8000"]
