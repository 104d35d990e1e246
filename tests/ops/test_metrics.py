"""Metrics: what /metrics counts, the database gauges and their cache, the token, and many gunicorn workers summed."""

import re
import socket
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import time_machine
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from devtools.processes import BIN, ROOT, free_port, start, stop, wait_for, wait_until_up
from events_app import metrics
from events_app.delivery import engine
from events_app.delivery.destinations import firehose
from events_app.delivery.destinations.base import RecordError
from events_app.delivery.destinations.errors import FirehoseError
from events_app.delivery.policies import worker_policy
from events_app.ingest import counting
from events_app.models import DeliveryIssue, IssueState
from events_app.ops import exposition
from tests.support.delivery import stub_put_record_batch

# What gunicorn.conf.py needs for the metrics of all workers to be summed (docs/operations.md).
GUNICORN_HOOK_LINES = """
from tracking_project.gunicorn_hooks import Logger, child_exit, on_exit, on_starting  # noqa: F401
logger_class = Logger
accesslog = "-"
"""


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    """GET /metrics through `client`; return {(sample name, sorted labels): value}."""
    response = client.get("/metrics", **headers)
    assert response.status_code == 200
    return parse(response.content.decode())


def parse(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def fresh_figures(settings):
    """Read the database figures on every scrape."""
    settings.EVENTS_METRICS_CACHE_SECONDS = 0


def test_events_are_counted_by_type_and_status(api, make_install, make_purchase):
    before = {
        key: sample("events_received_total", event_type=key[0], status=key[1])
        for key in [
            ("install", "accepted"),
            ("install", "duplicate"),
            ("purchase", "rejected"),
            ("invalid", "rejected"),
        ]
    }
    install = make_install()
    api.post("/v1/events", install, format="json")
    api.post("/v1/events", install, format="json")
    batch = [make_purchase(properties={"price": "1"}), {"event_type": "NOT A TYPE"}]
    api.post("/v1/events/batch", {"events": batch}, format="json")

    after = {key: sample("events_received_total", event_type=key[0], status=key[1]) for key in before}
    assert {key: after[key] - before[key] for key in before} == {
        ("install", "accepted"): 1,
        ("install", "duplicate"): 1,
        ("purchase", "rejected"): 1,
        ("invalid", "rejected"): 1,
    }


def test_custom_types_share_one_label():
    assert counting.event_type_label("level_up") == "custom"
    assert counting.event_type_label("session_start") == "session_start"
    assert counting.event_type_label({"not": "a string"}) == "invalid"


def test_backlog_and_oldest_pending_come_from_the_database(
    api, settings, make_install, moto_firehose, fresh_figures, client
):
    settings.EVENTS_RECORD_TARGET_BYTES = 1
    api.post("/v1/events/batch", {"events": [make_install() for _ in range(3)]}, format="json")
    with stub_put_record_batch(firehose.get_client(policy=worker_policy()), ["InvalidArgumentException", None, None]):
        engine.deliver_due()  # one refused for good (dead), two delivered
    assert DeliveryIssue.objects.get().state == IssueState.DEAD
    api.post("/v1/events/batch", {"events": [make_install() for _ in range(2)]}, format="json")  # not relayed yet

    with time_machine.travel(timezone.now() + timedelta(seconds=90)):
        figures = scrape(client)

    assert figures[("events_delivery_backlog", ())] == 2
    assert figures[("events_dead", ())] == 1
    assert 89 < figures[("events_oldest_pending_seconds", ())] < 120
    assert figures[("events_relay_lag_events", ())] == 2
    assert 89 < figures[("events_relay_lag_seconds", ())] < 120
    assert figures[("events_database_up", ())] == 1


def test_relay_lag_is_zero_once_the_relay_caught_up(api, make_install, moto_firehose, fresh_figures, client):
    api.post("/v1/events/batch", {"events": [make_install() for _ in range(3)]}, format="json")
    assert scrape(client)[("events_relay_lag_events", ())] == 3

    engine.deliver_due()

    figures = scrape(client)
    assert figures[("events_relay_lag_events", ())] == 0
    assert figures[("events_relay_lag_seconds", ())] == 0
    assert figures[("events_delivery_backlog", ())] == 0
    assert figures[("events_oldest_pending_seconds", ())] == 0


def test_database_figures_are_read_at_most_once_per_cache_time(api, make_install, settings, client, monkeypatch):
    settings.EVENTS_METRICS_CACHE_SECONDS = 5
    cache.delete_many([exposition._FIGURES_KEY, exposition._LOCK_KEY])
    reads = []
    read_figures = exposition._read_figures
    monkeypatch.setattr(exposition, "_read_figures", lambda: reads.append(1) or read_figures())
    api.post("/v1/events", make_install(), format="json")

    assert scrape(client)[("events_delivery_backlog", ())] == 1
    api.post("/v1/events", make_install(), format="json")
    for _ in range(20):
        assert scrape(client)[("events_delivery_backlog", ())] == 1  # still the cached figure
    assert len(reads) == 1
    with time_machine.travel(timezone.now() + timedelta(seconds=6)):
        assert scrape(client)[("events_delivery_backlog", ())] == 2
    assert len(reads) == 2


def test_the_token_setting_guards_metrics(settings, client, db):
    settings.EVENTS_METRICS_TOKEN = "s3cret-scrape-token"

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token").status_code == 200


def test_production_without_a_token_closes_metrics_unless_made_public(settings, client, db):
    settings.EVENTS_METRICS_TOKEN = ""
    settings.EVENTS_METRICS_PUBLIC = False  # production's default (DJANGO_DEBUG off)

    closed = client.get("/metrics")
    settings.EVENTS_METRICS_PUBLIC = True
    public = client.get("/metrics")

    assert closed.status_code == 403
    assert "EVENTS_METRICS_TOKEN" in closed.json()["detail"] and "EVENTS_METRICS_PUBLIC" in closed.json()["detail"]
    assert "events_http_request_duration_seconds" not in closed.content.decode()
    assert public.status_code == 200


def test_a_token_opens_metrics_in_production(settings, client, db):
    settings.EVENTS_METRICS_TOKEN = "s3cret-scrape-token"
    settings.EVENTS_METRICS_PUBLIC = False

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token").status_code == 200


def test_destination_calls_are_counted_and_timed_by_result():
    class Destination:
        name = "fake"

        def __init__(self, outcome):
            self.outcome = outcome

        def send(self, records, *, policy):
            if isinstance(self.outcome, Exception):
                raise self.outcome
            return self.outcome

    policy = worker_policy()

    def calls(result):
        return sample("events_destination_calls_total", destination="fake", sender="worker", result=result)

    before = {result: calls(result) for result in ("ok", "partial", "error")}
    timed_before = sample("events_destination_call_seconds_count", destination="fake", sender="worker")
    metrics.timed_send(Destination([None, None]), [], policy=policy)
    metrics.timed_send(Destination([None, RecordError("ServiceUnavailableException: slow down")]), [], policy=policy)
    with pytest.raises(FirehoseError):
        metrics.timed_send(Destination(FirehoseError("PutRecordBatch failed")), [], policy=policy)

    assert {result: calls(result) - before[result] for result in before} == {"ok": 1, "partial": 1, "error": 1}
    assert sample("events_destination_call_seconds_count", destination="fake", sender="worker") - timed_before == 3


def test_delivery_outcomes_are_counted_per_sender(api, make_install, moto_firehose):
    def outcomes(sender: str, outcome: str) -> float:
        return sample("events_delivery_outcomes_total", sender=sender, destination="firehose", outcome=outcome)

    api.post("/v1/events/batch", {"events": [make_install() for _ in range(4)]}, format="json")
    before = outcomes("relay", "delivered")
    calls_before = sample("events_destination_calls_total", destination="firehose", sender="worker", result="ok")

    engine.deliver_due()

    assert outcomes("relay", "delivered") - before == 4
    assert sample("events_destination_calls_total", destination="firehose", sender="worker", result="ok") > calls_before


def test_an_outage_counts_the_relays_events_as_deferred_not_failed(api, make_install, moto_firehose):
    def outcomes(outcome: str) -> float:
        return sample("events_delivery_outcomes_total", sender="relay", destination="firehose", outcome=outcome)

    api.post("/v1/events/batch", {"events": [make_install() for _ in range(4)]}, format="json")
    before = {outcome: outcomes(outcome) for outcome in ("deferred", "failed")}
    errors_before = sample("events_destination_calls_total", destination="firehose", sender="worker", result="partial")

    with stub_put_record_batch(firehose.get_client(policy=worker_policy()), ["ServiceUnavailableException"]):
        engine.deliver_due()

    assert {outcome: outcomes(outcome) - before[outcome] for outcome in before} == {"deferred": 4, "failed": 0}
    assert (
        sample("events_destination_calls_total", destination="firehose", sender="worker", result="partial")
        - errors_before
        == 1
    )


def test_requests_are_timed_by_route_method_and_status(api, make_install, client, db):
    def count(route, status):
        return sample("events_http_request_duration_seconds_count", route=route, method="POST", status=status)

    before = count("events", "202"), count("events", "400"), count("unmatched", "404")
    api.post("/v1/events", make_install(), format="json")
    api.post("/v1/events", {"event_type": "install"}, format="json")
    client.post("/no/such/path")

    assert (count("events", "202"), count("events", "400"), count("unmatched", "404")) == tuple(n + 1 for n in before)


def test_made_up_http_methods_add_no_series(client, db):
    for index in range(50):
        client.generic(f"BREW{index}", "/v1/events")

    methods = {
        sample.labels["method"]
        for family in text_string_to_metric_families(client.get("/metrics").content.decode())
        for sample in family.samples
        if sample.name.startswith("events_http_request_duration_seconds")
    }
    assert "other" in methods
    assert not any(method.startswith("BREW") for method in methods)


def test_the_worker_exporter_serves_its_own_figures(db):
    port = free_port()
    server = exposition.start_exporter(port, addr="127.0.0.1")
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        server.shutdown()

    assert "events_delivery_outcomes_total" in text
    assert "events_delivery_backlog" not in text  # the database gauges are the web's


def test_the_worker_exporter_binds_loopback_by_default_and_asks_for_the_token(settings, db):
    settings.EVENTS_METRICS_TOKEN = "s3cret-scrape-token"
    settings.EVENTS_METRICS_PUBLIC = False
    port = free_port()
    server = exposition.start_exporter(port)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        anonymous = requests.get(url, timeout=5)
        wrong = requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=5)
        scraped = requests.get(url, headers={"Authorization": "Bearer s3cret-scrape-token"}, timeout=5)
    finally:
        server.shutdown()
        server.server_close()

    assert server.server_address[0] == "127.0.0.1"
    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert "events_delivery_outcomes_total" not in anonymous.text + wrong.text
    assert scraped.status_code == 200 and "events_delivery_outcomes_total" in scraped.text


def test_the_delivery_worker_refuses_an_open_metrics_port_in_production(settings, db):
    settings.EVENTS_METRICS_TOKEN = ""
    settings.EVENTS_METRICS_PUBLIC = False
    settings.EVENTS_WORKER_METRICS_PORT = free_port()

    with pytest.raises(CommandError, match="EVENTS_METRICS_TOKEN"):
        call_command("deliver_events", "--once")

    with pytest.raises(OSError):  # nothing listens: the port was never opened
        socket.create_connection(("127.0.0.1", settings.EVENTS_WORKER_METRICS_PORT), timeout=1).close()


# --- Real processes --------------------------------------------------------------------


def serve_with_hooks(deployment, tmp_path: Path, *, workers: int, **env) -> tuple[subprocess.Popen, str]:
    """Start gunicorn with the shipped gunicorn.conf.py plus the operations hook lines (if not in it yet)."""
    shipped = (ROOT / "gunicorn.conf.py").read_text()
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(shipped if "gunicorn_hooks" in shipped else shipped + GUNICORN_HOOK_LINES)
    port = free_port()
    process = start(
        [
            str(BIN / "gunicorn"),
            "-c",
            str(config),
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "--no-control-socket",
            "--graceful-timeout",
            "5",
        ],
        {**deployment.env, **env},
    )
    deployment.processes.append(process)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(f"{url}/healthz", process)
    return process, url


def workers_that_counted(metrics_dir: Path) -> set[str]:
    """Return the counter files (one per process) holding a count of received events."""
    return {
        path.name
        for path in metrics_dir.glob("counter_*.db")
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path))
        if '"events_received"' in key and value > 0
    }


def scrape_url(url: str, token: str) -> dict[tuple[str, tuple], float]:
    response = requests.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    response.raise_for_status()
    return parse(response.text)


ACCEPTED_INSTALLS = ("events_received_total", (("event_type", "install"), ("status", "accepted")))


def destination_errors(figures: dict) -> float:
    return sum(
        value
        for (name, labels), value in figures.items()
        if name == "events_destination_calls_total" and ("result", "error") in labels
    )


def figures_where(url: str, token: str, *, backlog: int, what: str) -> dict[tuple[str, tuple], float]:
    """Scrape until the backlog is `backlog`; return that scrape's figures.

    Each process may serve its last figures while another refreshes them: only the
    figures of one scrape agree with each other.
    """

    def scraped() -> dict | None:
        figures = scrape_url(url, token)
        return figures if figures[("events_delivery_backlog", ())] == backlog else None

    return wait_for(scraped, what=what)


@pytest.mark.e2e
def test_metrics_of_several_gunicorn_workers_are_summed_and_follow_an_outage(deployment, moto_process, tmp_path):
    key = deployment.create_key()
    metrics_dir = tmp_path / "prometheus"
    token = "scrape-" + uuid.uuid4().hex
    _, url = serve_with_hooks(
        deployment,
        tmp_path,
        workers=3,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        EVENTS_METRICS_TOKEN=token,
        EVENTS_METRICS_CACHE_SECONDS="0.2",
    )
    # The delivery worker runs apart from the web processes and serves its own figures.
    worker_port = free_port()
    worker = deployment.worker(
        "--idle-seconds",
        "0.1",
        EVENTS_WORKER_METRICS_PORT=str(worker_port),
        EVENTS_RETRY_BASE_SECONDS="0.2",
        EVENTS_RETRY_MAX_SECONDS="0.5",
    )
    worker_url = f"http://127.0.0.1:{worker_port}"
    wait_until_up(f"{worker_url}/metrics", worker)

    assert requests.get(f"{url}/metrics", timeout=10).status_code == 401

    def post(_):
        event = {"event_type": "install", "player_id": "p1", "occurred_at": "2026-01-01T00:00:00Z"}
        return requests.post(f"{url}/v1/events", json=event, headers={"Authorization": f"Bearer {key}"}).status_code

    def send(count: int) -> None:
        # Six at a time on new connections: while one worker answers, the others take the next ones.
        with ThreadPoolExecutor(6) as pool:
            assert set(pool.map(post, range(count))) == {202}

    send(30)
    assert len(workers_that_counted(metrics_dir)) >= 2
    for _ in range(10):  # whichever worker answers, it reports every worker's counts
        assert scrape_url(url, token)[ACCEPTED_INSTALLS] == 30
    drained = figures_where(url, token, backlog=0, what="worker drained")
    assert drained[("events_relay_lag_events", ())] == 0

    moto_process.stop()  # Firehose gone: events pile up, pending
    send(10)
    wait_for(lambda: destination_errors(scrape_url(worker_url, "")) >= 1, what="a failed call in the worker's figures")
    figures = figures_where(url, token, backlog=10, what="backlog of 10")
    assert figures[("events_relay_lag_events", ())] == 10
    first = figures[("events_oldest_pending_seconds", ())]
    wait_for(
        lambda: scrape_url(url, token)[("events_oldest_pending_seconds", ())] >= first + 1,
        what="the oldest pending event ageing",
    )
    assert scrape_url(url, token)[ACCEPTED_INSTALLS] == 40

    moto_process.start()
    deployment.manage("ensure_firehose")
    figures = figures_where(url, token, backlog=0, what="backlog drained")
    assert figures[("events_oldest_pending_seconds", ())] == 0
    assert figures[("events_relay_lag_seconds", ())] == 0
    delivered = (
        "events_delivery_outcomes_total",
        (("destination", "firehose"), ("outcome", "delivered"), ("sender", "relay")),
    )
    wait_for(lambda: scrape_url(worker_url, "").get(delivered) == 40, what="40 delivered in the worker's figures")


@pytest.mark.e2e
def test_gunicorn_hooks_empty_the_metrics_directory_at_start(deployment, tmp_path):
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left by a previous run")
    process, url = serve_with_hooks(deployment, tmp_path, workers=2, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))

    assert not (metrics_dir / "counter_999999.db").exists()
    text = requests.get(f"{url}/metrics", timeout=10).text
    assert re.search(r"^events_database_up 1\.0$", text, re.MULTILINE)
    stop(process)
