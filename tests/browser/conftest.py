"""Browser tests: Playwright for Python driving Debian's headless Chromium against a live server.

Chromium comes from apt (`apt-get install chromium`; .ci/run installs it), never from
`playwright install`. With OBSERVATORY_SCREENSHOTS=<folder> the tests also save a
screenshot of each page at 1280 px there (`make screenshots` writes docs/screenshots/).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.management import call_command

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = os.environ.get("OBSERVATORY_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module, stopped with it: Playwright's sync API keeps an event loop
    running in this thread meanwhile, which asyncio.run() in later tests (the SDK's) refuses."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's Chromium at /usr/bin/chromium: apt-get install chromium (CI installs it)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the live server's database
    # work happens in its own thread, and the test's own ORM calls are plain sync code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            yield chromium
            chromium.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server.url)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture
def demo(acme_app):
    """Realistic traffic in Acme's app: traces, errors, chat threads, feedback."""
    call_command("load_demo", app=acme_app.slug, org=acme_app.organization.slug, runs=60, stdout=open(os.devnull, "w"))
    return acme_app


def log_in(page, username: str, password: str = "password") -> None:
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url)


def screenshot(page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=False)
