"""What the real clients sent (tests/fixtures/clients/, recorded unchanged by record.sh), replayed through
HTTP: the traces they make are the ones their code describes."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from apps.tenancy.models import ApiKey, hash_key
from apps.threads.models import Thread, ThreadMessage
from apps.tracing.models import Feedback, Run
from tests.interop.replay import FIXTURE_APP_ID, FIXTURE_KEY, recording, replay


@pytest.fixture
def fixture_key(acme_app):
    """The recordings' own key, `obs_FIXTUREKEY`, as a key of Acme's app: the requests replay byte for byte."""
    ApiKey.objects.create(
        app=acme_app, organization=acme_app.organization, name="fixtures",
        prefix=FIXTURE_KEY[:12], key_hash=hash_key(FIXTURE_KEY),
    )  # fmt: skip
    return FIXTURE_KEY


def runs() -> dict[str, Run]:
    """The stored runs by display name."""
    return {run.name: run for run in Run.objects.with_cost()}


def test_the_recordings_are_of_the_pinned_client_versions():
    assert recording("otlp_proto")["versions"]["opentelemetry-exporter-otlp-proto-http"] == "1.45.2"
    assert recording("langfuse")["versions"]["langfuse"] == "3.15.0"
    assert recording("lunary")["versions"]["lunary"] == "1.4.41"
    assert recording("llmonitor")["versions"]["llmonitor"] == "0.0.51"


def test_opentelemetry_python_genai(client, fixture_key):
    assert [r.status_code for r in replay(client, "otlp_proto")] == [200]
    found = runs()
    root, chat, tool = found["invoke_agent support-bot"], found["chat gpt-4o-mini"], found["execute_tool lookup_order"]
    assert (root.type, root.agent, root.user_id, root.thread_id, root.parent_run_id) == (
        "agent",
        "support-bot",
        "user-7",
        "conv-42",
        None,
    )
    assert chat.parent_run_id == tool.parent_run_id == found["chat gpt-4o"].parent_run_id == root.run_id
    assert (chat.type, chat.model, chat.prompt_tokens, chat.completion_tokens) == (
        "llm",
        "gpt-4o-mini-2024-07-18",
        120,
        30,
    )
    assert chat.cost == Decimal("0.000036")  # 120 in at 0.00015/1k + 30 out at 0.0006/1k
    assert chat.input == [{"role": "user", "content": "Where is my order?"}]
    assert chat.output["content"] == "Let me look up order 123 for you."
    assert chat.metadata["requested_model"] == "gpt-4o-mini"
    assert (tool.type, tool.status, tool.error["message"]) == ("tool", "error", "order 123 not found")
    assert found["vector_search orders"].metadata["app.top_k"] == 3
    assert found["chat gpt-4o"].cost == Decimal("0.001")


def test_opentelemetry_javascript_json_chunked(client, fixture_key):
    assert recording("otlp_json")["requests"][0]["headers"]["transfer-encoding"] == "chunked"
    assert [r.status_code for r in replay(client, "otlp_json")] == [200]
    found = runs()
    root = found["invoke_agent planner"]
    assert (root.type, root.agent, root.thread_id, root.user_id) == ("agent", "planner", "conv-js-7", "user-js-1")
    embedding, chat = found["embeddings text-embedding-3-small"], found["chat claude-3-5-sonnet"]
    assert (embedding.type, embedding.model, embedding.prompt_tokens) == ("embedding", "text-embedding-3-small", 8)
    assert (chat.model, chat.prompt_tokens, chat.completion_tokens, chat.cost) == (
        "claude-3-5-sonnet-20241022",
        50,
        10,
        Decimal("0.0003"),
    )
    assert found["execute_tool book_hotel"].error["message"] == "hotel API returned 503"
    assert {run.parent_run_id for run in found.values() if run != root} == {root.run_id}


def test_openinference(client, fixture_key, acme_app):
    assert [r.status_code for r in replay(client, "openinference")] == [200]
    found = runs()
    root, retrieve, llm = found["rag-pipeline"], found["retrieve"], found["ChatOpenAI"]
    assert (root.type, root.agent, root.user_id, root.thread_id, root.tags) == (
        "chain",
        "rag-service",
        "alice",
        "sess-9",
        ["rag", "prod"],
    )
    assert retrieve.type == "retriever" and len(retrieve.output) == 2 and "content" in retrieve.output[0]
    assert (llm.type, llm.model, llm.prompt_tokens, llm.completion_tokens) == ("llm", "gpt-4o-mini", 300, 40)
    assert llm.input[0] == {"role": "system", "content": "Answer using only the provided context."}
    assert found["check_refund_eligibility"].output == {"eligible": True, "days_left": 12}
    assert found["notify_customer"].error["message"] == "ConnectionError: SMS gateway unreachable"
    thread = Thread.objects.get(app=acme_app, thread_id="sess-9")
    assert list(ThreadMessage.objects.filter(thread=thread).values_list("role", "content")) == [
        ("user", "What is the refund window?"), ("assistant", "You can request a refund within 30 days of delivery.")
    ]  # fmt: skip


def test_langfuse_traces_and_scores(client, fixture_key):
    assert [r.status_code for r in replay(client, "langfuse")] == [200, 207]
    found = runs()
    root, generation, tool = found["answer-question"], found["llm-call"], found["fetch-account"]
    assert (root.type, root.agent, root.user_id, root.thread_id, root.tags, root.metadata["plan"]) == (
        "agent",
        "answer-question",
        "user-3",
        "sess-lf-1",
        ["beta"],
        "pro",
    )
    assert (generation.type, generation.model, generation.prompt_tokens, generation.completion_tokens) == (
        "llm",
        "gpt-4o-mini",
        80,
        20,
    )
    assert generation.cost == Decimal("0.000024")
    assert (tool.type, tool.status, tool.error["message"]) == ("tool", "error", "tool timed out")
    scores = {f.score_name: (f.run_id, f.rating, f.score_value, f.comment) for f in Feedback.objects.all()}
    assert scores == {
        "valid_format": (generation.run_id, "positive", 1.0, ""),
        "helpfulness": (root.run_id, "positive", 0.9, "good"),
        "correctness": (generation.run_id, "positive", "correct", ""),
    }
    assert root.positive_feedback and generation.positive_feedback


def test_lunary(client, fixture_key, acme_app):
    assert [r.status_code for r in replay(client, "lunary")] == [200, 200]
    found = runs()
    agent, llm, failed = found["support-agent"], found["gpt-4o-mini"], found["gpt-4o"]
    assert (agent.type, agent.agent, agent.user_id, agent.tags, agent.output) == (
        "agent",
        "support-agent",
        "u-1",
        ["t1"],
        "Order 123 is shipped",
    )
    # End events carry null parentRunId/userId/name: nothing the start said is erased.
    assert (llm.parent_run_id, llm.user_id, llm.user_email, llm.model) == (
        agent.run_id,
        "u-1",
        "u1@example.com",
        "gpt-4o-mini",
    )
    assert (llm.prompt_tokens, llm.completion_tokens, llm.cost) == (50, 12, Decimal("0.0000147"))
    assert llm.metadata["region"] == "eu" and "appId" not in llm.metadata  # the key is never stored
    assert (failed.status, failed.error["message"], found["lookup_order"].parent_run_id) == (
        "error",
        "rate limited",
        agent.run_id,
    )
    uuid.UUID(agent.run_id)  # a UUID in form, whatever its version bits say
    messages = ThreadMessage.objects.order_by("timestamp")
    assert [(m.role, m.content) for m in messages] == [
        ("user", "Hi, where is my order?"), ("assistant", "It shipped yesterday.")
    ]  # fmt: skip
    feedback = {(f.run_id, f.score_name): (f.rating, f.comment) for f in Feedback.objects.all()}
    bot_message = messages[1].message_id
    assert feedback == {
        (llm.run_id, "thumb"): ("positive", "nice"),
        (bot_message, "thumb"): ("negative", ""),
        (llm.run_id, "relevance"): ("positive", "on topic"),  # lunary.score() with the id before hashing
    }
    assert Thread.objects.get(app=acme_app).has_feedback


def test_llmonitor_with_retries_nested(client, acme_app):
    acme_app.public_id, acme_app.legacy_ingestion = uuid.UUID(FIXTURE_APP_ID), True
    acme_app.save()
    # The first two requests reached the server, whose answers the recorder dropped: the SDK re-sent them nested.
    assert [r.status_code for r in replay(client, "llmonitor")] == [200, 200, 200]
    assert Run.objects.count() == 5
    found = runs()
    agent, llm = found["travel-agent"], found["gpt-4o-mini"]
    assert (agent.type, agent.user_id, agent.tags, agent.latency_s > 0) == (
        "agent",
        "user-llmonitor-1",
        ["travel", "beta"],
        True,
    )
    assert (llm.parent_run_id, llm.prompt_tokens, llm.completion_tokens) == (agent.run_id, 42, 17)
    assert llm.input[0] == {"role": "system", "content": "You are a travel assistant."}
    assert llm.output == {"role": "assistant", "content": "I found flight TP1351 to Lisbon on Friday at 09:40."}
    assert found["book_flight"].error["message"] == "payment gateway timeout while booking TP1351"
    assert found["gpt-4o"].run_id == "12551829221992750836"  # past the signed 64-bit range: kept as text


def test_llmonitor_is_refused_unless_the_app_opted_in(client, acme_app):
    acme_app.public_id = uuid.UUID(FIXTURE_APP_ID)
    acme_app.save()
    assert {r.status_code for r in replay(client, "llmonitor")} == {401}
    assert not Run.objects.exists()


@pytest.mark.parametrize("name", ["otlp_proto", "otlp_json", "openinference", "langfuse", "lunary"])
def test_each_replay_twice_stores_the_same(client, fixture_key, name):
    replay(client, name)
    before = sorted(Run.objects.values_list("run_id", "status", "total_tokens"))
    counts = (ThreadMessage.objects.count(), Feedback.objects.count())
    replay(client, name)
    assert sorted(Run.objects.values_list("run_id", "status", "total_tokens")) == before
    assert (ThreadMessage.objects.count(), Feedback.objects.count()) == counts
