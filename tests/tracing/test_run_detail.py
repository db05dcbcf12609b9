"""GET /api/run/<run_id>/: the run, its events and its whole trace with subtree totals."""

from decimal import Decimal

import pytest

from apps.costs.models import ModelCost
from tests.helpers import ingest


@pytest.fixture
def trace(acme_app):
    ModelCost.objects.create(model="m", prompt_price=Decimal("0.001"), completion_price=Decimal("0.002"))
    ingest(
        acme_app,
        {"name": "agent_start", "run_id": "root", "timestamp": "2026-05-01T10:00:00Z", "metadata": {"agent": "bot"}},
        {"name": "chain_start", "run_id": "c1", "parent_run_id": "root", "timestamp": "2026-05-01T10:00:01Z"},
        {"name": "llm_call", "run_id": "l1", "parent_run_id": "c1", "timestamp": "2026-05-01T10:00:03Z",
         "latency_s": 1, "model": "m", "prompt_tokens": 1000, "completion_tokens": 500},
        {"name": "llm_call", "run_id": "l2", "parent_run_id": "c1", "timestamp": "2026-05-01T10:00:05Z",
         "latency_s": 1, "model": "m", "prompt_tokens": 2000, "completion_tokens": 0},
        {"name": "tool_call", "run_id": "t1", "parent_run_id": "root", "timestamp": "2026-05-01T10:00:06Z",
         "latency_s": 0.5, "error": {"type": "KeyError", "message": "x"}},
        {"name": "note", "run_id": "root", "timestamp": "2026-05-01T10:00:02Z", "text": "halfway"},
        {"name": "agent_end", "run_id": "root", "timestamp": "2026-05-01T10:00:07Z", "output": "done"},
        {"name": "chain_start", "run_id": "elsewhere", "timestamp": "2026-05-01T10:00:00Z"},
    )  # fmt: skip


def test_it_returns_the_run_with_its_events_oldest_first(acme_client, trace):
    run = acme_client.get("/api/run/root/").json()
    assert (run["run_id"], run["status"], run["output"], run["agent"]) == ("root", "success", "done", "bot")
    assert [e["name"] for e in run["events"]] == ["agent_start", "note", "agent_end"]
    assert run["events"][1]["payload"]["text"] == "halfway"


def test_it_returns_the_whole_trace_with_totals(acme_client, trace):
    root = acme_client.get("/api/run/root").json()
    assert [c["run_id"] for c in root["children"]] == ["c1", "t1"]
    chain, tool = root["children"]
    assert [c["run_id"] for c in chain["children"]] == ["l1", "l2"]
    assert tool["status"] == "error" and tool["children"] == []
    assert chain["children"][0]["cost"] == 0.002 and chain["children"][1]["cost"] == 0.002
    assert (chain["subtree_tokens"], chain["subtree_cost"]) == (3500, 0.004)
    assert (root["subtree_tokens"], root["subtree_cost"]) == (3500, 0.004)
    assert chain["children"][0]["cost_row"]["model"] == "m"
    assert root["cost_row"] is None


def test_a_child_run_can_be_opened_as_its_own_trace(acme_client, trace):
    chain = acme_client.get("/api/run/c1/").json()
    assert chain["parent_run_id"] == "root" and len(chain["children"]) == 2


def test_an_unknown_run_is_a_404(acme_client, trace):
    assert acme_client.get("/api/run/nope/").status_code == 404


def test_the_number_of_queries_is_bounded_however_big_the_trace(acme_client, acme_app, django_assert_num_queries):
    events = [{"name": "chain_start", "run_id": "r0", "timestamp": "2026-05-01T10:00:00Z"}]
    events += [
        {"name": "llm_call", "run_id": f"r{n}", "parent_run_id": f"r{(n - 1) // 3}", "model": "m",
         "timestamp": "2026-05-01T10:00:01Z", "total_tokens": 1}
        for n in range(1, 400)
    ]  # fmt: skip
    ModelCost.objects.create(model="m", prompt_price=Decimal("1"), completion_price=Decimal("1"))
    ingest(acme_app, *events)
    acme_client.get("/api/run/r0/")  # key's last_used_at
    # key lookup, the recursive subtree, the root's events and feedback, the cost rows
    with django_assert_num_queries(5):
        root = acme_client.get("/api/run/r0/").json()
    assert root["subtree_tokens"] == 399


def test_a_cycle_in_stored_data_does_not_loop(acme_client, acme_app):
    from apps.tracing.models import Run

    ingest(
        acme_app, {"name": "chain_start", "run_id": "a"}, {"name": "chain_start", "run_id": "b", "parent_run_id": "a"}
    )
    Run.objects.filter(run_id="a").update(parent_run_id="b")  # cannot happen through the API
    response = acme_client.get("/api/run/a/")
    assert response.status_code == 200
    assert [c["run_id"] for c in response.json()["children"]] == ["b"]


def test_only_the_root_carries_events_and_feedback(acme_client, trace):
    root = acme_client.get("/api/run/root/").json()
    chain = root["children"][0]
    assert "events" in root and "feedback" in root
    assert "events" not in chain and "feedback" not in chain and "children" in chain


def test_each_node_reads_as_the_runs_list_shows_the_same_run(acme_client, acme_app, trace):
    """The trace loads its rows by hand (traces._hydrate): same types and values as the ORM path."""
    ingest(acme_app, {"name": "saved", "run_id": "l1"})
    listed = {run["run_id"]: run for run in acme_client.get("/api/run/").json()["results"]}
    root = acme_client.get("/api/run/root/").json()
    for node in [root, *root["children"], *root["children"][0]["children"]]:
        assert {key: node[key] for key in listed[node["run_id"]]} == listed[node["run_id"]]
    assert root["children"][0]["children"][0]["saved"] is True and root["saved"] is False
    assert root["started_at"] == "2026-05-01T10:00:00Z" and root["metadata"]["agent"] == "bot"
