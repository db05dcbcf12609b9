"""OTLP/HTTP traces at /v1/traces (and Langfuse's /api/public/otel/v1/traces): spans become runs through
the one ingestion pipeline; protobuf and JSON, gzip or not, Bearer or Basic; OTLP's answers."""

from __future__ import annotations

import base64
import io
from decimal import Decimal

import orjson
import pytest
from django.db import OperationalError
from google.rpc import status_pb2

from apps.threads.models import Thread, ThreadMessage
from apps.tracing.models import Event, Run
from tests.helpers import run
from tests.interop.otlp import (
    TRACE,
    json_request,
    partial_success,
    post_json,
    post_protobuf,
    protobuf,
    run_id,
    span,
)

ROOT, CHAT, TOOL = "a000000000000001", "a000000000000002", "a000000000000003"
MESSAGES_IN = [{"role": "user", "parts": [{"type": "text", "content": "Where is my order?"}]}]
MESSAGES_OUT = [{"role": "assistant", "parts": [{"type": "text", "content": "It shipped."}]}]


def genai_trace() -> list[dict]:
    return [
        span(ROOT, "invoke_agent support", end_ms=900, attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
            "gen_ai.conversation.id": "conv-1", "user.id": "u-7",
            "gen_ai.input.messages": orjson.dumps(MESSAGES_IN).decode(),
            "gen_ai.output.messages": orjson.dumps(MESSAGES_OUT).decode(),
        }),
        span(CHAT, "chat gpt-4o-mini", parent=ROOT, start_ms=100, end_ms=600, kind=3, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 200, "gen_ai.system": "openai", "deployment.zone": "eu-1",
        }),
        span(TOOL, "execute_tool lookup_order", parent=ROOT, start_ms=600, end_ms=800, attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order",
        }, events=[("exception", {"exception.type": "TimeoutError", "exception.message": "backend timed out",
                                  "exception.stacktrace": "Traceback ..."})]),
    ]  # fmt: skip


def post(client, encoding: str, *spans, **kwargs):
    if encoding == "protobuf":
        return post_protobuf(client, protobuf(*spans, resource=kwargs.pop("resource", None)), **kwargs)
    return post_json(client, json_request(*spans, resource=kwargs.pop("resource", None)), **kwargs)


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
@pytest.mark.parametrize("gzipped", [False, True])
def test_a_genai_trace_becomes_runs(acme_client, acme_app, encoding, gzipped):
    response = post(acme_client, encoding, *genai_trace(), gzipped=gzipped)
    assert response["Content-Type"] == ("application/x-protobuf" if encoding == "protobuf" else "application/json")
    assert partial_success(response) == (0, "")

    root, chat, tool = run(run_id(ROOT)), run(run_id(CHAT)), run(run_id(TOOL))
    assert (root.type, root.agent, root.parent_run_id, root.user_id, root.thread_id) == (
        "agent",
        "support",
        None,
        "u-7",
        "conv-1",
    )
    assert root.latency_s == pytest.approx(0.9) and root.status == "success"
    assert (chat.type, chat.parent_run_id, chat.model) == ("llm", run_id(ROOT), "gpt-4o-mini")
    assert (chat.prompt_tokens, chat.completion_tokens, chat.total_tokens) == (1000, 200, 1200)
    assert chat.cost == Decimal("0.00015") + Decimal("0.00012")  # 1k in at 0.00015, 0.2k out at 0.0006
    assert chat.metadata["deployment.zone"] == "eu-1" and chat.metadata["gen_ai.system"] == "openai"
    assert chat.metadata["otel"]["kind"] == "client"
    assert (tool.type, tool.status, tool.run_name) == ("tool", "error", "execute_tool lookup_order")
    assert tool.error["message"] == "backend timed out" and tool.error["type"] == "TimeoutError"
    # The conversation's root span is one exchange of its thread.
    thread = Thread.objects.get(app=acme_app, thread_id="conv-1")
    messages = list(ThreadMessage.objects.filter(thread=thread).order_by("timestamp"))
    assert [(m.role, m.content) for m in messages] == [("user", "Where is my order?"), ("assistant", "It shipped.")]
    assert root.input == [{"role": "user", "content": "Where is my order?"}]
    assert root.output == {"role": "assistant", "content": "It shipped."}


def test_the_same_export_twice_is_stored_once(acme_client):
    post(acme_client, "protobuf", *genai_trace())
    post(acme_client, "json", *genai_trace())
    assert Run.objects.count() == 3 and Event.objects.count() == 5  # 3 runs + 2 chat messages
    assert ThreadMessage.objects.count() == 2


def test_spans_split_across_exports_in_any_order_assemble(acme_client):
    root, chat, tool = genai_trace()
    post(acme_client, "protobuf", tool)
    post(acme_client, "json", chat)
    post(acme_client, "protobuf", root)
    assert run(run_id(CHAT)).parent_run_id == run(run_id(TOOL)).parent_run_id == run_id(ROOT)
    assert run(run_id(ROOT)).type == "agent"


def test_same_span_ids_in_two_traces_are_two_runs(acme_client):
    other = "0af7651916cd43dd8448eb211c80319c"
    post(acme_client, "protobuf", span(ROOT, "one"), span(ROOT, "two", trace=other))
    assert sorted(Run.objects.values_list("run_name", flat=True)) == ["one", "two"]


def test_openinference_attributes(acme_client):
    attributes = {
        "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o", "llm.token_count.prompt": 10,
        "llm.token_count.completion": 5, "llm.token_count.total": 15, "session.id": "s-1", "user.id": "u-1",
        "tag.tags": ["beta", "rag"], "metadata": '{"region": "eu"}',
        "llm.input_messages.0.message.role": "system", "llm.input_messages.0.message.content": "Be brief.",
        "llm.input_messages.1.message.role": "user", "llm.input_messages.1.message.content": "Hi",
        "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": "Hello",
        "input.value": "ignored: messages win", "input.mime_type": "text/plain",
    }  # fmt: skip
    retriever = {"openinference.span.kind": "RETRIEVER", "input.value": '{"query": "refunds"}',
                 "output.value": "3 documents"}  # fmt: skip
    post(acme_client, "protobuf", span(ROOT, "ChatOpenAI", attributes=attributes),
         span(CHAT, "retrieve", parent=ROOT, attributes=retriever), resource={"service.name": "rag"})  # fmt: skip
    llm, retrieve = run(run_id(ROOT)), run(run_id(CHAT))
    assert (llm.type, llm.model, llm.prompt_tokens, llm.completion_tokens, llm.total_tokens) == (
        "llm",
        "gpt-4o",
        10,
        5,
        15,
    )
    assert (llm.thread_id, llm.user_id, llm.tags, llm.agent) == ("s-1", "u-1", ["beta", "rag"], "rag")
    assert llm.metadata["region"] == "eu"
    assert llm.input == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert llm.output == {"role": "assistant", "content": "Hello"}
    assert llm.cost > 0
    assert (retrieve.type, retrieve.input, retrieve.output) == ("retriever", {"query": "refunds"}, "3 documents")


def test_langfuse_attributes_over_basic_auth(client, acme_key):
    usage = '{"input": 80, "output": 20}'
    attributes = {
        "langfuse.observation.type": "generation", "langfuse.observation.model.name": "gpt-4o-mini",
        "langfuse.observation.usage_details": usage, "langfuse.observation.input": '[{"role": "user", "content": "Q"}]',
        "langfuse.observation.output": '{"role": "assistant", "content": "A"}',
    }  # fmt: skip
    trace = {
        "langfuse.trace.tags": ["beta"], "langfuse.trace.metadata.plan": "pro", "user.id": "u-3",
        "session.id": "sess-1", "langfuse.observation.input": '{"question": "Q"}',
    }  # fmt: skip
    basic = base64.b64encode(f"pk-lf-anything:{acme_key}".encode()).decode()
    spans = [span(ROOT, "answer", attributes=trace), span(CHAT, "llm", parent=ROOT, attributes=attributes)]
    response = post(client, "protobuf", *spans, path="/api/public/otel/v1/traces", HTTP_AUTHORIZATION=f"Basic {basic}")
    assert partial_success(response) == (0, "")
    root, generation = run(run_id(ROOT)), run(run_id(CHAT))
    assert (root.tags, root.metadata["plan"], root.user_id, root.thread_id) == (["beta"], "pro", "u-3", "sess-1")
    assert root.agent == "support-bot"  # the resource's service.name, nothing better naming it
    assert (generation.type, generation.model, generation.prompt_tokens, generation.completion_tokens) == (
        "llm",
        "gpt-4o-mini",
        80,
        20,
    )
    assert generation.output == {"role": "assistant", "content": "A"}


def test_an_open_span_is_a_started_run(acme_client):
    post(acme_client, "json", span(ROOT, "still going", end_ms=None))
    assert run(run_id(ROOT)).status == "started"


def test_status_error_is_an_error_with_its_message(acme_client):
    post(acme_client, "protobuf", span(ROOT, "failing", status=(2, "upstream 502")))
    assert run(run_id(ROOT)).status == "error" and run(run_id(ROOT)).error["message"] == "upstream 502"


# --- bad input: counted rejections, valid spans kept ---------------------------------------


def test_bad_spans_are_counted_and_the_others_kept(acme_client):
    document = json_request(span(ROOT, "good"), span(CHAT, "also good"))
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans += [
        {"traceId": TRACE, "name": "no span id"},
        {"traceId": TRACE, "spanId": "zz", "name": "bad id"},
        {"traceId": TRACE, "spanId": "b000000000000001", "startTimeUnixNano": "-5"},
        {"traceId": TRACE, "spanId": "b000000000000002", "attributes": "not a list"},
        "not a span",
        {"traceId": TRACE, "spanId": "b000000000000003", "kind": "sideways"},
    ]
    rejected, message = partial_success(post_json(acme_client, document))
    assert rejected == 6
    assert "span 2: spanId: required" in message and "span 3: spanId: expected 16 hexadecimal characters" in message
    assert "and 1 more" in message
    assert set(Run.objects.values_list("run_name", flat=True)) == {"good", "also good"}


def test_absurd_times_are_rejected_per_span(acme_client):
    far = span(CHAT, "year 2600", start_ms=0)
    far["start"] = far["end"] = 2**63 + 5
    rejected, message = partial_success(post(acme_client, "protobuf", span(ROOT, "fine"), far))
    assert rejected == 1 and "span 1:" in message
    assert Run.objects.get().run_name == "fine"


def test_wrong_types_in_attributes_are_kept_not_counted(acme_client):
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                  "gen_ai.usage.input_tokens": "lots", "gen_ai.usage.output_tokens": 3.0,
                  "gen_ai.conversation.id": ["not", "text"]}  # fmt: skip
    assert partial_success(post(acme_client, "json", span(ROOT, "odd", attributes=attributes))) == (0, "")
    stored = run(run_id(ROOT))
    assert (stored.prompt_tokens, stored.completion_tokens, stored.thread_id) == (None, 3, None)
    assert stored.metadata["unreadable.prompt_tokens"] == "lots"


def test_a_cycle_is_refused_and_counted(acme_client):
    a, b = "c000000000000001", "c000000000000002"
    rejected, message = partial_success(post(acme_client, "protobuf", span(a, "a", parent=b), span(b, "b", parent=a)))
    assert rejected == 1 and "cannot be its own ancestor" in message
    assert Run.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"\xff\xff\xff\x0f garbage", "application/x-protobuf", 400),
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'{"resourceSpans": 5}', "application/json", 400),
        (b"hello", "text/plain", 415),
    ],
)
def test_undecodable_bodies_and_other_types(acme_client, body, content_type, status):
    response = acme_client.post("/v1/traces", body, content_type=content_type)
    assert response.status_code == status, response.content
    if content_type == "application/x-protobuf":
        assert status_pb2.Status.FromString(response.content).message.startswith("body is not a valid protobuf")
    else:
        assert orjson.loads(response.content)["message"]
    assert not Run.objects.exists()


def test_401_without_or_with_a_wrong_key(client, acme_app):
    response = post_protobuf(client, protobuf(span(ROOT)))
    assert response.status_code == 401 and response["Content-Type"] == "application/x-protobuf"
    assert "credentials" in status_pb2.Status.FromString(response.content).message
    wrong = base64.b64encode(b"pk:obs_00000000_wrong").decode()
    response = post_json(client, json_request(span(ROOT)), HTTP_AUTHORIZATION=f"Basic {wrong}")
    assert response.status_code == 401 and orjson.loads(response.content)["message"] == "Unknown or revoked API key."
    response = post_json(client, json_request(span(ROOT)), HTTP_AUTHORIZATION="Basic !!!")
    assert response.status_code == 401 and "base64" in orjson.loads(response.content)["message"]
    assert not Run.objects.exists()


def test_413_over_the_span_or_body_limit(acme_client, settings):
    settings.OBSERVATORY_MAX_BATCH_EVENTS = 2
    response = post(acme_client, "protobuf", *genai_trace())
    assert response.status_code == 413
    assert status_pb2.Status.FromString(response.content).message == "3 spans is more than the limit of 2 per request"
    settings.OBSERVATORY_MAX_BODY_BYTES = 100
    assert post(acme_client, "json", span(ROOT, "x" * 200)).status_code == 413
    assert not Run.objects.exists()


def test_429_with_retry_after(acme_client, settings):
    settings.OBSERVATORY_RATE_LIMIT_PER_MINUTE = 1
    post(acme_client, "protobuf", span(ROOT))
    response = post(acme_client, "protobuf", span(CHAT))
    assert response.status_code == 429 and 1 <= int(response["Retry-After"]) <= 60
    assert status_pb2.Status.FromString(response.content).code == 8  # RESOURCE_EXHAUSTED


def test_503_with_retry_after_when_the_database_fails(acme_client, monkeypatch):
    from apps.tracing import services

    def database_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(services, "_upsert_runs", database_gone)
    response = post(acme_client, "json", *genai_trace())
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert orjson.loads(response.content) == {"code": 14, "message": "database unavailable, retry later"}
    assert not Event.objects.exists() and not Run.objects.exists()


def test_another_organizations_key_writes_to_its_own_app(globex_client, globex_app, acme_app):
    post(globex_client, "protobuf", span(ROOT))
    assert run(run_id(ROOT)).app == globex_app


def test_a_chunked_body_needs_a_server_that_dechunks_it(acme_client):
    body = protobuf(span(ROOT, "chunked"))
    chunked = {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(body)}
    response = acme_client.post("/v1/traces", body, content_type="application/x-protobuf", **chunked)
    assert response.status_code == 411
    assert "gunicorn" in status_pb2.Status.FromString(response.content).message
    chunked["wsgi.input"], chunked["wsgi.input_terminated"] = io.BytesIO(body), True  # what gunicorn says
    response = acme_client.post("/v1/traces", body, content_type="application/x-protobuf", **chunked)
    assert partial_success(response) == (0, "") and run(run_id(ROOT)).run_name == "chunked"


def test_non_finite_numbers_and_huge_integers_in_attributes(acme_client):
    odd = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": float("nan"), "score": float("inf"),
           "nested": {"deep": [float("-inf"), 1.5]}}  # fmt: skip
    huge = {"gen_ai.operation.name": "chat", "gen_ai.usage.output_tokens": 2**63 - 1}
    response = post(acme_client, "protobuf", span(ROOT, "odd numbers", attributes=odd), span(CHAT, attributes=huge))
    assert partial_success(response) == (1, "span 1: completion_tokens: larger than 9007199254740991")
    stored = run(run_id(ROOT))
    assert stored.prompt_tokens is None and stored.metadata["nested"]["deep"][1] == 1.5
