"""POST /api/run/compare: two runs side by side with their differences."""

import pytest

from tests.helpers import ingest


@pytest.fixture
def two_runs(acme_app):
    ingest(
        acme_app,
        {"name": "agent_start", "run_id": "a", "input": "q1", "timestamp": "2026-05-01T10:00:00Z"},
        {"name": "llm_call", "run_id": "a1", "parent_run_id": "a", "model": "m1", "total_tokens": 10,
         "timestamp": "2026-05-01T10:00:01Z"},
        {"name": "agent_end", "run_id": "a", "output": "x", "timestamp": "2026-05-01T10:00:02Z"},
        {"name": "agent_start", "run_id": "b", "input": "q1", "timestamp": "2026-05-01T11:00:00Z"},
        {"name": "llm_call", "run_id": "b1", "parent_run_id": "b", "model": "m1", "total_tokens": 10,
         "timestamp": "2026-05-01T11:00:01Z"},
        {"name": "tool_call", "run_id": "b2", "parent_run_id": "b", "run_name": "search",
         "timestamp": "2026-05-01T11:00:02Z"},
        {"name": "agent_end", "run_id": "b", "output": "y", "timestamp": "2026-05-01T11:00:05Z"},
    )  # fmt: skip


def test_it_shows_both_runs_and_what_differs(acme_client, two_runs):
    response = acme_client.post("/api/run/compare", {"run_id_a": "a", "run_id_b": "b"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["a"]["run_id"] == "a" and body["b"]["run_id"] == "b"
    assert len(body["b"]["children"]) == 2
    diffs = {d["field"]: (d["a"], d["b"]) for d in body["differences"]}
    assert diffs["output"] == ("x", "y")
    assert diffs["latency_s"] == (2.0, 5.0)
    assert diffs["tree"] == (["agent agent", "  llm m1"], ["agent agent", "  llm m1", "  tool search"])
    assert "input" not in diffs and "status" not in diffs


def test_identical_runs_have_no_differences(acme_client, two_runs):
    body = acme_client.post("/api/run/compare", {"run_id_a": "a1", "run_id_b": "b1"}, format="json").json()
    assert body["differences"] == []


def test_missing_fields_and_unknown_runs(acme_client, two_runs):
    missing = acme_client.post("/api/run/compare", {"run_id_a": "a"}, format="json")
    assert missing.status_code == 400 and missing.json()["error"].startswith("run_id_b: ")
    unknown = acme_client.post("/api/run/compare", {"run_id_a": "a", "run_id_b": "zzz"}, format="json")
    assert unknown.status_code == 404


def test_the_number_of_queries_is_bounded(acme_client, two_runs, django_assert_num_queries):
    acme_client.post("/api/run/compare", {"run_id_a": "a", "run_id_b": "b"}, format="json")
    # key lookup, the two subtrees (no priced runs, so no cost-row query)
    with django_assert_num_queries(3):
        acme_client.post("/api/run/compare", {"run_id_a": "a", "run_id_b": "b"}, format="json")


@pytest.mark.parametrize("body", [[], "x", 5, ["run_id_a"]])
def test_a_body_that_is_not_an_object_is_a_400(acme_client, two_runs, body):
    response = acme_client.post("/api/run/compare", body, format="json")
    assert response.status_code == 400, response.content
    assert "object" in response.json()["error"]
