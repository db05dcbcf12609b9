"""The LLM Calls page (`/`): the runs API's filters, sorting and keyset pages as HTML, htmx partials, escaping."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.costs.models import ModelCost
from apps.web.views.calls import dollars
from tests.factories import UserFactory
from tests.helpers import ingest

HTMX = {"HTTP_HX_REQUEST": "true"}


def ago(**delta) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def llm(run_id: str, *, when: str = "2026-05-01T10:00:00Z", latency: float = 2, **fields) -> dict:
    return {"name": "llm_call", "run_id": run_id, "model": "gpt-x", "prompt_tokens": 10, "completion_tokens": 5,
            "latency_s": latency, "timestamp": when, **fields}  # fmt: skip


def run_ids(response) -> list[str]:
    """The run ids of the table's rows, in order (from the links to their run pages)."""
    return [html.unescape(m) for m in re.findall(r'href="/runs/([^/"]+)/\?app=', response.content.decode())]


def next_link(response) -> str | None:
    found = re.search(r'<a href="([^"]+)"[^>]*>Next page', response.content.decode())
    return html.unescape(found.group(1)) if found else None


@pytest.fixture
def logged_in(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def runs(acme_app):
    """r1-r3 LLM calls with known values, r4 a tool, r5 an agent that never ended (timed out)."""
    for model in ("gpt-x", "claude-y"):
        ModelCost.objects.create(model=model, prompt_price=Decimal("0.01"), completion_price=Decimal("0.02"))
    ingest(
        acme_app,
        llm("r1", when="2026-05-01T10:00:00Z", latency=1.5, run_name="refund policy", tags=["vip"],
            metadata={"agent": "support", "user_email": "u1@example.com"}, input="Where is my PARCEL?"),
        llm("r2", when="2026-05-02T10:00:00Z", latency=6, model="claude-y", prompt_tokens=1000, completion_tokens=1000,
            tags=["beta"], metadata={"agent": "sales", "user_id": "u2"}, error="rate limited"),
        llm("r3", when="2026-05-03T10:00:00Z", latency=9.25, metadata={"agent": "support"}),
        {"name": "tool_start", "run_id": "r4", "timestamp": "2026-05-04T10:00:00Z", "metadata": {"agent": "support"}},
        {"name": "tool_end", "run_id": "r4", "timestamp": "2026-05-04T10:00:01Z"},
        {"name": "agent_start", "run_id": "r5", "timestamp": "2026-05-05T10:00:00Z"},
        {"name": "saved", "run_id": "r3"},
        {"name": "feedback", "run_id": "r1", "rating": "positive"},
        {"name": "feedback", "run_id": "r2", "rating": "negative"},
    )  # fmt: skip
    return acme_app


# --- access ---------------------------------------------------------------------------------------


def test_it_requires_login(client, db):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_another_organizations_app_is_a_404(logged_in, runs, globex_app):
    assert logged_in.get(f"/?app={globex_app.public_id}").status_code == 404
    assert logged_in.get("/?app=not-a-uuid").status_code == 404


def test_a_member_sees_the_organizations_runs(client, charlie, runs):
    client.force_login(charlie)
    assert run_ids(client.get(f"/?app={runs.public_id}")) == ["r3", "r2", "r1"]


def test_another_organizations_runs_and_values_never_show(client, bob, runs, globex_app):
    ingest(globex_app, llm("g1", metadata={"agent": "globex-agent"}, tags=["globex-tag"]))
    client.force_login(bob)
    body = client.get("/").content.decode()
    assert run_ids(client.get("/")) == ["g1"]
    assert "support" not in body and "vip" not in body and "globex-agent" in body


# --- what the table shows -----------------------------------------------------------------------


def test_it_lists_llm_calls_by_default_newest_first(logged_in, runs):
    response = logged_in.get("/")
    assert response.status_code == 200
    assert run_ids(response) == ["r3", "r2", "r1"]


def test_an_empty_type_lists_every_type(logged_in, runs):
    assert run_ids(logged_in.get("/?type=")) == ["r5", "r4", "r3", "r2", "r1"]
    assert run_ids(logged_in.get("/?type=tool")) == ["r4"]


def test_a_row_shows_status_time_user_tokens_cost_feedback_and_tags(logged_in, runs):
    body = logged_in.get(f"/?app={runs.public_id}").content.decode()
    row = re.search(r"<tr>\s*<td><span class=\"badge error\">error</span>.*?</tr>", body, re.S).group(0)
    assert (
        '<time datetime="2026-05-02T09:59:54+00:00">2026-05-02 09:59:54 UTC</time>' in row
    )  # a call ends at its timestamp
    assert f'href="/runs/r2/?app={runs.public_id}"' in row
    assert "claude-y" in row and "sales" in row and "u2" in row  # model, agent, user_id when no email
    assert "2,000" in row  # tokens
    assert "$0.030000" in row  # 1,000 prompt tokens at $0.01/1K + 1,000 completion tokens at $0.02/1K
    assert '<span class="latency warning">6.00 s</span>' in row
    assert "👎" in row and '<span class="tag">beta</span>' in row
    assert "u1@example.com" in body and "👍" in body


def test_durations_are_coloured_by_speed(logged_in, runs):
    body = logged_in.get("/").content.decode()
    assert '<span class="latency fine">1.50 s</span>' in body
    assert '<span class="latency warning">6.00 s</span>' in body
    assert '<span class="latency danger">9.25 s</span>' in body


def test_status_badges_include_timed_out(logged_in, runs, acme_app):
    ingest(acme_app, {"name": "llm_start", "run_id": "fresh", "timestamp": ago(seconds=10)})
    body = logged_in.get("/?type=").content.decode()
    assert '<span class="badge timed_out">timed out</span>' in body  # r5: started in May, never ended
    assert '<span class="badge started">started</span>' in body  # fresh
    assert '<span class="badge success">success</span>' in body


@pytest.mark.parametrize(
    ("cost", "priced", "shown"),
    [
        (Decimal("0E-10"), True, "$0"),
        (Decimal("0E-10"), False, "—"),
        (Decimal("0.0000150000"), True, "$0.000015"),
        (Decimal("0.0094200000"), True, "$0.009420"),
        (Decimal("0.0000015000"), True, "$0.000002"),
        (Decimal("0.0000000100"), True, "<$0.000001"),
        (Decimal("1.5000000000"), True, "$1.500000"),
        (Decimal("12345678901234567890123.0000000001"), True, "$12345678901234567890123.000000"),
        (None, True, "—"),
    ],
)
def test_costs_are_plain_decimals_with_six_places(cost, priced, shown):
    assert dollars(cost, priced=priced) == shown


# --- filters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("search=parcel", ["r1"]),
        ("search=CLAUDE", ["r2"]),
        ("status=error", ["r2"]),
        ("status=success", ["r3", "r1"]),
        ("type=&status=timed_out", ["r5"]),
        ("type=&status=started", ["r5"]),
        ("agent=support", ["r3", "r1"]),
        ("type=&agent=support", ["r4", "r3", "r1"]),
        ("model=claude-y", ["r2"]),
        ("tags=vip", ["r1"]),
        ("tags=vip,beta", ["r2", "r1"]),
        ("tags=vip&tags=beta", ["r2", "r1"]),
        ("user_email=u1@example.com", ["r1"]),
        ("user_id=u2", ["r2"]),
        ("min_latency_s=6", ["r3", "r2"]),
        ("max_latency_s=6", ["r2", "r1"]),
        ("min_cost=0.01", ["r2"]),
        ("max_cost=0.001", ["r3", "r1"]),
        ("from=2026-05-02T00:00:00Z", ["r3", "r2"]),
        ("to=2026-05-02T10:00", ["r2", "r1"]),
        ("saved=true", ["r3"]),
        ("feedback=positive", ["r1"]),
        ("has_feedback=true", ["r2", "r1"]),
        ("type=&root=true", ["r5", "r4", "r3", "r2", "r1"]),
    ],
)
def test_each_filter_narrows_the_list(logged_in, runs, query, expected):
    response = logged_in.get(f"/?{query}")
    assert response.status_code == 200
    assert run_ids(response) == expected


def test_the_form_shows_the_current_filters_and_keeps_the_hidden_ones(logged_in, runs):
    body = logged_in.get("/?agent=support&search=parcel&has_feedback=true&ordering=-cost&saved=1").content.decode()
    assert '<option value="support" selected>' in body
    assert 'name="search" value="parcel"' in body
    assert '<input type="hidden" name="has_feedback" value="true">' in body
    assert '<input type="hidden" name="ordering" value="-cost">' in body
    assert 'name="saved" value="true" data-autosubmit checked' in body


def test_the_choices_are_the_apps_own_values(logged_in, runs):
    body = logged_in.get("/").content.decode()
    for value in ("support", "sales", "gpt-x", "claude-y", "vip", "beta", "tool", "agent"):
        assert f'<option value="{value}"' in body
    # A value in the URL that no run has still shows as chosen.
    assert '<option value="nobody" selected>' in logged_in.get("/?agent=nobody").content.decode()


def test_a_custom_range_shows_in_utc_in_the_datetime_inputs(logged_in, runs):
    body = logged_in.get("/?from=2026-05-02T11:00:00%2B02:00&to=2026-05-03T00:00:30Z").content.decode()
    assert 'name="from" value="2026-05-02T09:00"' in body
    assert 'name="to" value="2026-05-03T00:00:30"' in body
    assert run_ids(logged_in.get("/?from=2026-05-02T11:00:00%2B02:00")) == ["r3", "r2"]


@pytest.fixture
def spread(acme_app):
    """LLM calls at growing ages, one inside each time preset."""
    ages = {"m30": {"minutes": 30}, "h2": {"hours": 2}, "h20": {"hours": 20}, "d3": {"days": 3},
            "d20": {"days": 20}, "d100": {"days": 100}, "d300": {"days": 300}}  # fmt: skip
    ingest(acme_app, *(llm(name, when=ago(**age)) for name, age in ages.items()))
    return acme_app


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("1h", ["m30"]),
        ("3h", ["m30", "h2"]),
        ("24h", ["m30", "h2", "h20"]),
        ("7d", ["m30", "h2", "h20", "d3"]),
        ("1m", ["m30", "h2", "h20", "d3", "d20"]),
        ("6m", ["m30", "h2", "h20", "d3", "d20", "d100"]),
    ],
)
def test_time_presets_set_from(logged_in, spread, preset, expected):
    response = logged_in.get(f"/?range={preset}")
    assert run_ids(response) == expected
    assert f'class="active" aria-current="true">{preset.upper()}</a>' in response.content.decode()


def test_without_a_preset_every_time_shows_and_from_wins_over_range(logged_in, spread):
    assert len(run_ids(logged_in.get("/"))) == 7
    assert run_ids(logged_in.get(f"/?range=1h&from={ago(hours=3).replace('+', '%2B')}")) == ["m30", "h2"]


def test_a_preset_link_keeps_the_filters_and_drops_from_to_and_cursor(logged_in, runs):
    body = html.unescape(logged_in.get("/?agent=support&from=2026-05-01T00:00&cursor=abc&limit=1").content.decode())
    assert f'/?app={runs.public_id}&agent=support&range=24h&limit=1"' in body


# --- sorting and pages --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("-started_at", ["r3", "r2", "r1"]),
        ("started_at", ["r1", "r2", "r3"]),
        ("-latency_s", ["r3", "r2", "r1"]),
        ("latency_s", ["r1", "r2", "r3"]),
        ("-total_tokens", ["r2", "r3", "r1"]),
        ("-cost", ["r2", "r3", "r1"]),
        ("cost", ["r1", "r3", "r2"]),
    ],
)
def test_ordering(logged_in, runs, acme_app, ordering, expected):
    ingest(acme_app, llm("r3", when="2026-05-03T10:00:00Z", latency=9.25, prompt_tokens=20, completion_tokens=5,
                         metadata={"agent": "support"}))  # fmt: skip
    assert run_ids(logged_in.get(f"/?ordering={ordering}")) == expected


def test_sort_headers_toggle_the_ordering_keep_filters_and_drop_the_cursor(logged_in, runs):
    later = next_link(logged_in.get("/?agent=support&ordering=-latency_s&limit=1"))
    body = html.unescape(logged_in.get(later.replace("&limit=1", "")).content.decode())
    app = runs.public_id
    assert f'href="/?app={app}&agent=support&ordering=latency_s" ' in body  # the active column flips
    assert f'href="/?app={app}&agent=support&ordering=-cost" ' in body  # another column starts descending
    assert f'href="/?app={app}&agent=support" ' in body  # Started, newest first: the default
    assert 'aria-sort="descending"' in body


def test_keyset_pages_cover_every_run_once_and_keep_the_filters(logged_in, acme_app):
    ingest(acme_app, *(llm(f"p{i}", when=f"2026-05-01T10:00:{i:02d}Z", metadata={"agent": "a"}) for i in range(7)))
    ingest(acme_app, llm("other", when="2026-05-01T10:00:30Z", metadata={"agent": "b"}))
    seen, url = [], "/?agent=a&limit=3"
    while url:
        response = logged_in.get(url)
        assert response.status_code == 200
        seen += run_ids(response)
        url = next_link(response)
        assert url is None or ("agent=a" in url and "limit=3" in url and "cursor=" in url)
    assert seen == [f"p{i}" for i in reversed(range(7))]


def test_a_later_page_links_back_to_the_first(logged_in, acme_app):
    ingest(acme_app, *(llm(f"p{i}", when=f"2026-05-01T10:00:{i:02d}Z") for i in range(3)))
    later = logged_in.get(next_link(logged_in.get("/?limit=2"))).content.decode()
    assert "First page" in later and "Next page" not in later


def test_a_cursor_from_the_api_works_on_the_page(logged_in, acme_app):
    ingest(acme_app, *(llm(f"p{i}", when=f"2026-05-01T10:00:{i:02d}Z") for i in range(3)))
    api_next = logged_in.get("/api/run/?type=llm&limit=1").json()["next"]
    cursor = re.search(r"cursor=([^&]+)", api_next).group(1)
    assert run_ids(logged_in.get(f"/?limit=1&cursor={cursor}")) == ["p1"]


# --- invalid values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "status=bogus",
        "type=Not-A-Type",
        "min_latency_s=fast",
        "min_cost=NaN",
        "from=yesterday",
        "saved=maybe",
        "feedback=meh",
        "ordering=name",
        "tags=" + ",".join(str(i) for i in range(51)),
        "limit=0",
        "limit=many",
        "cursor=garbage",
        "cursor=eyJvIjoiLWNvc3QiLCJ2IjoiMCIsImlkIjoxfQ",  # made for another ordering
    ],
)
def test_an_invalid_value_shows_the_apis_message_with_a_400(logged_in, runs, query):
    api = logged_in.get(f"/api/run/?{query}")
    assert api.status_code == 400
    response = logged_in.get(f"/?{query}")
    assert response.status_code == 400
    box = re.search(r'<div class="form-error" role="alert">(.*?)</div>\s', response.content.decode(), re.S).group(1)
    for line in api.json()["error"].split("; "):
        assert html.escape(line) in box
    assert 'id="calls-filters"' in response.content.decode()  # the form is there to fix it


def test_the_invalid_cursor_message_is_the_apis(logged_in, runs):
    response = logged_in.get("/?cursor=garbage")
    assert response.status_code == 400 and "cursor: Invalid cursor." in response.content.decode()


def test_an_unknown_range_is_an_error_on_the_page(logged_in, runs):
    response = logged_in.get("/?range=5y")
    assert response.status_code == 400
    assert "range: Must be one of 1h, 3h, 24h, 7d, 1m, 6m." in response.content.decode()


# --- htmx ---------------------------------------------------------------------------------------


def test_an_htmx_request_from_the_form_gets_only_the_table(logged_in, runs):
    response = logged_in.get("/?agent=support&search=", HTTP_HX_TRIGGER="calls-filters", **HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="calls-table"') and "<html" not in body and "<form" not in body
    assert run_ids(response) == ["r3", "r1"]
    assert response["HX-Push-Url"] == f"/?app={runs.public_id}&agent=support"  # tidy: no empty fields
    assert "HX-Request" in response["Vary"]


def test_an_htmx_request_from_a_link_also_refreshes_the_form_out_of_band(logged_in, runs):
    body = logged_in.get("/?ordering=-cost", **HTMX).content.decode()
    assert "<html" not in body
    assert 'id="calls-filters"' in body and 'hx-swap-oob="true"' in body
    assert '<input type="hidden" name="ordering" value="-cost">' in body


def test_an_htmx_history_restore_gets_the_whole_page(logged_in, runs):
    body = logged_in.get("/", HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HTMX).content.decode()
    assert "<html" in body


def test_an_invalid_value_in_an_htmx_request_is_a_400_partial_with_the_message(logged_in, runs):
    response = logged_in.get("/?status=bogus", HTTP_HX_TRIGGER="calls-filters", **HTMX)
    assert response.status_code == 400
    assert "<html" not in response.content.decode() and "status: Select a valid choice." in response.content.decode()


def test_the_form_and_links_swap_the_table_and_push_the_url(logged_in, runs):
    body = logged_in.get("/?limit=1").content.decode()
    assert re.search(r'<form id="calls-filters"[^>]*hx-get="/" hx-target="#calls-table"[^>]*hx-push-url="true"', body)
    assert re.search(r'<a href="[^"]+"[^>]*hx-target="#calls-table"[^>]*hx-push-url="true"[^>]*>Next page', body)


def test_live_polls_the_first_page_only_when_on(logged_in, runs):
    assert 'hx-trigger="every 5s"' not in logged_in.get("/").content.decode()
    body = html.unescape(logged_in.get("/?agent=support&live=1").content.decode())
    poll = re.search(r'<div id="calls-table"[^>]*>', body).group(0)
    assert 'hx-trigger="every 5s"' in poll and f'hx-get="/?app={runs.public_id}&agent=support&live=1"' in poll
    assert 'name="live" value="1" data-autosubmit checked' in body
    later = logged_in.get(next_link(logged_in.get("/?live=1&limit=1")))
    assert 'hx-trigger="every 5s"' not in later.content.decode()


def test_a_poll_gets_the_table_without_pushing_a_url(logged_in, runs):
    response = logged_in.get("/?live=1", HTTP_HX_TRIGGER="calls-table", **HTMX)
    assert "HX-Push-Url" not in response and "<form" not in response.content.decode()
    assert run_ids(response) == ["r3", "r2", "r1"]


# --- untrusted values ---------------------------------------------------------------------------

ATTACKS = ["<script>alert(1)</script>", '<img src=x onerror="alert(1)">', "javascript:alert(1)"]
ESCAPED = ["&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"]


def test_client_values_render_escaped_everywhere(logged_in, acme_app):
    script, img, js = ATTACKS
    ingest(acme_app, llm(js, run_name=script, model=img, tags=ATTACKS, metadata={"agent": img, "user_email": script}))
    ingest(acme_app, llm("r-js", run_name=js, model=js, metadata={"agent": js, "user_id": img}))
    for query in ({}, {"agent": img}, {"model": img}, {"tags": script}, {"search": js}, {"user_email": script}):
        body = logged_in.get("/", query).content.decode()
        assert "<script>alert" not in body and "<img src" not in body and 'href="javascript:' not in body
        assert all(escaped in body for escaped in ESCAPED)
    # The run id is a path segment of our own link, never an href of its own.
    assert 'href="/runs/javascript:alert(1)/?app=' in logged_in.get("/").content.decode()


def test_a_run_id_with_a_slash_is_listed_without_a_link(logged_in, acme_app):
    ingest(acme_app, llm("a/b", run_name="slashed"))
    response = logged_in.get("/")
    assert response.status_code == 200 and 'title="slashed">slashed</span>' in response.content.decode()


# --- empty states -------------------------------------------------------------------------------


def test_an_app_without_runs_shows_how_to_send_one(logged_in, acme_app, acme_key):
    body = logged_in.get("/").content.decode()
    assert 'id="curl-example"' in body and acme_key[:12] in body
    assert 'id="calls-filters"' not in body


def test_filters_matching_nothing_offer_to_clear_them(logged_in, runs):
    body = html.unescape(logged_in.get("/?agent=nobody").content.decode())
    assert "No runs match these filters" in body
    assert f'<a href="/?app={runs.public_id}" ' in body and "Clear the filters" in body


def test_an_app_with_no_llm_calls_offers_every_type(logged_in, acme_app):
    ingest(acme_app, {"name": "tool_start", "run_id": "t1"})
    body = html.unescape(logged_in.get("/").content.decode())
    assert "No runs match these filters" in body
    assert f'<a href="/?app={acme_app.public_id}&type=" ' in body


def test_a_user_without_apps_is_told_what_to_do(client, db):
    client.force_login(UserFactory(username="loner"))
    response = client.get("/")
    assert response.status_code == 200 and "not a member of any organization" in response.content.decode()


def test_an_empty_app_polled_by_htmx_shows_the_empty_state(logged_in, acme_app):
    body = logged_in.get("/?live=1", HTTP_HX_TRIGGER="calls-table", **HTMX).content.decode()
    assert 'id="curl-example"' in body


# --- queries ------------------------------------------------------------------------------------


@pytest.fixture
def many(acme_app):
    ModelCost.objects.create(model="gpt-x", prompt_price=Decimal("0.01"), completion_price=Decimal("0.02"))
    ingest(acme_app, *(llm(f"q{i}", when=ago(minutes=i), tags=[f"t{i % 3}"],
                           metadata={"agent": f"agent-{i % 4}", "user_id": f"u{i}"}) for i in range(30)))  # fmt: skip
    return acme_app


# session, user, the user's apps, the page of runs (each with its cost: no query per row), the
# filter choices (types, agents and models in one query; the latest runs' tags in another)
PAGE_QUERIES = 6


@pytest.mark.parametrize(
    "query",
    ["", "agent=agent-1&tags=t1,t2&search=gpt&range=24h&min_latency_s=1", "ordering=-cost&status=success", "type="],
)
def test_the_query_count_is_pinned_and_the_same_for_a_later_page(logged_in, many, django_assert_num_queries, query):
    logged_in.get(f"/?app={many.public_id}")  # the session now remembers the app
    with django_assert_num_queries(PAGE_QUERIES):
        first_page = logged_in.get(f"/?{query}&limit=2")
    with django_assert_num_queries(PAGE_QUERIES):
        later = logged_in.get(next_link(first_page))
    assert len(run_ids(first_page)) == len(run_ids(later)) == 2
    assert set(run_ids(later)).isdisjoint(run_ids(first_page))


def test_an_htmx_form_request_skips_the_choices(logged_in, many, django_assert_num_queries):
    logged_in.get("/")
    with django_assert_num_queries(4):  # session, user, the user's apps, the page
        logged_in.get("/?limit=5", HTTP_HX_TRIGGER="calls-filters", **HTMX)


def test_a_repeated_parameter_shows_the_value_the_filter_used(logged_in, runs):
    response = logged_in.get("/?agent=sales&agent=support")
    assert run_ids(response) == ["r3", "r1"]
    assert '<option value="support" selected>' in response.content.decode()
