"""GET /api/analytics/*: the runs API's auth, scoping, filters and 400s; JSON shapes; pinned query counts."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.analytics.conftest import WINDOW

ENDPOINTS = ["usage", "models", "agents", "errors"]


def get(client, endpoint: str, query: str = WINDOW, status: int = 200) -> dict:
    response = client.get(f"/api/analytics/{endpoint}?{query}")
    assert response.status_code == status, response.content
    return response.json()


def total_runs(client, query: str) -> int:
    return sum(b["runs"] for b in get(client, "usage", f"{WINDOW}&{query}")["buckets"])


def test_usage_json(acme_client, dataset):
    buckets = get(acme_client, "usage", WINDOW + "&interval=day&tz=America/New_York")["buckets"]
    assert buckets[0]["start"] == "2026-04-30T00:00:00-04:00"
    assert {"start": "2026-05-01T00:00:00-04:00", "key": "gpt-4o", "runs": 3, "cost": 0.032, "prompt_tokens": 1600,
            "completion_tokens": 1600, "errors": 2} in buckets  # fmt: skip


def test_models_agents_and_errors_json(acme_client, dataset):
    models = get(acme_client, "models")["models"]
    assert [(m["model"], m["calls"], m["cost"], m["latency_p50_s"]) for m in models] == [
        ("claude", 2, 0.25, 4.0), ("gpt-4o", 3, 0.032, 2.0),
    ]  # fmt: skip
    (agent,) = get(acme_client, "agents")["agents"]
    assert (agent["agent"], agent["runs"], agent["avg_llm_calls"], agent["cost"]) == ("support", 2, 1.5, 0.08)
    errors = get(acme_client, "errors")["errors"]
    assert errors[0] == {"message": "Rate limit reached for gpt-4o in org-<id> on <n>", "count": 2,
                         "first_seen": "2026-05-01T10:00:02+00:00", "last_seen": "2026-05-02T03:30:00+00:00",
                         "model": "gpt-4o", "agent": "support", "example_run_id": "l4"}  # fmt: skip


@pytest.mark.parametrize(
    "query,runs",
    [
        ("agent=support", 5),  # a1, l1, l2, a2, l3
        ("model=claude", 2),
        ("type=agent", 2),
        ("status=error", 3),
        ("tags=beta", 1),
        ("user_id=u1", 4),  # a1, l1, l2 (inherited), l5
        ("user_email=u2@example.com", 2),  # a2, l3
        ("from=2026-05-02T00:00:00Z", 4),  # l4, a2, l3, l5 (the later `from` wins over WINDOW's)
        ("to=2026-05-01T23:59:59Z", 3),  # a1, l1, l2
        ("", 7),
    ],
)
def test_every_filter_passes_through(acme_client, dataset, query, runs):
    assert total_runs(acme_client, query) == runs


def test_the_filters_reach_every_endpoint(acme_client, dataset):
    assert [m["model"] for m in get(acme_client, "models", WINDOW + "&model=claude")["models"]] == ["claude"]
    assert get(acme_client, "agents", WINDOW + "&user_id=u3")["agents"] == []
    assert [e["example_run_id"] for e in get(acme_client, "errors", WINDOW + "&model=claude")["errors"]] == ["l5"]


@pytest.mark.parametrize(
    "query,message",
    [
        ("tz=Mars/Olympus", "tz: Not a known IANA time zone (e.g. Europe/Paris)."),
        ("tz=../../etc/passwd", "tz: Not a known IANA time zone (e.g. Europe/Paris)."),
        ("interval=week", "interval: Select a valid choice. week is not one of the available choices."),
        ("group_by=team", "group_by: Select a valid choice. team is not one of the available choices."),
        ("from=2026-05-03T00:00:00Z&to=2026-05-01T00:00:00Z", "from: Must not be after `to` (default: now)."),
        ("from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&interval=hour", "interval: At most 5000 intervals"),
        ("to=0001-01-01T01:02:00Z", "to: Must be from 1970-01-01 to before 9000-01-01."),  # was a 500
        ("from=9999-12-31T00:00:00Z&to=9999-12-31T23:00:00Z&tz=Pacific/Kiritimati", "from: Must be from 1970"),
    ],
)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_bad_values_are_400s_naming_the_parameter(acme_client, acme_app, endpoint, query, message):
    assert get(acme_client, endpoint, query, status=400)["error"].startswith(message)


@pytest.mark.parametrize("query", ["from=yesterday", "status=bogus", "type=Not A Type", "app_id=nope"])
def test_the_runs_filters_fail_exactly_as_in_the_runs_api(acme_client, acme_app, query):
    expected = acme_client.get(f"/api/run/?{query}").json()
    assert expected["error"].startswith(query.split("=")[0] + ": ")
    for endpoint in ENDPOINTS:
        assert get(acme_client, endpoint, query, status=400) == expected


def test_another_organizations_app_is_a_404(globex_client, dataset):
    for endpoint in ENDPOINTS:
        response = globex_client.get(f"/api/analytics/{endpoint}?app_id={dataset.public_id}")
        assert response.status_code == 404 and response.json() == {"error": "No such app."}


def test_a_key_reads_only_its_own_app(globex_client, dataset):
    assert total_runs(globex_client, "") == 0
    assert get(globex_client, "models")["models"] == get(globex_client, "errors")["errors"] == []


def test_a_session_user_reads_the_app_they_name(client, alice, dataset):
    client.force_login(alice)
    assert sum(b["runs"] for b in get(client, "usage", f"{WINDOW}&app_id={dataset.public_id}")["buckets"]) == 7


def test_no_credentials_is_a_401(client, dataset):
    assert client.get("/api/analytics/usage").status_code == 401


def test_both_spellings_answer(acme_client, dataset):
    assert acme_client.get(f"/api/analytics/models/?{WINDOW}").json() == get(acme_client, "models")


# The key's lookup (1), then the selector: usage, models and errors are one query each, agents two
# (its root runs' counts and percentiles, every run's sums); on SQLite, models and agents one more
# (the latencies for the exact percentiles); on PostgreSQL, one more: work_mem for the transaction.
SELECTOR_QUERIES = {"usage": 1, "models": 1, "agents": 2, "errors": 1}
SQLITE_PERCENTILES = {"models", "agents"}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_each_endpoint_has_a_fixed_number_of_queries(acme_client, dataset, endpoint, django_assert_num_queries):
    get(acme_client, endpoint)  # the key's last_used_at is written on its first use
    expected = 1 + SELECTOR_QUERIES[endpoint] + (connection.vendor == "postgresql" or endpoint in SQLITE_PERCENTILES)
    with django_assert_num_queries(expected):
        get(acme_client, endpoint, WINDOW + "&group_by=user&interval=hour&tz=Europe/Paris")
    with django_assert_num_queries(expected + 1):  # + the named app's lookup
        get(acme_client, endpoint, f"{WINDOW}&app_id={dataset.public_id}")
