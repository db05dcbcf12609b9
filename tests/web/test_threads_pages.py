"""The Threads pages: /threads/ (the API's filters and keyset pages, htmx partial) and /threads/<pk>/."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from apps.costs.models import ModelCost
from apps.threads.models import Thread
from apps.threads.selectors import agents_of
from tests.helpers import ingest

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
XSS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "javascript:alert(1)"]


def chat(content, minutes, *, at=T0, **fields):
    meta = {"agent": fields.pop("agent", "bot"), "user_id": fields.pop("user", "u1")}
    if "email" in fields:
        meta["user_email"] = fields.pop("email")
    return {"name": "chat", "role": fields.pop("role", "user"), "content": content,
            "timestamp": (at + timedelta(minutes=minutes)).isoformat(), "metadata": meta, **fields}  # fmt: skip


@pytest.fixture
def conversations(acme_app):
    ModelCost.objects.create(model="m", prompt_price=Decimal("0.001"), completion_price=Decimal("0.001"))
    ingest(
        acme_app,
        chat("hello", 0, thread_id="support-1", message_id="a1", email="u1@example.com"),
        {"name": "llm_call", "run_id": "r1", "timestamp": (T0 + timedelta(minutes=1)).isoformat(), "latency_s": 2.5,
         "model": "m", "prompt_tokens": 1000, "completion_tokens": 1000},
        chat("<b>hi</b>", 1, role="assistant", thread_id="support-1", message_id="a2", run_id="r1"),
        chat("thanks", 3, thread_id="support-1", message_id="a3"),
        {"name": "feedback", "message_id": "a2", "rating": "positive", "comment": "nice <i>one</i>"},
        {"name": "feedback", "message_id": "a3", "rating": "negative", "comment": "meh"},
        chat("sales question", 60, agent="sales", user="u2"),
        chat("later", 500, agent="bot", user="u3"),
    )  # fmt: skip
    return {t.preview: t for t in Thread.objects.all()}


def previews(response) -> list[str]:
    return re.findall(
        r'<a class="truncate" href="/threads/\d+/\?app=[^"]+" hx-boost="false">([^<]*)</a>', response.content.decode()
    )


@pytest.fixture
def logged_in(client, alice):
    client.force_login(alice)
    return client


# --- the list -------------------------------------------------------------------------------------


def test_threads_require_login(client, db):
    for path in ("/threads/", "/threads/1/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_list_shows_the_columns_newest_activity_first(logged_in, acme_app, conversations):
    response = logged_in.get("/threads/")
    assert response.status_code == 200
    assert previews(response) == ["later", "sales question", "thanks"]
    html = response.content.decode()
    support = conversations["thanks"]
    row = html[html.index(f'href="/threads/{support.pk}/') :].split("</tr>")[0]
    assert ">support-1<" in row and ">bot<" in row and ">u1<" in row and "u1@example.com" in row
    assert '<td class="num" data-unit="msgs">3</td>' in row and '<td class="num" data-unit="tokens">2,000</td>' in row
    assert '<td class="num">$0.00200</td>' in row
    assert '<time datetime="2026-05-01T10:03:00+00:00">' in row
    assert "👍 1" in row and "👎 1" in row
    assert f'href="/threads/{support.pk}/?app={acme_app.public_id}"' in html
    # Switching app from this page stays on Threads.
    assert 'class="app-switch" method="get" action="/threads/"' in html


@pytest.mark.parametrize(
    "query,expected",
    [
        ("agent=sales", ["sales question"]),
        ("user_id=u1", ["thanks"]),
        ("user_email=u1@example.com", ["thanks"]),
        ("has_feedback=true", ["thanks"]),
        ("has_feedback=false", ["later", "sales question"]),
        ("from=2026-05-01T11:00:00Z", ["later", "sales question"]),
        ("to=2026-05-01T11:00", ["sales question", "thanks"]),  # what <input type=datetime-local> sends
        ("from=2026-05-01T10:03:00Z&to=2026-05-01T10:03:00Z", ["thanks"]),
        ("agent=&user_id=&user_email=&has_feedback=&from=&to=&range=", ["later", "sales question", "thanks"]),
    ],
)
def test_each_filter_is_the_apis(logged_in, conversations, query, expected):
    response = logged_in.get(f"/threads/?{query}")
    assert response.status_code == 200
    assert previews(response) == expected


def test_agent_choices_come_from_the_apps_threads(logged_in, acme_app, globex_app, conversations):
    ingest(globex_app, chat("hi", 0, agent="globex-secret-agent"))
    html = logged_in.get("/threads/").content.decode()
    assert re.findall(r'<option value="([^"]*)"', html.split('name="agent"')[1].split("</select>")[0]) == [
        "", "bot", "sales",
    ]  # fmt: skip
    assert "globex-secret-agent" not in html
    # Selected, even when it is not among the bounded choices.
    html = logged_in.get("/threads/?agent=nobody").content.decode()
    assert '<option value="nobody" selected>nobody</option>' in html


def test_agent_choices_are_bounded_and_sorted(acme_app):
    ingest(acme_app, *[chat("x", i, agent=f"agent-{i:02}", user=f"u{i}") for i in range(12)])
    assert agents_of(acme_app, limit=5) == ["agent-00", "agent-01", "agent-02", "agent-03", "agent-04"]
    assert len(agents_of(acme_app)) == 12


def test_range_presets(logged_in, acme_app):
    now = timezone.now()
    ingest(acme_app, chat("recent", -30, at=now, user="a"), chat("yesterday", -60 * 30, at=now, user="b"))
    assert previews(logged_in.get("/threads/?range=1h")) == ["recent"]
    assert previews(logged_in.get("/threads/?range=7d")) == ["recent", "yesterday"]
    # A custom from/to wins over a preset.
    assert previews(logged_in.get("/threads/?range=1h&from=2000-01-01T00:00")) == ["recent", "yesterday"]
    html = logged_in.get("/threads/?range=3h").content.decode()
    assert 'class="active" aria-current="true">3h</a>' in html
    assert '<input type="hidden" name="range" value="3h">' in html


@pytest.mark.parametrize(
    "query,message",
    [
        ("has_feedback=maybe", "has_feedback: Select a valid choice. maybe is not one of the available choices."),
        ("from=yesterday", "from: Enter a valid date/time."),
        ("limit=501", "limit: Must be between 1 and 500."),
        ("cursor=x", "cursor: Invalid cursor."),
        ("range=2w", "range: Must be one of 1h, 3h, 24h, 7d, 1m, 6m."),
        ("from=0001-01-01T00:00:00%2B01:00", "from: Out of the supported date range."),
    ],
)
def test_invalid_values_show_the_apis_message_with_a_400(logged_in, acme_client, conversations, query, message):
    response = logged_in.get(f"/threads/?{query}")
    assert response.status_code == 400
    assert f'<p class="form-error" role="alert">{message}</p>' in response.content.decode()
    if not query.startswith("range"):
        assert acme_client.get(f"/api/threads/?{query}").json()["error"] == message


def test_keyset_pages_follow_the_next_link(logged_in, acme_app):
    ingest(acme_app, *[chat(f"m{i:02}", i, user=f"u{i}") for i in range(7)])
    seen, url = [], "/threads/?limit=3&agent=bot"
    while url:
        response = logged_in.get(url)
        seen += previews(response)
        found = re.search(r'<a href="(\?[^"]+)" rel="next">', response.content.decode())
        url = "/threads/" + found.group(1).replace("&amp;", "&") if found else None
        if url:
            assert parse_qs(urlsplit(url).query)["agent"] == ["bot"]  # the filters travel with the cursor
    assert seen == [f"m{i:02}" for i in reversed(range(7))]


def test_cursors_are_the_apis(logged_in, acme_client, acme_app):
    ingest(acme_app, *[chat(f"m{i}", i, user=f"u{i}") for i in range(4)])
    cursor = parse_qs(urlsplit(acme_client.get("/api/threads/?limit=2").json()["next"]).query)["cursor"][0]
    assert previews(logged_in.get(f"/threads/?limit=2&cursor={cursor}")) == ["m1", "m0"]


def test_htmx_gets_the_results_partial_and_a_clean_url(logged_in, acme_app, conversations):
    response = logged_in.get("/threads/?agent=sales&user_id=&range=", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and previews(response) == ["sales question"]
    assert html.lstrip().startswith('<div id="threads-view"') and "<html" not in html
    assert response["HX-Push-Url"] == f"/threads/?agent=sales&app={acme_app.public_id}"
    assert "HX-Request" in response["Vary"]
    # A history restore (htmx missed its cache) gets the whole page.
    restore = logged_in.get("/threads/?agent=sales", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert "<html" in restore.content.decode()
    # An invalid value in the partial too, with its 400 (the page lets htmx swap it).
    bad = logged_in.get("/threads/?has_feedback=maybe", HTTP_HX_REQUEST="true")
    assert bad.status_code == 400 and 'class="form-error"' in bad.content.decode()


def test_the_url_holds_every_filter(logged_in, acme_app, conversations):
    html = logged_in.get("/threads/?agent=bot&has_feedback=true&range=24h").content.decode()
    assert f'<input type="hidden" name="app" value="{acme_app.public_id}">' in html
    assert '<option value="true" selected>With feedback</option>' in html
    # A preset link keeps the other filters and drops the cursor.
    preset = re.search(r'<a href="(\?[^"]*range=7d[^"]*)"', html).group(1).replace("&amp;", "&")
    assert parse_qs(preset[1:]) == {
        "agent": ["bot"],
        "has_feedback": ["true"],
        "range": ["7d"],
        "app": [str(acme_app.public_id)],
    }


def test_empty_states(logged_in, acme_app):
    html = logged_in.get("/threads/").content.decode()
    assert "No threads yet" in html and "<code>chat</code> events" in html and 'id="curl-example"' in html
    ingest(acme_app, chat("hello", 0))
    html = logged_in.get("/threads/?agent=nobody").content.decode()
    assert "No threads match these filters" in html and "No threads yet" not in html


def test_a_user_without_apps_gets_the_no_app_empty_state(client, db):
    from tests.factories import UserFactory

    client.force_login(UserFactory(username="loner"))
    response = client.get("/threads/")
    assert response.status_code == 200 and "not a member of any organization" in response.content.decode()


def test_another_organizations_app_is_a_404(logged_in, globex_app, acme_app):
    assert logged_in.get(f"/threads/?app={globex_app.public_id}").status_code == 404
    assert logged_in.get("/threads/?app=not-a-uuid").status_code == 404


def test_untrusted_values_render_escaped_in_the_list(logged_in, acme_app):
    for i, bad in enumerate(XSS):
        ingest(acme_app, chat(bad, i, agent=bad, user=bad, email=f"{bad}@x", thread_id=f"t{i}-{bad}"))
    html = logged_in.get("/threads/").content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'href="javascript:' not in html
    assert "javascript:alert(1)" in html  # as text


def test_list_query_count_is_pinned_first_and_later_pages(logged_in, acme_app, django_assert_num_queries):
    ingest(
        acme_app,
        *[
            chat(f"m{i:02}", i, user=f"u{i % 4}", agent=f"a{i % 3}", message_id=f"id{i}", thread_id=f"t{i}")
            for i in range(30)
        ],
    )
    ingest(acme_app, *[{"name": "feedback", "message_id": f"id{i}", "rating": "positive"} for i in range(0, 30, 2)])
    logged_in.get(f"/threads/?app={acme_app.public_id}")  # the session remembers the app
    # session, user, the user's apps, agent choices, the page (feedback counts included)
    with django_assert_num_queries(5):
        first = logged_in.get("/threads/?limit=10")
    cursor = re.search(r'cursor=([^"&]+)', first.content.decode().split('rel="next"')[0].rsplit("<a", 1)[1]).group(1)
    with django_assert_num_queries(5):
        later = logged_in.get(f"/threads/?limit=10&cursor={cursor}")
    assert len(previews(first)) == len(previews(later)) == 10
    assert previews(later)[0] == "m19"


# --- one thread -----------------------------------------------------------------------------------


def test_the_conversation_in_order_with_latency_tokens_cost_trace_and_feedback(logged_in, acme_app, conversations):
    thread = conversations["thanks"]
    response = logged_in.get(f"/threads/{thread.pk}/?app={acme_app.public_id}")
    assert response.status_code == 200
    html = response.content.decode().split('<ol class="chat">')[1]
    bubbles = re.findall(r'<li class="msg (\w+)">', html)
    assert bubbles == ["user", "assistant", "user"]
    assert html.index(">hello<") < html.index("&lt;b&gt;hi&lt;/b&gt;") < html.index(">thanks<")
    assistant = html.split('<li class="msg assistant">')[1].split('<li class="msg')[0]
    assert "latency 2.50 s" in assistant and "2,000 tokens" in assistant and "$0.002" in assistant
    assert f'href="/runs/r1/?app={acme_app.public_id}"' in assistant
    assert '<li class="feedback positive">' in assistant and "<q>nice &lt;i&gt;one&lt;/i&gt;</q>" in assistant
    last = html.split('<li class="msg user">')[2]
    assert '<span title="Time since the previous message">+2 min</span>' in last
    assert '<li class="feedback negative">' in last and "👎" in last and "<q>meh</q>" in last
    assert 'action="/threads/"' in response.content.decode()  # the app switcher goes back to the list


def test_a_score_from_another_tool_shows_beside_the_thumb(logged_in, acme_app):
    ingest(acme_app, chat("answer", 0, role="assistant", thread_id="s", message_id="m-s"))
    score = {"name": "helpfulness", "value": "<b>0.9</b>"}
    ingest(acme_app, {"name": "feedback", "message_id": "m-s", "rating": "positive", "score": score})
    html = logged_in.get(f"/threads/{Thread.objects.get(thread_id='s').pk}/").content.decode()
    assert '👍</span> <span class="muted">helpfulness: &lt;b&gt;0.9&lt;/b&gt;</span>' in html


def test_json_content_is_pretty_and_roles_are_styled(logged_in, acme_app):
    ingest(
        acme_app,
        # Keys in the order PostgreSQL's jsonb keeps them, so both databases render the same.
        chat({"args": {"q": "<script>x</script>"}, "tool": "search"}, 0, role="tool", thread_id="j"),
        chat([{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}], 1, role="assistant",
             thread_id="j"),
        chat("be nice", 2, role="system", thread_id="j"),
        chat(None, 3, role="user", thread_id="j"),
    )  # fmt: skip
    thread = Thread.objects.get(thread_id="j")
    html = logged_in.get(f"/threads/{thread.pk}/").content.decode()
    assert re.findall(r'<li class="msg (\w+)">', html) == ["tool", "assistant", "system", "user"]
    assert '<pre class="content json">{\n  &quot;args&quot;: {\n    &quot;q&quot;:' in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert '<div class="content">part one\n\npart two</div>' in html
    assert "(no content)" in html


def test_long_content_is_cut_with_a_pointer_to_the_api(logged_in, acme_app):
    ingest(acme_app, chat("x" * 25_000, 0, thread_id="long"))
    thread = Thread.objects.get(thread_id="long")
    html = logged_in.get(f"/threads/{thread.pk}/").content.decode()
    assert "x" * 20_000 in html and "x" * 20_001 not in html
    assert "and 5000 more characters" in html and f'href="/api/threads/{thread.pk}/?app_id=' in html


def test_untrusted_content_renders_escaped_in_a_thread(logged_in, acme_app):
    ingest(
        acme_app, *[chat(bad, i, thread_id="x", agent=XSS[0], user=XSS[1], run_id=f"r{i}") for i, bad in enumerate(XSS)]
    )
    ingest(acme_app, {"name": "feedback", "run_id": "r0", "rating": "negative", "comment": XSS[1]})
    html = logged_in.get(f"/threads/{Thread.objects.get(thread_id='x').pk}/").content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html and 'href="javascript:' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_a_run_id_that_has_no_run_page_url_is_shown_as_text(logged_in, acme_app):
    ingest(acme_app, chat("hi", 0, role="assistant", thread_id="slash", run_id="a/b"))
    response = logged_in.get(f"/threads/{Thread.objects.get(thread_id='slash').pk}/")
    assert response.status_code == 200 and "run a/b" in response.content.decode()


def test_another_organizations_thread_is_a_404(logged_in, client, bob, acme_app, globex_app, conversations):
    ingest(globex_app, chat("secret", 0, thread_id="g"))
    theirs = Thread.objects.get(thread_id="g")
    assert logged_in.get(f"/threads/{theirs.pk}/").status_code == 404
    assert logged_in.get(f"/threads/{theirs.pk}/?app={globex_app.public_id}").status_code == 404
    assert logged_in.get("/threads/999999/").status_code == 404
    client.force_login(bob)
    ours = conversations["thanks"]
    assert client.get(f"/threads/{ours.pk}/?app={acme_app.public_id}").status_code == 404
    assert client.get(f"/threads/{ours.pk}/").status_code == 404


def test_thread_page_query_count_is_pinned(logged_in, acme_app, conversations, django_assert_num_queries):
    thread = conversations["thanks"]
    url = f"/threads/{thread.pk}/?app={acme_app.public_id}"
    logged_in.get(url)
    # session, user, the user's apps, the thread, its messages, their runs' totals, their feedback
    with django_assert_num_queries(7):
        assert logged_in.get(url).status_code == 200
