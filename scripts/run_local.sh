#!/usr/bin/env bash
# Run the whole tracker on this machine: database, AWS emulator (moto), delivery
# worker and web server. Started by `make run`, which builds .venv and sets
# DJANGO_DEBUG=1, AWS_ENDPOINT_URL and the emulator's fake credentials.
# Ctrl-C (or SIGTERM) stops everything this script started.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly PY=.venv/bin/python
readonly LOCAL_DIR=.local
readonly KEY_FILE="$LOCAL_DIR/dev_api_key"
readonly MOTO_LOG="$LOCAL_DIR/moto.log"
readonly GAME_SLUG=demo-game
readonly WEB_ADDR=127.0.0.1:8000
readonly WEB_URL="http://$WEB_ADDR"
readonly START_TIMEOUT_SECONDS=30
readonly STOP_TIMEOUT_SECONDS=15

# PIDs of what this script started; only these are stopped on exit.
moto_pid=""
worker_pid=""
web_pid=""

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

manage() { "$PY" manage.py "$@"; }

# Exit 0 if an HTTP server answers at $1, whatever the status: we only need to know
# that something is there. Proxies are bypassed, the target is on loopback.
http_answers() {
    "$PY" - "$1" <<'PYTHON'
import sys
import urllib.error
import urllib.request

opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    opener.open(sys.argv[1], timeout=1).close()
except urllib.error.HTTPError:
    pass
except Exception:
    sys.exit(1)
PYTHON
}

# Poll until $1 answers; fail if process $2 (when given) exits first or the timeout passes.
wait_for_http() {
    local url="$1" pid="${2:-}" what="$3"
    local deadline=$((SECONDS + START_TIMEOUT_SECONDS))
    until http_answers "$url"; do
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            die "$what exited before answering at $url"
        fi
        if ((SECONDS >= deadline)); then
            die "$what did not answer at $url within ${START_TIMEOUT_SECONDS}s"
        fi
        sleep 0.2
    done
}

# SIGTERM, then SIGKILL if the process is still there after the grace period.
stop_process() {
    local pid="$1" what="$2"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    log "stopping $what (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT_SECONDS))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Web first (no new events), then the worker (it may finish a batch against the
# emulator), then the emulator.
cleanup() {
    trap - EXIT INT TERM
    stop_process "$web_pid" "web server"
    stop_process "$worker_pid" "delivery worker"
    stop_process "$moto_pid" "moto server"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

check_prerequisites() {
    [[ -x "$PY" ]] || die "no virtualenv in .venv: start with \`make run\`"
    if http_answers "$WEB_URL/"; then
        die "something already answers on $WEB_ADDR (another \`make run\`?); stop it first"
    fi
    mkdir -p "$LOCAL_DIR"
    chmod 700 "$LOCAL_DIR"
}

prepare_database() {
    log "applying migrations"
    manage migrate --noinput
}

# Start moto on the endpoint's loopback port unless an emulator already answers there.
start_emulator() {
    if [[ -z "${AWS_ENDPOINT_URL:-}" ]]; then
        log "AWS_ENDPOINT_URL is empty: using real AWS with your own credentials, no emulator"
        return 0
    fi
    # boto3 honours HTTP(S)_PROXY; a loopback emulator must not go through a proxy.
    export NO_PROXY="${NO_PROXY:+$NO_PROXY,}127.0.0.1,localhost"
    if http_answers "$AWS_ENDPOINT_URL"; then
        log "using the AWS emulator already answering at $AWS_ENDPOINT_URL"
    else
        local host port
        if [[ "$AWS_ENDPOINT_URL" =~ ^http://(127\.0\.0\.1|localhost)(:([0-9]+))?/?$ ]]; then
            host="127.0.0.1"
            port="${BASH_REMATCH[3]:-80}"
        else
            die "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL does not answer, and only a loopback http:// endpoint can be started here"
        fi
        log "starting moto server on $host:$port (log: $MOTO_LOG)"
        .venv/bin/moto_server -H "$host" -p "$port" >"$MOTO_LOG" 2>&1 &
        moto_pid=$!
        wait_for_http "$AWS_ENDPOINT_URL" "$moto_pid" "moto server (see $MOTO_LOG)"
    fi
    manage ensure_firehose
}

# Exit 0 if the key in $KEY_FILE is still an active key of the dev game in this database
# (the database may have been reset since it was written).
dev_key_works() {
    [[ -s "$KEY_FILE" ]] || return 1
    # The key goes through the environment, not argv, so `ps` does not show it.
    DEV_API_KEY="$(<"$KEY_FILE")" DEV_GAME_SLUG="$GAME_SLUG" manage shell --no-imports -c '
import os, sys
from events_app.models import ApiKey
key = os.environ["DEV_API_KEY"].strip()
active = ApiKey.objects.filter(
    key_hash=ApiKey.hash(key), revoked_at__isnull=True, game__slug=os.environ["DEV_GAME_SLUG"]
).exists()
sys.exit(0 if active else 3)
' >/dev/null
}

ensure_dev_key() {
    if dev_key_works; then
        log "keeping the development API key in $KEY_FILE"
        return 0
    fi
    log "creating a development API key for game $GAME_SLUG"
    local key
    key="$(manage create_api_key "$GAME_SLUG" --name dev | tail -n 1)"
    [[ -n "$key" ]] || die "create_api_key printed no key"
    # umask: the file is never readable by others, not even for a moment.
    (umask 077 && printf '%s\n' "$key" >"$KEY_FILE.tmp")
    mv -f "$KEY_FILE.tmp" "$KEY_FILE"
    chmod 600 "$KEY_FILE"
}

# Sets admin_login for the banner.
ensure_superuser() {
    local state
    state="$(manage shell --no-imports -c '
from django.conf import settings
from django.contrib.auth import get_user_model
supers = get_user_model().objects.filter(is_superuser=True, is_active=True).order_by("pk")
dev = supers.filter(username="admin").first()
if dev is not None and dev.check_password("admin"):
    print("dev")
elif supers.exists():
    print(" ".join(user.get_username() for user in supers))
elif not settings.DEBUG:
    print("-nodebug")
else:
    print("-none")
' | tail -n 1)"
    case "$state" in
    dev) admin_login="admin / admin" ;;
    -none)
        # admin/admin is for a loopback development server only (DEBUG is on).
        DJANGO_SUPERUSER_PASSWORD="admin" manage createsuperuser --noinput \
            --username admin --email admin@localhost >/dev/null
        log "created the superuser admin (password: admin) for the local admin"
        admin_login="admin / admin"
        ;;
    -nodebug) admin_login="no superuser (DEBUG is off: none created; use manage.py createsuperuser)" ;;
    *) admin_login="your superuser ($state)" ;;
    esac
}

collect_static() {
    # gunicorn does not serve static files; whitenoise serves the admin's from STATIC_ROOT.
    manage collectstatic --noinput -v 0
}

start_worker() {
    log "starting the delivery worker"
    # Not through manage(): a backgrounded function runs in a subshell, and $! would
    # be that subshell instead of the worker that must receive SIGTERM.
    "$PY" manage.py deliver_events &
    worker_pid=$!
}

start_web() {
    log "starting gunicorn on $WEB_ADDR"
    # Worker class, workers, threads and keep-alive come from gunicorn.conf.py.
    .venv/bin/gunicorn -b "$WEB_ADDR" --access-logfile - --no-control-socket &
    web_pid=$!
    wait_for_http "$WEB_URL/healthz" "$web_pid" "gunicorn"
}

print_banner() {
    local emulator="real AWS (no emulator)"
    if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
        emulator="$AWS_ENDPOINT_URL, bucket ${FIREHOSE_S3_BUCKET:-game-events}"
        [[ -n "$moto_pid" ]] && emulator+=" (moto, log: $MOTO_LOG)"
    fi
    cat <<BANNER

------------------------------------------------------------------------
 Player event tracker is running. Ctrl-C stops it all.
   API       $WEB_URL/v1/events  and  $WEB_URL/v1/events/batch
   API docs  $WEB_URL/api/docs/
   Admin     $WEB_URL/admin/   login: $admin_login
   Dev key   $KEY_FILE  (game $GAME_SLUG)
   AWS       $emulator
 try: .venv/bin/python -m sdk.client
------------------------------------------------------------------------

BANNER
}

# Watch the web server, the worker and our emulator; if one exits, stop the rest.
# A short poll, not `wait -n`: on Ctrl-C the children exit by themselves too, and bash
# then takes the SIGINT as handled by the child and skips our trap.
supervise() {
    local -A names=([$web_pid]="web server" [$worker_pid]="delivery worker")
    [[ -n "$moto_pid" ]] && names[$moto_pid]="moto server"
    local pid
    while true; do
        for pid in "${!names[@]}"; do
            if ! kill -0 "$pid" 2>/dev/null; then
                printf 'error: the %s exited; stopping the rest\n' "${names[$pid]}" >&2
                exit 1
            fi
        done
        # `wait` on a background sleep returns as soon as a trapped signal arrives.
        sleep 0.5 &
        wait "$!" || true
    done
}

main() {
    check_prerequisites
    prepare_database
    start_emulator
    ensure_dev_key
    ensure_superuser
    collect_static
    start_worker
    start_web
    print_banner
    supervise
}

main "$@"
