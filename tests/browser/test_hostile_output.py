"""LLM output is untrusted: a trace full of hostile strings renders inert on every page.

The strings try to run script (a `<script>` element, event handlers on injected elements, an
attribute broken out of, an SVG, a `javascript:` URL), to restyle the page (a `<style>`
element), and to break the layout (a 5,000-character word, control characters). Each would
set `window.__pwned`; the test visits every page in headless Chromium and asserts nothing ran,
no dialog opened, the page still shows, and the hostile text is there as text.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from apps.threads.models import Thread
from tests.browser.conftest import log_in
from tests.helpers import ingest

PWN = "window.__pwned=1"
HOSTILE = [
    f"<script>{PWN}</script>",
    f'<img src=x onerror="{PWN}">',
    f'"><img src=x onerror={PWN}>',
    f"'><svg onload={PWN}>",
    f"javascript:{PWN}",
    "<style>body{display:none !important}</style>",
    "<a href=javascript:alert(1)>click</a>",
]
TEXT = " ".join(HOSTILE) + " " + "W" * 5000 + " \u0007\u001b[31m\u200f end"


@pytest.fixture
def hostile_trace(acme_app):
    meta = {"agent": HOSTILE[1], "user_id": HOSTILE[2], "user_email": f"{HOSTILE[4]}@x.io", "thread_id": "t-h",
            "url": HOSTILE[4], "note": TEXT}  # fmt: skip
    ingest(
        acme_app,
        {"name": "agent_start", "run_id": "h-root", "timestamp": "2026-05-29T08:00:00Z", "run_name": HOSTILE[0],
         "input": TEXT, "metadata": meta, "tags": [HOSTILE[3], HOSTILE[5]]},
        {"name": "llm_start", "run_id": "h-llm", "parent_run_id": "h-root", "timestamp": "2026-05-29T08:00:01Z",
         "model": HOSTILE[3], "input": [{"role": "user", "content": TEXT}]},
        {"name": "llm_error", "run_id": "h-llm", "timestamp": "2026-05-29T08:00:02Z",
         "error": {"message": TEXT, "stack": HOSTILE[0]}, "output": {"content": HOSTILE[6]}},
        {"name": "chat", "role": "user", "content": TEXT, "thread_id": "t-h", "run_id": "h-root",
         "message_id": "hm1", "timestamp": "2026-05-29T08:00:03Z"},
        {"name": "chat", "role": "assistant", "content": {"html": HOSTILE[0], "text": TEXT}, "thread_id": "t-h",
         "run_id": "h-llm", "message_id": "hm2", "timestamp": "2026-05-29T08:00:04Z"},
        {"name": "agent_end", "run_id": "h-root", "timestamp": "2026-05-29T08:00:05Z", "output": TEXT},
        {"name": "feedback", "message_id": "hm2", "rating": "negative", "comment": TEXT,
         "timestamp": "2026-05-29T08:00:06Z"},
    )  # fmt: skip
    return acme_app


def pages(app) -> list[str]:
    thread = Thread.objects.get(thread_id="t-h").pk
    query = f"?app={app.public_id}"
    return [
        f"/{query}",
        f"/{query}&search=script",
        f"/runs/h-root/{query}",
        f"/runs/h-root/span/h-llm/{query}",
        f"/runs/h-root/subtree/h-llm/{query}",
        f"/threads/{query}",
        f"/threads/{thread}/{query}",
        f"/analytics/{query}",
        f"/settings/{query}",
    ]


class Elements(HTMLParser):
    """The elements a page's HTML really has (escaped text is text here, as in a browser)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict]] = []
        self.script = ""
        self._in = ""
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))
        self._in = tag

    def handle_data(self, data):
        if self._in in ("script", "style"):
            self.script += data


def test_the_html_never_carries_the_hostile_markup(client, alice, hostile_trace):
    client.force_login(alice)
    for path, htmx in [(path, htmx) for path in pages(hostile_trace) for htmx in (False, True)]:
        # As a browser loads it, and as htmx does (the span and subtree partials, the list's rows).
        response = client.get(path, follow=True, **({"HTTP_HX_REQUEST": "true"} if htmx else {}))
        assert response.status_code == 200, path
        page = Elements(response.content.decode())
        assert "__pwned" not in page.script and "display:none !important" not in page.script, path
        for tag, attrs in page.found:
            assert not (tag in ("img", "svg") and attrs.get("src") == "x" or "onload" in attrs), (path, tag)
            assert not any(name.startswith("on") and "__pwned" in (value or "") for name, value in attrs.items())
            for name in ("href", "src", "action"):
                assert not (attrs.get(name) or "").strip().lower().startswith("javascript:"), (path, tag, attrs)


def test_no_hostile_string_runs_in_the_browser(page, alice, hostile_trace):
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, "alice")
    for path in pages(hostile_trace):
        page.goto(path)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("window.__pwned") is None, path
        assert page.locator("body").is_visible(), path  # the injected <style> did not apply
    page.goto(f"/runs/h-root/?app={hostile_trace.public_id}")
    assert "<script>window.__pwned=1</script>" in page.locator("body").inner_text()  # shown, as text
    for link in page.locator("a[href]").all():
        assert not (link.get_attribute("href") or "").strip().lower().startswith("javascript:")
    assert dialogs == []
