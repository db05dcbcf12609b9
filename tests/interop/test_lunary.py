"""Lunary's SDK events at /v1/runs/ingest, mapped onto ours through the one ingestion pipeline."""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal

import orjson
import pytest

from apps.threads.models import Thread, ThreadMessage
from apps.tracing.models import Feedback, Run
from tests.helpers import run

# Lunary's ids look like UUIDs but their version bits are random: never validated.
AGENT, LLM, TOOL = "9f3c0a2e-1b7d-c4e2-9a0f-3d2b1c0e4f5a", "0b1e2c3d-4f5a-f6b7-8c9d-0e1f2a3b4c5d", "tool-run-1"
THREAD, USER_MSG, BOT_MSG = "7d6c5b4a-3f2e-01d0-9c8b-7a6f5e4d3c2b", "msg-user-1", "msg-bot-1"


def at(second: int) -> str:
    return f"2026-06-01T10:00:{second:02d}.123456+00:00"


def events() -> list[dict]:
    null_ids = {"parentRunId": None, "userId": None, "userProps": None, "name": None, "tags": None}
    return [
        {"event": "start", "type": "agent", "runId": AGENT, "name": "support-agent", "timestamp": at(0),
         "input": "Where is order 123?", "userId": "u-1", "userProps": {"email": "u1@example.com"},
         "tags": ["t1"], "runtime": "lunary-py"},
        {"event": "start", "type": "llm", "runId": LLM, "parentRunId": AGENT, "name": "gpt-4o-mini",
         "timestamp": at(1), "input": [{"role": "user", "content": "Where is order 123?"}], "userId": "u-1",
         "params": {"temperature": 0.2}, "metadata": {"region": "eu"}},
        {"event": "end", "type": "llm", "runId": LLM, "timestamp": at(3), **null_ids,
         "output": {"role": "assistant", "content": "It shipped."},
         "tokensUsage": {"prompt": 1000, "completion": 200, "promptCached": None}},
        {"event": "start", "type": "tool", "runId": TOOL, "parentRunId": AGENT, "name": "lookup_order",
         "timestamp": at(3), "input": {"order_id": "123"}},
        {"event": "error", "type": "tool", "runId": TOOL, "timestamp": at(4), **null_ids,
         "error": {"message": "backend timed out", "stack": "TimeoutError: ..."}},
        {"event": "end", "type": "agent", "runId": AGENT, "timestamp": at(5), **null_ids, "output": "Shipped."},
        {"event": "chat", "type": "thread", "runId": USER_MSG, "parentRunId": THREAD, "timestamp": at(6),
         "message": {"role": "user", "content": "Hi, where is my order?"}, "userId": "u-1"},
        {"event": "chat", "type": "thread", "runId": BOT_MSG, "parentRunId": THREAD, "timestamp": at(7),
         "message": {"role": "assistant", "content": "It shipped yesterday."}},
        {"event": "feedback", "type": "llm", "runId": LLM, "timestamp": at(8),
         "feedback": {"thumb": "up", "comment": "nice"}},
        {"event": "feedback", "type": "thread", "runId": BOT_MSG, "timestamp": at(9), "feedback": {"thumb": "down"}},
    ]  # fmt: skip


def ingest(client, batch, *, expect: int = 200):
    response = client.post("/v1/runs/ingest", orjson.dumps({"events": batch}), content_type="application/json")
    assert response.status_code == expect, response.content
    return response.json()


def test_a_lunary_trace_thread_and_feedback(acme_client, acme_app):
    assert ingest(acme_client, events()) == {"accepted": 10, "rejected": 0, "errors": []}
    agent, llm, tool = run(AGENT), run(LLM), run(TOOL)
    assert (agent.type, agent.agent, agent.user_id, agent.user_email, agent.tags) == (
        "agent",
        "support-agent",
        "u-1",
        "u1@example.com",
        ["t1"],
    )
    assert agent.latency_s == pytest.approx(5.0) and agent.output == "Shipped."
    # End events carry nulls: they erase nothing the start said.
    assert (llm.parent_run_id, llm.model, llm.user_id, llm.type) == (AGENT, "gpt-4o-mini", "u-1", "llm")
    assert (llm.prompt_tokens, llm.completion_tokens, llm.total_tokens) == (1000, 200, 1200)
    assert llm.cost == Decimal("0.00027") and llm.metadata["params"] == {"temperature": 0.2}
    assert llm.metadata["region"] == "eu" and llm.positive_feedback
    assert (tool.parent_run_id, tool.run_name, tool.status, tool.error["message"]) == (
        AGENT,
        "lookup_order",
        "error",
        "backend timed out",
    )
    thread = Thread.objects.get(app=acme_app, thread_id=THREAD)
    assert list(ThreadMessage.objects.filter(thread=thread).order_by("timestamp").values_list("role", "content")) == [
        ("user", "Hi, where is my order?"), ("assistant", "It shipped yesterday.")
    ]  # fmt: skip
    assert thread.has_feedback
    ratings = dict(Feedback.objects.values_list("run_id", "rating"))
    assert ratings == {LLM: "positive", BOT_MSG: "negative"}
    assert Feedback.objects.get(run_id=LLM).comment == "nice"


def test_redelivered_and_out_of_order_events_assemble_once(acme_client):
    batch = events()
    ingest(acme_client, batch[5:])
    ingest(acme_client, batch[:5])
    ingest(acme_client, batch)
    assert Run.objects.count() == 3 and ThreadMessage.objects.count() == 2 and Feedback.objects.count() == 2
    assert run(LLM).parent_run_id == AGENT


def test_bad_events_are_listed_and_the_rest_kept(acme_client):
    bad = [
        "not an event",
        {"type": "llm", "runId": "x"},
        {"event": "chat", "runId": "m", "message": "just text"},
        {"event": "chat", "runId": "m", "message": {"role": "robot", "content": "beep"}},
        {"event": "feedback", "runId": LLM, "feedback": {"thumb": "sideways"}},
        {"event": "start", "type": "llm", "runId": "r", "timestamp": at(0), "tokensUsage": [1, 2]},
        {"event": "start", "type": "llm", "runId": "r2", "timestamp": 1e30},
    ]
    body = ingest(acme_client, [events()[0], *bad], expect=207)
    assert body["accepted"] == 1 and body["rejected"] == 7
    messages = {error["index"]: error["error"] for error in body["errors"]}
    assert messages[1] == "event: expected an object"
    assert messages[2].startswith("event: required")
    assert messages[3] == "message: expected an object {role, content}"
    assert messages[4].startswith("message.role: 'robot'")
    assert messages[5].startswith("feedback.thumb: 'sideways'")
    assert messages[6].startswith("tokensUsage")
    assert "timestamp" in messages[7]
    assert Run.objects.get().run_id == AGENT


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{", 400), (b'{"events": 5}', 400), (b'"x"', 400)],
)
def test_bodies_that_are_not_a_batch(acme_client, body, status):
    response = acme_client.post("/v1/runs/ingest", body, content_type="application/json")
    assert response.status_code == status and response.json()["error"]


def test_401_without_a_key(client, acme_app):
    response = client.post("/v1/runs/ingest", orjson.dumps({"events": events()}), content_type="application/json")
    assert response.status_code == 401 and not Run.objects.exists()


def test_413_over_the_batch_limit(acme_client, settings):
    settings.OBSERVATORY_MAX_BATCH_EVENTS = 3
    assert "limit" in ingest(acme_client, events(), expect=413)["error"]


def test_lunary_score_rates_the_run_its_sdk_named(acme_client, acme_key):
    ingest(acme_client, events())
    response = acme_client.patch(f"/v1/runs/{LLM}/score", {"label": "relevance", "value": 0.2}, format="json")
    assert response.status_code == 200, response.content
    feedback = Feedback.objects.get(score_name="relevance")
    assert (feedback.run_id, feedback.rating, feedback.score_value) == (LLM, "negative", 0.2)
    # The SDK sends the id its caller wrote; its events carry uuid(sha256(id + key)).
    hashed = str(uuid.UUID(hashlib.sha256(f"raw-id{acme_key}".encode()).hexdigest()[:32]))
    acme_client.patch("/v1/runs/raw-id/score", {"label": "ok", "value": True, "comment": "fine"}, format="json")
    assert Feedback.objects.get(score_name="ok").run_id == hashed


@pytest.mark.parametrize(
    ("body", "message"),
    [({"value": 1}, "label: required"), ({"label": "x", "value": "maybe"}, "value: 'maybe'"), ([1], "body:")],
)
def test_bad_lunary_scores(acme_client, body, message):
    response = acme_client.patch(f"/v1/runs/{LLM}/score", body, format="json")
    assert response.status_code == 400 and response.json()["message"].startswith(message)
    assert not Feedback.objects.exists()


def test_a_custom_event_is_kept_on_its_run(acme_client):
    custom = {"event": "custom-event", "name": "cache_miss", "runId": AGENT, "timestamp": at(2),
              "input": {"key": "order-123"}}  # fmt: skip
    reserved = {"event": "custom-event", "name": "feedback", "runId": AGENT, "timestamp": at(3)}
    ingest(acme_client, [events()[0], custom, reserved])
    names = [event["name"] for event in acme_client.get(f"/api/run/{AGENT}").json()["events"]]
    assert "cache_miss" in names and "feedback!" in names  # never mistaken for one of our own events
    assert not Feedback.objects.exists()
