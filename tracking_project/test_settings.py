"""Settings of the test suite: the real settings, read with development and test-safe defaults."""

import os

# A developer's .env must not change a test run, here or in the processes tests start
# (they inherit this environment).
os.environ["DJANGO_ENV_FILE"] = ""

# Development mode (no production secret needed); Django's test runner still serves
# requests with DEBUG off.
os.environ.setdefault("DJANGO_DEBUG", "1")
# Tests must never reach real AWS: fake credentials; tests point boto3 at moto.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.pop("AWS_PROFILE", None)
# Currency tests expect a deployment's rule (no rate carried forward); those of the
# local rule turn it on themselves.
os.environ.setdefault("EVENTS_FX_CARRY_FORWARD", "0")

from .settings import *  # noqa: F403
