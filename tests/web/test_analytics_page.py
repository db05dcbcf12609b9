"""The Analytics page (`/analytics/`): figures from analytics.selectors for the page's window and
filters, links to LLM Calls that list exactly what a row counts, errors, escaping, query counts."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest

from apps.costs.models import ModelCost
from tests.factories import UserFactory
from tests.helpers import ingest

DAY = "from=2026-05-01T00:00:00Z&to=2026-05-01T23:59:59Z"


@pytest.fixture
def logged_in(client, alice):
    client.force_login(alice)
    return client


def llm(run_id: str, when: str, **fields) -> dict:
    return {"name": "llm_call", "run_id": run_id, "model": "gpt-x", "prompt_tokens": 100, "completion_tokens": 100,
            "latency_s": 1, "timestamp": when, **fields}  # fmt: skip


@pytest.fixture
def day(acme_app):
    """2026-05-01: the agent `support` (a1, 4 s) with one LLM call (l1, gpt-x, $0.02), a failing
    claude-y call of the agent `sales` (l2, $0.04), a failing gpt-x call without agent (l3, $0.003)."""
    for model in ("gpt-x", "claude-y"):
        ModelCost.objects.create(model=model, prompt_price=Decimal("0.01"), completion_price=Decimal("0.02"))
    ingest(
        acme_app,
        {"name": "agent_start", "run_id": "a1", "timestamp": "2026-05-01T10:00:00Z",
         "metadata": {"agent": "support", "user_id": "u1"}},
        llm("l1", "2026-05-01T10:00:03Z", parent_run_id="a1", prompt_tokens=1000, completion_tokens=500, latency_s=2),
        {"name": "agent_end", "run_id": "a1", "timestamp": "2026-05-01T10:00:04Z"},
        llm("l2", "2026-05-01T11:00:06Z", model="claude-y", prompt_tokens=2000, completion_tokens=1000, latency_s=6,
            error="rate limited", metadata={"agent": "sales", "user_id": "u2"}),
        llm("l3", "2026-05-01T11:30:01Z", error={"message": "timeout after 30 s"}, tags=["beta"]),
        llm("other-day", "2026-05-03T10:00:00Z", model="claude-y"),
    )  # fmt: skip
    return acme_app


def body_of(response) -> str:
    return response.content.decode()


def totals(response) -> dict[str, str]:
    found = re.findall(r'<span class="label">(\w+)</span><span class="value">([^<]*)', body_of(response))
    return {label: value.strip() for label, value in found}


def chart(response) -> dict:
    return json.loads(re.search(r'<script id="analytics-data" type="application/json">(.*?)</script>',
                                body_of(response), re.S).group(1))  # fmt: skip


def table(response, title: str) -> list[list[str]]:
    """The cells of a table's rows (text only), under the <h2> that starts with `title`."""
    section = re.search(rf"<h2>{title}.*?</table>", body_of(response), re.S).group(0)
    rows = re.findall(r"<tr>(.*?)</tr>", section.split("<tbody>")[1], re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows]
    return [[html.unescape(re.sub(r"<[^>]+>", " ", cell)).split() for cell in row] for row in cells]


def row_link(response, title: str, name: str) -> str:
    section = re.search(rf"<h2>{title}.*?</table>", body_of(response), re.S).group(0)
    return html.unescape(re.search(rf'<a href="([^"]+)" title="{re.escape(html.escape(name))}">', section).group(1))


def run_ids(response) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'href="/runs/([^/"]+)/\?app=', body_of(response))]


# --- access ---------------------------------------------------------------------------------------


def test_it_requires_login(client, db):
    response = client.get("/analytics/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_owner_and_a_member_see_it(client, alice, charlie, day):
    for user in (alice, charlie):
        client.force_login(user)
        response = client.get(f"/analytics/?{DAY}")
        assert response.status_code == 200
        assert totals(response)["Runs"] == "4"


def test_another_organizations_app_is_a_404(logged_in, day, globex_app):
    assert logged_in.get(f"/analytics/?app={globex_app.public_id}").status_code == 404
    assert logged_in.get("/analytics/?app=not-a-uuid").status_code == 404


def test_another_organizations_runs_never_count(client, bob, day, globex_app):
    ingest(globex_app, llm("g1", "2026-05-01T10:00:00Z", model="globex-model"))
    client.force_login(bob)
    response = client.get(f"/analytics/?{DAY}")
    assert totals(response)["Runs"] == "1"
    assert "gpt-x" not in body_of(response) and "globex-model" in body_of(response)


def test_the_header_links_analytics_and_marks_it_active(logged_in, day):
    body = body_of(logged_in.get("/analytics/"))
    assert '<a href="/analytics/" class="active">Analytics</a>' in body
    assert '<a href="/analytics/">Analytics</a>' in body_of(logged_in.get("/"))


# --- figures -------------------------------------------------------------------------------------


def test_the_totals_charts_and_tables_of_a_day(logged_in, day):
    response = logged_in.get(f"/analytics/?{DAY}")
    assert totals(response) == {"Runs": "4", "Cost": "$0.0630", "Tokens": "4,700", "Errors": "2"}
    assert "(50.0%)" in body_of(response)
    data = chart(response)
    assert data["interval"] == "hour" and data["group_by"] == "model" and len(data["x"]) == 24
    assert data["x"][0] == int(datetime(2026, 5, 1, tzinfo=UTC).timestamp())
    assert [(s["label"], round(sum(s["values"]), 6)) for s in data["cost"]] == [("claude-y", 0.04), ("gpt-x", 0.023)]
    assert data["runs"][10:12] == [2, 2] and data["errors"][10:12] == [0, 2]
    assert data["prompt_tokens"][10:12] == [1000, 2100] and data["completion_tokens"][10:12] == [500, 1100]
    assert data["from"][11] == "2026-05-01T11:00:00+00:00" and data["to"][11] == "2026-05-01T11:59:59.999999+00:00"
    assert data["to"][-1] == "2026-05-01T23:59:59+00:00"  # the last bucket ends with the window
    models = table(response, "Models")
    assert models == [
        [["claude-y"], ["1"], ["100.0%"], ["6.00", "·", "6.00", "·", "6.00"], ["$0.0400", "$0.0400", "each"],
         ["2,000", "in", "1,000", "out"], ["1"]],
        [["gpt-x"], ["2"], ["50.0%"], ["1.50", "·", "1.95", "·", "1.99"], ["$0.0230", "$0.0115", "each"],
         ["1,100", "in", "600", "out"], ["1"]],  # l1 inherits its agent run's user
    ]  # fmt: skip
    agents = table(response, "Agents")
    assert [row[:3] + row[4:6] for row in agents] == [
        [["sales"], ["1"], ["100.0%"], ["$0.0400", "$0.0400", "each"], ["1.0", "per", "run"]],
        [["support"], ["1"], ["0%"], ["$0.0200", "$0.0200", "each"], ["1.0", "per", "run"]],
    ]
    errors = table(response, "Top errors")
    assert [row[0] for row in errors] == [["timeout", "after", "<n>", "s"], ["rate", "limited"]]
    assert "p50 6.00 s" in body_of(response)  # the latency bars


def test_group_by_agent_and_day_intervals(logged_in, day):
    response = logged_in.get(f"/analytics/?group_by=agent&interval=day&{DAY}")
    data = chart(response)
    assert data["group_by"] == "agent" and data["interval"] == "day" and len(data["x"]) == 1
    assert [(s["label"], s["key"]) for s in data["cost"]] == [("sales", "sales"), ("support", "support"),
                                                             ("(none)", None)]  # fmt: skip
    assert "<h2>Latency by agent" in body_of(response) and "Cost per day by agent" in body_of(response)
    assert '<option value="agent" selected>' in body_of(response)


@pytest.mark.parametrize(
    ("query", "runs", "cost"),
    [
        ("model=gpt-x", "2", "$0.0230"),
        ("agent=support", "2", "$0.0200"),
        ("status=error", "2", "$0.0430"),
        ("type=agent", "1", "$0"),
        ("tags=beta", "1", "$0.00300"),
        ("user_id=u2", "1", "$0.0400"),
        ("from=2026-05-01T11:00:00Z&to=2026-05-01T23:00:00Z", "2", "$0.0430"),
    ],
)
def test_the_filters_reach_the_selectors(logged_in, day, query, runs, cost):
    response = logged_in.get(f"/analytics/?{DAY}&{query}")
    assert response.status_code == 200
    assert (totals(response)["Runs"], totals(response)["Cost"]) == (runs, cost)


def test_the_window_defaults_to_the_last_7_days_and_the_presets_set_it(logged_in, acme_app):
    now = datetime.now(UTC)
    ages = {"m30": timedelta(minutes=30), "d3": timedelta(days=3), "d20": timedelta(days=20)}
    ingest(acme_app, *(llm(name, (now - age).isoformat()) for name, age in ages.items()))
    default = logged_in.get("/analytics/")
    assert totals(default)["Runs"] == "2"
    assert 'class="active" aria-current="true">7D</a>' in body_of(default)
    for preset, runs in (("1h", "1"), ("7d", "2"), ("1m", "3")):
        response = logged_in.get(f"/analytics/?range={preset}")
        assert totals(response)["Runs"] == runs, preset
        assert f'class="active" aria-current="true">{preset.upper()}</a>' in body_of(response)
    assert chart(logged_in.get("/analytics/?range=24h"))["interval"] == "hour"
    assert chart(logged_in.get("/analytics/?range=1m"))["interval"] == "day"


def test_a_preset_link_keeps_the_filters_and_drops_a_custom_window(logged_in, day):
    body = html.unescape(body_of(logged_in.get(f"/analytics/?group_by=agent&model=gpt-x&{DAY}")))
    assert f'href="/analytics/?app={day.public_id}&group_by=agent&range=24h&model=gpt-x"' in body


# --- links to LLM Calls ----------------------------------------------------------------------------


def test_table_rows_link_to_llm_calls_with_their_filters(logged_in, day):
    response = logged_in.get(f"/analytics/?{DAY}")
    gpt = row_link(response, "Models", "gpt-x")
    query = parse_qs(urlsplit(gpt).query, keep_blank_values=True)
    assert urlsplit(gpt).path == "/" and query["model"] == ["gpt-x"] and "type" not in query  # LLM calls
    assert query["from"] == ["2026-05-01T00:00:00+00:00"] and query["to"] == ["2026-05-01T23:59:59+00:00"]
    assert run_ids(logged_in.get(gpt)) == ["l3", "l1"]
    assert run_ids(logged_in.get(row_link(response, "Models", "claude-y"))) == ["l2"]  # not the other day's
    support = row_link(response, "Agents", "support")
    assert parse_qs(urlsplit(support).query, keep_blank_values=True)["root"] == ["true"]
    assert run_ids(logged_in.get(support)) == ["a1"]  # the agent's root runs: what the table counts
    errors = re.findall(r'<td class="message"><a href="([^"]+)"', body_of(response))
    assert [run_ids(logged_in.get(html.unescape(url))) for url in errors] == [["l3"], ["l2"]]
    assert f'href="/runs/l2/?app={day.public_id}"' in body_of(response)  # the example run
    every = html.unescape(re.search(r'<a class="open-calls" href="([^"]+)"', body_of(response)).group(1))
    assert run_ids(logged_in.get(every)) == ["l3", "l2", "l1", "a1"]


def test_links_carry_the_pages_filters(logged_in, day):
    response = logged_in.get(f"/analytics/?{DAY}&tags=beta&model=gpt-x&status=error&group_by=agent&tz=UTC")
    query = parse_qs(urlsplit(chart(response)["calls_url"]).query, keep_blank_values=True)
    assert query == {"app": [str(day.public_id)], "type": [""], "status": ["error"], "model": ["gpt-x"],
                     "tags": ["beta"]}  # fmt: skip
    assert run_ids(logged_in.get(row_link(response, "Models", "gpt-x"))) == ["l3"]


def test_a_chart_buckets_link_lists_its_runs(logged_in, day):
    """What analytics.js builds on a click: calls_url + the bucket's from/to (+ the key, or status=error)."""
    data = chart(logged_in.get(f"/analytics/?{DAY}"))
    base, i = data["calls_url"], 11
    bucket = {"from": data["from"][i], "to": data["to"][i]}
    assert run_ids(logged_in.get(base, {**parse_qs(urlsplit(base).query), **bucket})) == ["l3", "l2"]
    assert run_ids(logged_in.get(base, {**parse_qs(urlsplit(base).query), **bucket, "model": "gpt-x"})) == ["l3"]


# --- invalid values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query", ["status=bogus", "from=yesterday", "tz=Mars/Olympus", "interval=week", "group_by=planet",
              "from=2026-05-02T00:00Z&to=2026-05-01T00:00Z", "interval=hour&from=2025-01-01T00:00Z"],
)  # fmt: skip
def test_an_invalid_value_shows_the_apis_message_with_a_400(logged_in, day, query):
    api = logged_in.get(f"/api/analytics/usage?app_id={day.public_id}&{query}")
    assert api.status_code == 400
    response = logged_in.get(f"/analytics/?{query}")
    assert response.status_code == 400
    box = re.search(r'<div class="form-error" role="alert">(.*?)</div>\s', body_of(response), re.S).group(1)
    for line in api.json()["error"].split("; "):
        assert html.escape(line) in box
    assert 'id="analytics-filters"' in body_of(response) and "analytics-data" not in body_of(response)


def test_an_unknown_range_is_an_error(logged_in, day):
    response = logged_in.get("/analytics/?range=5y")
    assert response.status_code == 400 and "range: Must be one of 1h, 3h, 24h, 7d, 1m, 6m." in body_of(response)


# --- untrusted values ----------------------------------------------------------------------------

ATTACKS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]


@pytest.mark.parametrize("group_by", ["model", "agent"])
def test_model_agent_and_error_text_render_escaped(logged_in, acme_app, group_by):
    script, img = ATTACKS
    for model in ATTACKS:
        ModelCost.objects.create(model=model, prompt_price=Decimal("0.01"), completion_price=Decimal("0.02"))
    ingest(
        acme_app,
        llm("x1", "2026-05-01T10:00:00Z", model=script, error=img, metadata={"agent": img}),
        llm("x2", "2026-05-01T10:00:00Z", model=img, error={"message": script}, metadata={"agent": script}),
    )
    response = logged_in.get(f"/analytics/?{DAY}&group_by={group_by}")
    body = body_of(response)
    assert response.status_code == 200
    assert "<script>alert" not in body and "<img src" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "&lt;img src=x onerror=alert(1)&gt;" in body
    assert {s["label"] for s in chart(response)["cost"]} == {script, img}  # intact in the JSON, escaped in the HTML
    filtered = body_of(logged_in.get("/analytics/", {"model": script, "agent": img, "from": "2026-05-01T00:00Z"}))
    assert "<script>alert" not in filtered and "<img src" not in filtered


# --- empty states ----------------------------------------------------------------------------------


def test_an_app_without_runs_shows_how_to_send_one(logged_in, acme_app, acme_key):
    body = body_of(logged_in.get("/analytics/"))
    assert 'id="curl-example"' in body and acme_key[:12] in body
    assert "analytics-data" not in body and "uPlot" not in body


def test_a_window_without_runs_says_so(logged_in, day):
    body = html.unescape(body_of(logged_in.get("/analytics/?from=2020-01-01T00:00Z&to=2020-01-02T00:00Z")))
    assert "No runs in this window match these filters" in body and "analytics-data" not in body
    assert f'href="/analytics/?app={day.public_id}&range=6m"' in body


def test_a_user_without_apps_is_told_what_to_do(client, db):
    client.force_login(UserFactory(username="loner"))
    response = client.get("/analytics/")
    assert response.status_code == 200 and "not a member of any organization" in body_of(response)


# --- queries ---------------------------------------------------------------------------------------

# session, user, the user's apps, the filter choices (types, agents and models; the latest runs'
# tags), then analytics.selectors: usage (1), model_stats (2 on SQLite: the percentiles; 1 on
# PostgreSQL), agent_stats (3 on SQLite; 2), top_errors (1); on PostgreSQL, work_mem (1).
PAGE_QUERIES = {"sqlite": 12, "postgresql": 11}


@pytest.mark.parametrize(
    "query", ["", f"{DAY}&group_by=agent&interval=day", "range=6m&model=gpt-x&tags=beta&tz=Europe/Paris"]
)
def test_the_query_count_is_pinned(logged_in, day, django_assert_num_queries, query):
    from django.db import connection

    ingest(day, *(llm(f"q{i}", f"2026-05-01T0{i % 9}:00:00Z", model=f"m{i % 5}", metadata={"agent": f"a{i % 3}"},
                      error="boom" if i % 4 == 0 else None) for i in range(40)))  # fmt: skip
    logged_in.get(f"/analytics/?app={day.public_id}")  # the session now remembers the app
    with django_assert_num_queries(PAGE_QUERIES[connection.vendor]):
        response = logged_in.get(f"/analytics/?{query}")
    assert response.status_code == 200
