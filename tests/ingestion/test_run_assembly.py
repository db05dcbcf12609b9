"""Run assembly through POST /api/report: SPEC §2, in any order and across batches."""

import itertools
from decimal import Decimal

import pytest

from apps.costs.models import ModelCost
from apps.tracing.models import Event, Run
from tests.helpers import report, run

T0 = "2026-05-29T08:42:11.123Z"


def test_the_seed_curl_example_creates_a_started_agent_run(acme_client, acme_app):
    # The body of the curl example in the original event-reporting document, verbatim.
    body = b"""{"events": [{
    "name": "agent_start",
    "type": "agent",
    "run_id": "01HXYZ...",
    "timestamp": "2026-05-29T08:42:11.123Z",
    "input": {"prompt": "..."},
    "metadata": {"agent": "claims-approval"}
  }]}"""
    response = acme_client.post("/api/report", body, content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "rejected": 0, "errors": []}
    agent = run("01HXYZ...")
    assert (agent.app, agent.type, agent.status, agent.agent, agent.name) == (
        acme_app,
        "agent",
        "started",
        "claims-approval",
        "claims-approval",
    )
    assert agent.input == {"prompt": "..."}
    assert agent.started_at.isoformat() == "2026-05-29T08:42:11.123000+00:00"


def test_a_full_trace_nests_and_inherits_agent_and_user(acme_client):
    ModelCost.objects.create(model="acme-gpt", prompt_price=Decimal("0.0025"), completion_price=Decimal("0.01"))
    meta = {"agent": "support", "user_id": "u-1", "user_email": "u1@example.com"}
    report(
        acme_client,
        {
            "name": "agent_start",
            "run_id": "a",
            "timestamp": "2026-05-29T08:00:00Z",
            "metadata": meta,
            "input": {"q": "hi"},
        },
        {
            "name": "chain_start",
            "run_id": "c",
            "parent_run_id": "a",
            "timestamp": "2026-05-29T08:00:01Z",
            "run_name": "answer",
        },
        {
            "name": "tool_start",
            "run_id": "t",
            "parent_run_id": "c",
            "timestamp": "2026-05-29T08:00:02Z",
            "run_name": "search",
        },
        {"name": "tool_end", "run_id": "t", "timestamp": "2026-05-29T08:00:03.500Z", "output": [1, 2]},
        {
            "name": "llm_start",
            "run_id": "l",
            "parent_run_id": "c",
            "timestamp": "2026-05-29T08:00:04Z",
            "model": "acme-gpt",
            "input": [{"role": "user", "content": "hi"}],
        },
        {
            "name": "llm_end",
            "run_id": "l",
            "timestamp": "2026-05-29T08:00:06Z",
            "prompt_tokens": 1000,
            "completion_tokens": 200,
            "output": "hello",
        },
        {"name": "chain_end", "run_id": "c", "timestamp": "2026-05-29T08:00:07Z"},
        {"name": "agent_end", "run_id": "a", "timestamp": "2026-05-29T08:00:08Z", "output": "done"},
    )
    runs = {r.run_id: r for r in Run.objects.with_cost()}
    assert {k: r.parent_run_id for k, r in runs.items()} == {"a": None, "c": "a", "t": "c", "l": "c"}
    assert {r.agent for r in runs.values()} == {"support"}
    assert {r.user_email for r in runs.values()} == {"u1@example.com"}
    assert {k: r.status for k, r in runs.items()} == dict.fromkeys("actl", "success")
    assert {k: r.latency_s for k, r in runs.items()} == {"a": 8.0, "c": 6.0, "t": 1.5, "l": 2.0}
    assert {k: r.name for k, r in runs.items()} == {"a": "support", "c": "answer", "t": "search", "l": "acme-gpt"}
    llm = runs["l"]
    assert (llm.prompt_tokens, llm.completion_tokens, llm.total_tokens) == (1000, 200, 1200)
    assert llm.cost == Decimal("0.0045")  # 1000/1000*0.0025 + 200/1000*0.01
    assert llm.input == [{"role": "user", "content": "hi"}] and llm.output == "hello"
    assert Event.objects.count() == 8


START = {
    "name": "llm_start",
    "run_id": "r1",
    "timestamp": "2026-05-29T08:00:00Z",
    "model": "m",
    "input": "question",
    "metadata": {"agent": "a1", "user_id": "u1"},
    "tags": ["x"],
}
END = {
    "name": "llm_end",
    "run_id": "r1",
    "timestamp": "2026-05-29T08:00:03Z",
    "output": "answer",
    "prompt_tokens": 10,
    "completion_tokens": 5,
    "tags": ["y"],
}
ERROR = {
    "name": "llm_error",
    "run_id": "r1",
    "timestamp": "2026-05-29T08:00:04Z",
    "error": {"type": "RateLimit", "message": "slow down"},
}


def _final_state(r: Run) -> tuple:
    return (
        r.status,
        r.started_at,
        r.ended_at,
        r.latency_s,
        r.input,
        r.output,
        r.model,
        r.agent,
        r.user_id,
        r.total_tokens,
        sorted(r.tags),
        r.has_start,
        r.has_end,
    )


@pytest.mark.parametrize("order", list(itertools.permutations([START, END])), ids=["start-end", "end-start"])
@pytest.mark.parametrize("split", [True, False], ids=["two-requests", "one-request"])
def test_start_and_end_in_any_order_give_the_same_run(acme_client, order, split):
    if split:
        for event in order:
            report(acme_client, event)
    else:
        report(acme_client, *order)
    r = run("r1")
    assert _final_state(r) == (
        "success",
        r.started_at,
        r.ended_at,
        3.0,
        "question",
        "answer",
        "m",
        "a1",
        "u1",
        15,
        ["x", "y"],
        True,
        True,
    )
    assert r.started_at.isoformat() == "2026-05-29T08:00:00+00:00"


@pytest.mark.parametrize("order", list(itertools.permutations([START, END, ERROR])))
def test_an_error_wins_whatever_the_order(acme_client, order):
    for event in order:
        report(acme_client, event)
    r = run("r1")
    assert r.status == "error"
    assert r.error == {"type": "RateLimit", "message": "slow down"}
    assert r.input == "question" and r.output == "answer"


def test_an_end_before_its_start_shows_the_run_at_once(acme_client):
    report(acme_client, END)
    r = run("r1")
    assert (r.status, r.has_start, r.latency_s, r.output) == ("success", False, None, "answer")
    report(acme_client, START)
    assert run("r1").status == "success"  # never back to started


def test_a_later_event_never_erases_a_value_with_null(acme_client):
    report(acme_client, START, END)
    report(
        acme_client,
        {
            "name": "llm_end",
            "run_id": "r1",
            "timestamp": "2026-05-29T08:00:03Z",
            "output": None,
            "model": None,
            "input": None,
            "metadata": {"agent": None},
            "id": "late",
        },
    )
    r = run("r1")
    assert (r.output, r.model, r.input, r.agent) == ("answer", "m", "question", "a1")


def test_a_one_shot_call_is_started_and_ended_by_one_event(acme_client):
    report(
        acme_client,
        {"name": "llm_call", "run_id": "c1", "timestamp": "2026-05-29T08:00:05Z", "latency_s": 1.25, "model": "m"},
        {"name": "tool_call", "run_id": "c2", "timestamp": "2026-05-29T08:00:05Z", "duration_ms": 500},
        {
            "name": "tool_call",
            "run_id": "c3",
            "timestamp": "2026-05-29T08:00:05Z",
            "started_at": "2026-05-29T08:00:02Z",
        },
        {"name": "llm_call", "run_id": "c4", "timestamp": "2026-05-29T08:00:05Z"},
    )
    assert {r.run_id: (r.status, r.latency_s, r.type) for r in Run.objects.all()} == {
        "c1": ("success", 1.25, "llm"),
        "c2": ("success", 0.5, "tool"),
        "c3": ("success", 3.0, "tool"),
        "c4": ("success", 0.0, "llm"),
    }


def test_display_name_follows_the_rule(acme_client):
    report(
        acme_client,
        {"name": "chain_start", "run_id": "n1", "run_name": "explicit", "metadata": {"run_name": "meta"}},
        {"name": "chain_start", "run_id": "n2", "metadata": {"run_name": "meta"}},
        {"name": "agent_start", "run_id": "n3", "metadata": {"agent": "the-agent"}},
        {"name": "llm_start", "run_id": "n4", "model": "gpt-x"},
        {"name": "retriever_start", "run_id": "n5"},
    )
    assert dict(Run.objects.values_list("run_id", "name")) == {
        "n1": "explicit",
        "n2": "meta",
        "n3": "the-agent",
        "n4": "gpt-x",
        "n5": "retriever",
    }


def test_type_defaults_to_the_name_prefix_and_can_be_given(acme_client):
    report(
        acme_client,
        {"name": "embedding_start", "run_id": "e1"},
        {"name": "step_start", "type": "chain", "run_id": "e2"},
    )
    assert dict(Run.objects.values_list("run_id", "type")) == {"e1": "embedding", "e2": "chain"}


def test_a_child_stored_before_its_parent_inherits_when_the_parent_arrives(acme_client):
    report(acme_client, {"name": "tool_start", "run_id": "kid", "parent_run_id": "mum"})
    assert run("kid").agent is None
    report(acme_client, {"name": "agent_start", "run_id": "mum", "metadata": {"agent": "boss", "user_id": "u9"}})
    kid = run("kid")
    assert (kid.agent, kid.user_id) == ("boss", "u9")


def test_a_childs_own_agent_beats_the_parents(acme_client):
    report(acme_client, {"name": "agent_start", "run_id": "p", "metadata": {"agent": "outer"}})
    report(acme_client, {"name": "agent_start", "run_id": "k", "parent_run_id": "p", "metadata": {"agent": "inner"}})
    assert run("k").agent == "inner"


def test_saved_works_before_and_after_the_run_arrives(acme_client):
    report(acme_client, {"name": "saved", "run_id": "early"})
    assert not Run.objects.filter(run_id="early").exists()
    report(acme_client, {"name": "chain_start", "run_id": "early"}, {"name": "chain_start", "run_id": "late"})
    report(acme_client, {"name": "saved", "run_id": "late"})
    assert dict(Run.objects.values_list("run_id", "saved")) == {"early": True, "late": True}


def test_custom_events_are_stored_on_their_run(acme_client):
    report(
        acme_client,
        {"name": "chain_start", "run_id": "r"},
        {"name": "retry", "run_id": "r", "attempt": 2},
        {"name": "chat", "role": "user", "content": "hi"},
        {"name": "feedback", "run_id": "r", "rating": "positive"},
    )
    assert sorted(Event.objects.filter(run_id="r").values_list("name", flat=True)) == [
        "chain_start",
        "feedback",
        "retry",
    ]
    assert Event.objects.get(name="retry").payload["attempt"] == 2
    assert Run.objects.count() == 1


def test_tags_from_top_level_and_metadata_are_merged(acme_client):
    report(acme_client, {"name": "chain_start", "run_id": "t", "tags": ["a", "b"], "metadata": {"tags": ["b", "c"]}})
    assert run("t").tags == ["a", "b", "c"]


def test_a_timestamp_without_zone_is_utc_and_a_missing_one_is_the_receive_time(acme_client):
    report(
        acme_client,
        {"name": "chain_start", "run_id": "z", "timestamp": "2026-05-29T10:00:00"},
        {"name": "chain_start", "run_id": "n"},
    )
    assert run("z").started_at.isoformat() == "2026-05-29T10:00:00+00:00"
    assert run("n").started_at.year >= 2026


def test_end_with_status_error_and_error_string(acme_client):
    report(
        acme_client,
        {"name": "tool_end", "run_id": "e", "status": "error"},
        {"name": "tool_end", "run_id": "f", "error": "boom"},
    )
    assert (run("e").status, run("f").status, run("f").error) == ("error", "error", "boom")


def test_metadata_is_kept_and_merged(acme_client):
    report(
        acme_client,
        {"name": "chain_start", "run_id": "m", "metadata": {"env": "prod", "k": 1}},
        {"name": "chain_end", "run_id": "m", "metadata": {"k": 2, "extra": True}},
    )
    assert run("m").metadata == {"env": "prod", "k": 1, "extra": True}
