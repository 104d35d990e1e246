"""deploy/kubernetes/: valid for Kubernetes 1.30, hardened, complete, and running commands that exist.

The schemas are the ones kubernetes-validate bundles (requirements/dev.in): the
validation runs offline, and a test below proves it by refusing every connection.
"""

import socket
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from django.core.management import get_commands

from devtools.processes import ROOT
from events_app.ops.schedule import JOBS

FOLDER = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"
SECRET_EXAMPLE = "secret.example.yaml"
KUSTOMIZATION = "kustomization.yaml"
IMAGE = "player-event-tracker"
MANIFESTS = sorted(path for path in FOLDER.glob("*.yaml") if path.name != KUSTOMIZATION)
WORKLOAD_KINDS = {"Deployment", "Job", "CronJob"}


def documents(path: Path) -> list[dict]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def kustomization() -> dict:
    return yaml.safe_load((FOLDER / KUSTOMIZATION).read_text())


def applied() -> list[dict]:
    """Every object `kubectl apply -k` creates."""
    return [document for name in kustomization()["resources"] for document in documents(FOLDER / name)]


def the(kind: str, name: str) -> dict:
    (found,) = [d for d in applied() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def pod_spec(document: dict) -> dict:
    if document["kind"] == "CronJob":
        return document["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return document["spec"]["template"]["spec"]


def containers() -> list[tuple[str, dict, dict]]:
    """(object name, pod spec, container) of every container the kustomization runs."""
    return [
        (document["metadata"]["name"], pod_spec(document), container)
        for document in applied()
        if document["kind"] in WORKLOAD_KINDS
        for container in pod_spec(document).get("initContainers", []) + pod_spec(document)["containers"]
    ]


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_the_folder_has_the_manifests():
    assert MANIFESTS, "no manifests in deploy/kubernetes/"
    kinds = {document["kind"] for path in MANIFESTS for document in documents(path)}
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Job", "CronJob"} <= kinds
    assert {"ConfigMap", "Secret", "ServiceAccount"} <= kinds


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_every_manifest_is_valid_for_kubernetes_1_30(path, offline):
    for document in documents(path):
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            location = "/".join(str(part) for part in error.path)
            pytest.fail(f"{path.name}: {document['kind']} {document['metadata']['name']}: {location}: {error.message}")


def test_the_kustomization_lists_every_manifest_but_the_secret_example():
    listed = kustomization()["resources"]

    assert len(listed) == len(set(listed)), "a manifest is listed twice"
    assert SECRET_EXAMPLE not in listed, "applying would overwrite the real Secret with placeholders"
    assert sorted(listed) == sorted(path.name for path in MANIFESTS if path.name != SECRET_EXAMPLE)
    for name in listed:
        assert (FOLDER / name).is_file(), f"kustomization.yaml lists {name}, which does not exist"


def test_the_image_is_named_in_one_place():
    (image,) = kustomization()["images"]
    assert image["name"] == IMAGE and image["newTag"]
    for name, _, container in containers():
        assert container["image"] == IMAGE, f"{name}: the image is set in kustomization.yaml, not here"


def test_web_has_both_probes_on_port_8000():
    (container,) = pod_spec(the("Deployment", "tracker-web"))["containers"]

    assert [port["containerPort"] for port in container["ports"]] == [8000]
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        check = container[probe]["httpGet"]
        assert check["path"] == path
        assert check["port"] in (8000, "http")
        # The Host the probes send must be allowed (docs/deploy.md).
        (host,) = [header["value"] for header in check.get("httpHeaders", []) if header["name"] == "Host"]
        allowed = the("ConfigMap", "tracker-config")["data"]["DJANGO_ALLOWED_HOSTS"].split(",")
        assert host in allowed


def test_web_writes_its_metrics_under_the_writable_tmp():
    (container,) = pod_spec(the("Deployment", "tracker-web"))["containers"]
    env = {item["name"]: item.get("value") for item in container.get("env", [])}

    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()


def test_web_is_scaled_on_cpu_protected_by_a_budget_and_served():
    labels = the("Deployment", "tracker-web")["spec"]["template"]["metadata"]["labels"]
    hpa = the("HorizontalPodAutoscaler", "tracker-web")

    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tracker-web"}
    assert [metric["resource"]["name"] for metric in hpa["spec"]["metrics"]] == ["cpu"]
    assert the("PodDisruptionBudget", "tracker-web")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = the("Service", "tracker-web")
    assert service["spec"]["selector"].items() <= labels.items()
    assert [port["targetPort"] for port in service["spec"]["ports"]] in (["http"], [8000])


def test_every_container_runs_non_root_on_a_read_only_root_filesystem():
    assert containers()
    for name, spec, container in containers():
        pod = spec.get("securityContext", {})
        own = container.get("securityContext", {})
        merged = {**pod, **own}
        assert merged.get("runAsNonRoot") is True, name
        assert isinstance(merged.get("runAsUser"), int) and merged["runAsUser"] > 0, name
        assert own.get("readOnlyRootFilesystem") is True, name
        assert own.get("allowPrivilegeEscalation") is False, name
        assert own.get("capabilities", {}).get("drop") == ["ALL"], name
        assert merged.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert "resources" in container and container["resources"].get("requests"), name
        # A read-only root needs a writable /tmp: gunicorn, the metrics, tempfile.
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        (tmp,) = [mount for mount in container.get("volumeMounts", []) if mount["mountPath"] == "/tmp"]
        assert "emptyDir" in volumes[tmp["name"]], name
        assert spec.get("serviceAccountName") == "tracker", name


def test_every_container_gets_the_settings_from_the_config_map_and_the_secret():
    secret = documents(FOLDER / SECRET_EXAMPLE)[0]
    config = the("ConfigMap", "tracker-config")["data"]

    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "EVENTS_METRICS_TOKEN", "REDIS_URL"} <= secret["stringData"].keys()
    assert not secret["stringData"].keys() & config.keys()
    assert config["EVENTS_LOG_FORMAT"] == "json"
    assert {"FIREHOSE_STREAM_NAME", "FIREHOSE_S3_BUCKET", "AWS_REGION", "DJANGO_ALLOWED_HOSTS"} <= config.keys()
    for name, _, container in containers():
        sources = [(kind, ref["name"]) for source in container["envFrom"] for kind, ref in source.items()]
        assert sources == [("configMapRef", "tracker-config"), ("secretRef", secret["metadata"]["name"])], name


def test_the_service_account_has_an_iam_role():
    account = the("ServiceAccount", "tracker")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")


def test_the_delivery_worker_serves_metrics_on_its_port():
    (container,) = pod_spec(the("Deployment", "tracker-delivery"))["containers"]
    env = {item["name"]: item.get("value") for item in container.get("env", [])}

    assert container["command"] == ["python", "manage.py", "deliver_events"]
    assert [port["containerPort"] for port in container["ports"]] == [int(env["EVENTS_WORKER_METRICS_PORT"])]


def test_the_migration_job_migrates():
    (container,) = pod_spec(the("Job", "tracker-migrate"))["containers"]
    assert container["command"] == ["python", "manage.py", "migrate", "--noinput"]


def test_every_command_is_a_management_command_that_exists():
    commands = get_commands()
    job_names = {job.name for job in JOBS}
    for name, _, container in containers():
        command = container.get("command", [])
        if command[:2] != ["python", "manage.py"]:
            assert command[:1] == ["gunicorn"], name
            continue
        assert command[2] in commands, f"{name}: manage.py has no command {command[2]!r}"
        if command[2] == "run_schedule":
            assert command[3] == "--now" and command[4] in job_names, name


def test_the_cron_jobs_run_every_scheduled_job_once():
    cron_jobs = [document for document in applied() if document["kind"] == "CronJob"]
    ran = sorted(pod_spec(document)["containers"][0]["command"][4] for document in cron_jobs)

    assert ran == sorted(job.name for job in JOBS)
    for document in cron_jobs:
        assert document["spec"]["timeZone"] == "Etc/UTC"
        assert pod_spec(document)["restartPolicy"] == "Never"
