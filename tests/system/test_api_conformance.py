"""schemathesis against the served OpenAPI document: every operation's answers match it, status codes and bodies.

Real processes (gunicorn, moto), the document as the server serves it at /api/schema/,
schemathesis' own runner (its CLI). Deterministic (a fixed seed, derandomized) and
bounded: each operation's examples, schemathesis' coverage cases (boundaries, missing
and wrong-typed fields, no key or a bad one), and a few generated bodies.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ST = Path(sys.executable).parent / "schemathesis"

# Not "every schema-valid body is accepted" (positive_data_acceptance): the document
# cannot express every rule (a price's decimals for its currency, clock skew, a custom
# type needing a registered schema), so the API rightly refuses some bodies it allows.
CONFIG = """
seed = 20261207
workers = 1
max-failures = 20

[generation]
deterministic = true
max-examples = 10
mode = "all"

[phases.stateful]
enabled = false

[checks]
enabled = false
not_a_server_error.enabled = true
status_code_conformance.enabled = true
content_type_conformance.enabled = true
response_schema_conformance.enabled = true
response_headers_conformance.enabled = true
negative_data_rejection.enabled = true
missing_required_header.enabled = true
ignored_auth.enabled = true

# A batch of events and Segment's calls answer 200 for invalid events and calls: each is
# rejected on its own and listed in the admin, as Segment does. Only envelopes get a 400.
[[operations]]
include-operation-id = "send_event_batch"
checks.negative_data_rejection.enabled = false

[[operations]]
include-tag = "segment"
checks.negative_data_rejection.enabled = false
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_answer_matches_the_openapi_document(deployment, tmp_path):
    key = deployment.create_key("conformance-game")
    url = deployment.serve(EVENTS_RATE_LIMIT="0")
    config = tmp_path / "schemathesis.toml"
    # The settings' key is in their path: a valid one there, so their 200 is checked too.
    config.write_text(CONFIG + f'\n[parameters]\n"path.write_key" = "{key}"\n')

    run = subprocess.run(
        [str(ST), "--config-file", str(config), "run", f"{url}/api/schema/", "-H", f"Authorization: Bearer {key}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )

    # schemathesis' report names each failing check with the request that reproduces it (curl).
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert re.search(r"Selected: (\d+)/\1\b", run.stdout), "an operation of the document was left out"
