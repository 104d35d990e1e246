"""Browser fixtures: Debian's chromium driven by Playwright against pytest-django's live server."""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"  # tests/artifacts, git-ignored
DOCS_IMAGES = Path(__file__).resolve().parents[3] / "docs" / "img"
# Shown in the README and docs/admin.md.
DOCS_SCREENSHOTS = {
    "dashboard.png",
    "dashboard-outage.png",
    "admin-index.png",
    "event-list.png",
    "event-list-failed.png",
    "event-detail.png",
    "live-events.png",
    "player-timeline.png",
    "admin-index-outage.png",
    "dashboard-delivery-outage.png",
}
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers' /dev/shm is tiny
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
PASSWORD = "operator-password-1"


@pytest.fixture(scope="module")
def chromium(django_db_setup, live_server):
    """Yield a headless chromium for this module's tests; skip without one on a developer machine, fail in CI.

    Playwright's sync API keeps an asyncio loop running on this thread while it is
    started, and Django refuses ORM calls from a thread with a running loop. The
    tests' ORM calls stay synchronous, so they are allowed for as long as the
    browser runs, and the browser stops with the module, before any other test.
    """
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (Debian package `chromium`; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(chromium, live_server):
    """Yield a fresh browser page with its own cookies, 1280 px wide; fail its test on any CSP violation.

    Chromium reports each thing the Content-Security-Policy blocked (an inline script, a
    style, an image from elsewhere) as a console error: every page a test opens must log none.
    """
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server.url)
    # Start with the admin's navigation sidebar folded, so pages (and screenshots) get the width.
    context.add_init_script("window.localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    page = context.new_page()
    page.set_default_timeout(15_000)
    violations = []
    page.on(
        "console",
        lambda message: (
            violations.append(f"{page.url}: {message.text}") if "Content Security Policy" in message.text else None
        ),
    )
    yield page
    context.close()
    assert not violations, "\n".join(violations)


@pytest.fixture
def operator_login(page, transactional_db, django_user_model):
    """Log a superuser in through the admin's login form; return the page."""

    def login(username: str = "operator", *, superuser: bool = True, permissions: tuple[str, ...] = ()):
        from django.contrib.auth.models import Permission

        user = django_user_model.objects.create_user(username, password=PASSWORD, is_staff=True, is_superuser=superuser)
        if permissions:
            user.user_permissions.set(Permission.objects.filter(codename__in=permissions))
        page.goto("/admin/login/?next=/admin/")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/")
        return page

    return login


@pytest.fixture
def screenshot(page):
    """Return a function saving the page under tests/artifacts (UPDATE_DOCS_SCREENSHOTS=1: the docs' in docs/img)."""

    def save(name: str, *, full_page: bool = False) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        page.screenshot(path=str(path), full_page=full_page)
        if os.environ.get("UPDATE_DOCS_SCREENSHOTS") and name in DOCS_SCREENSHOTS:
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS_IMAGES / name)
        return path

    return save
