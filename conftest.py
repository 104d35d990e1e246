"""Test-wide defaults, set before Django reads its settings."""

import os

# Development settings (no production secret needed); Django's test runner still runs
# views with DEBUG off.
os.environ.setdefault("DJANGO_DEBUG", "1")
# Tests must never reach real AWS: fake credentials, and the emulator is set per test.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.pop("AWS_PROFILE", None)
