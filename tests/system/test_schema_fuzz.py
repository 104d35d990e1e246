"""schemathesis against /api/schema/ over real HTTP: no 5xx, every answer fits the schema, accepted events arrive."""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from devtools.processes import MotoServer, wait_for
from tests.support.deployments import App

pytestmark = pytest.mark.e2e

# What the contract promises of every answer. Not "schema-valid data is accepted":
# the schema cannot express cross-field rules (purchase properties, clock skew), so
# the API rightly refuses some bodies it allows.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def served_api(tmp_path_factory):
    """Serve the app on a fresh SQLite file with its delivery worker, and an API key; yield (app, URL, key)."""
    moto = MotoServer()
    moto.start()
    app = App(
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tracking_project.settings",
            "DJANGO_DEBUG": "1",
            "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'app.sqlite3'}",
            "AWS_ENDPOINT_URL": moto.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "FIREHOSE_STREAM_NAME": "fuzz-events",
            "FIREHOSE_S3_BUCKET": "fuzz-bucket",
            "EVENTS_LOG_LEVEL": "WARNING",
            "EVENTS_RATE_LIMIT": "0",
        }
    )
    app.manage("migrate", "-v", "0")
    app.manage("ensure_firehose")
    key = app.create_key("fuzz-game")
    url = app.serve()
    app.worker()
    yield app, url, key
    app.stop_all()
    moto.stop()


def test_the_api_never_answers_5xx_and_always_matches_its_schema_and_the_worker_delivers_what_it_accepted(
    served_api,
):
    app, url, key = served_api
    schema = schemathesis.openapi.from_url(f"{url}/api/schema/")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {operation.path for operation in operations} >= {"/v1/events", "/v1/events/batch"}

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case):
            case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)

        call()

    # Whatever the fuzz got accepted (seldom anything: the schema cannot express every rule)
    # is a line the destination takes; the worker ran beside the server all along, as deployed.
    stored = app.stored_event_ids()
    wait_for(lambda: stored <= set(app.s3_event_ids()), timeout=120, what="every accepted event in S3")
    assert app.query("SELECT COUNT(*) FROM events_app_deliveryissue") == [(0,)]
