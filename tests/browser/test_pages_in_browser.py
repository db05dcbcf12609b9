"""A person's path through the pages, in headless Chromium against a live server (see conftest)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from apps.tenancy.models import ApiKey
from apps.tracing.models import Run
from tests.browser.conftest import log_in, screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def test_filter_llm_calls_by_status_and_search(page, alice, demo):
    log_in(page, "alice")
    page.goto("/")
    llm_calls = Run.objects.for_app(demo).filter(type="llm").count()
    assert page.locator("#calls-table tbody tr").count() == min(llm_calls, 50)
    screenshot(page, "llm-calls")
    page.goto("/?type=")  # every type: the demo's failures are tool and agent runs
    errors = Run.objects.for_app(demo).filter(status="error").count()
    assert errors
    page.select_option("select[name=status]", "error")
    page.wait_for_url(re.compile(r"status=error"))
    page.wait_for_load_state("networkidle")
    statuses = page.locator("#calls-table tbody .badge").all_inner_texts()
    assert len(statuses) == min(errors, 50) and {s.strip().lower() for s in statuses} == {"error"}
    page.fill("input[name=search]", "refund")
    page.press("input[name=search]", "Enter")
    page.wait_for_url(re.compile(r"search=refund"))
    assert "status=error" in page.url


def test_open_a_trace_select_a_span_and_save_it(page, alice, demo):
    root = Run.objects.for_app(demo).filter(parent_run_id=None, type="agent").order_by("-started_at").first()
    child = Run.objects.for_app(demo).filter(parent_run_id=root.run_id).first()
    log_in(page, "alice")
    page.goto(f"/runs/{root.run_id}/?app={demo.public_id}")
    screenshot(page, "run")
    page.click(f"[data-span='{child.run_id}']")
    page.wait_for_url(re.compile(rf"span={re.escape(child.run_id)}"))
    assert child.name in page.inner_text("#span-detail")
    page.click("button:has-text('Save')")
    page.wait_for_selector("button:has-text('Unsave')")
    saved = page.request.get(f"/api/run/?app_id={demo.public_id}&saved=true").json()["results"]
    assert root.run_id in [r["run_id"] for r in saved]  # (the demo saves a few traces of its own)


def test_open_a_thread(page, alice, demo):
    log_in(page, "alice")
    page.goto("/threads/")
    screenshot(page, "threads")
    page.click("tbody a >> nth=0")
    page.wait_for_url(re.compile(r"/threads/\d+/"))
    assert page.locator(".bubble").count() >= 1
    screenshot(page, "thread")


def test_create_a_key_then_revoke_it(page, alice, acme_app):
    log_in(page, "alice")
    page.goto("/settings/")
    page.fill("form[action$='/settings/keys/'] input[name=name]", "from the browser")
    page.click("form[action$='/settings/keys/'] button:has-text('Create key')")
    raw = page.inner_text("#new-key-value").strip()
    assert raw.startswith("obs_")
    screenshot(page, "settings")
    report = {"events": [{"name": "llm_call", "run_id": "from-browser", "model": "m"}]}
    headers = {"Authorization": f"Bearer {raw}"}
    assert page.request.post("/api/report", data=report, headers=headers).status == 200
    page.goto("/settings/")
    assert raw not in page.content()  # shown once
    key = ApiKey.objects.get(name="from the browser")
    revoke = f"form[action$='/settings/keys/{key.pk}/revoke/']"
    page.click(f"details:has({revoke}) summary")
    page.click(f"{revoke} button")
    page.wait_for_load_state()
    assert page.request.post("/api/report", data=report, headers=headers).status == 401


def test_an_outsider_gets_404(page, bob, demo):
    run = Run.objects.for_app(demo).first()
    log_in(page, "bob")
    for path in (
        f"/runs/{run.run_id}/?app={demo.public_id}",
        f"/?app={demo.public_id}",
        f"/threads/?app={demo.public_id}",
    ):
        assert page.goto(path).status == 404, path


def test_analytics_draws_its_charts_and_a_row_opens_llm_calls(page, alice, demo):
    log_in(page, "alice")
    page.goto("/")
    page.click(".mainnav a:has-text('Analytics')")
    page.wait_for_url(re.compile(r"/analytics/"))
    page.wait_for_selector(".chart canvas")
    assert page.locator(".chart canvas").count() == 3  # cost, tokens, error rate (uPlot draws on canvas)
    assert page.locator(".chart .u-legend").count() == 3
    screenshot(page, "analytics")
    row = page.locator("section:has(h2:text-is('Models')) tbody a").first
    model = row.inner_text().strip()
    row.click()
    page.wait_for_url(re.compile(r"model="))
    assert urlsplit(page.url).path == "/"  # LLM Calls
    models = {cell.strip() for cell in page.locator("#calls-table tbody td:nth-child(5)").all_inner_texts()}
    assert models == {model}


def test_no_page_breaks_the_content_security_policy(page, alice, demo):
    # Only our own static files may run or style a page (docs/SECURITY.md): whatever a page, its
    # htmx partials, the API's docs or the admin load must not be refused by the browser.
    from tests.factories import UserFactory

    UserFactory(username="root", is_staff=True, is_superuser=True)
    refused = []

    def console(message):
        if "Content Security Policy" in message.text:
            refused.append(f"{page.url}: {message.text[:120]}")

    page.on("console", console)
    page.on("pageerror", lambda error: refused.append(f"{page.url}: {error}"))
    log_in(page, "alice")
    run = Run.objects.filter(app=demo, parent_run_id__isnull=True, type="agent").first()
    paths = ["/", "/threads/", "/analytics/", "/settings/", f"/runs/{run.run_id}/", "/api/docs/"]
    for path in paths:
        page.goto(f"{path}?app={demo.public_id}" if not path.startswith("/api/") else path)
        page.wait_for_load_state("networkidle")
    page.goto(f"/runs/{run.run_id}/?app={demo.public_id}")
    page.locator(".span-row").nth(1).click()  # an htmx partial
    page.wait_for_load_state("networkidle")
    assert page.locator(".wf .bar").count() > 1  # the waterfall's bars, placed by style attributes
    page.goto("/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock")  # Swagger UI ran: its script is a file, not inline
    page.context.clear_cookies()
    page.goto("/admin/login/?next=/admin/")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "password")
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))
    for path in ("/admin/", "/admin/tracing/run/", f"/admin/tracing/run/{run.pk}/change/"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
    assert page.evaluate("document.body.innerText").strip()
    assert refused == []
