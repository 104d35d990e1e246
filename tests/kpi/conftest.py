"""Fixtures the KPI tests share with other suites: the browser's (admin) and fakesnow's COPY extras (warehouse)."""

from tests.admin.browser.conftest import chromium, operator_login, page  # noqa: F401
from tests.delivery.test_warehouse import snowflake_copy_extras  # noqa: F401
