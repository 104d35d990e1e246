"""schemathesis against /api/schema/ over real HTTP: no 5xx, and every answer fits the schema."""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from devtools.processes import MotoServer
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
    """Serve the app over HTTP on a fresh SQLite file, with an API key; yield (base URL, key)."""
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
            "EVENTS_LOG_LEVEL": "WARNING",
            "EVENTS_RATE_LIMIT": "0",
        }
    )
    app.manage("migrate", "-v", "0")
    app.manage("ensure_firehose")
    key = app.create_key("fuzz-game")
    url = app.serve(EVENTS_INLINE_DELIVERY="1")
    yield url, key
    app.stop_all()
    moto.stop()


def test_the_api_never_answers_5xx_and_always_matches_its_schema(served_api):
    url, key = served_api
    schema = schemathesis.openapi.from_url(f"{url}/api/schema/")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {operation.path for operation in operations} >= {"/v1/events", "/v1/events/batch"}

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case):
            case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)

        call()
