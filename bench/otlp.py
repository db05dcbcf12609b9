"""OTLP ingestion benchmark: POST /v1/traces against POST /api/report with the same content, same run.

The requirement (docs/PERFORMANCE.md, "OTLP ingestion"): an OTLP batch of 1,000 spans is
accepted at the same events/s as /api/report, within 20 %.

Each worker thread holds one persistent HTTP connection (stdlib http.client) and posts, for
`--seconds` per phase, batches of `--batch-size` spans. Traces are agent -> chain -> tool, llm,
llm (5 spans): a root `invoke_agent` span with the user, the conversation id, tags and the
question and answer as `gen_ai.input.messages` / `gen_ai.output.messages`; a chain span
(`traceloop.span.kind=task`, `traceloop.entity.input/output`); an `execute_tool` span
(`input.value` / `output.value`); two `chat` spans with `gen_ai.request/response.model`,
`gen_ai.usage.input_tokens/output_tokens` and input/output messages. A trace may straddle two
batches, as it does with a BatchSpanProcessor.

At each concurrency there are two phases, back to back (the order alternates from level to
level, and from round to round with `--rounds`):

- **OTLP**: the spans as one protobuf `ExportTraceServiceRequest` (built with the official
  `opentelemetry.proto` classes; gzip with `--gzip`) to `/v1/traces`;
- **/api/report**: the same spans, each as the one `<type>_call` event the server maps it to
  (made by the server's own mapping, `apps.interop.spans.span_events`), in
  batches of the same size, as JSON.

So both phases store the same runs, with the same payloads. One difference is the mapping's
own: the root span of a conversation is also one exchange of its thread, so the OTLP phase
stores two `chat` events (and thread messages) per root on top of the spans; the /api/report
phase's root carries the same `thread_id`, without messages. For equal work, either
`--conversation-share 0` (no conversation ids: no messages on either side) or `--report-chat`
(the /api/report phase also sends those chat events, as our SDK would for a conversation; its
batches then hold ~1.4x `--batch-size` events, so run the server with a higher
OBSERVATORY_MAX_BATCH_EVENTS).

Per phase it reports accepted spans (events) per second, requests/s, p50/p99 request latency
(client) and the server's p50 (`Server-Timing`), then counts the phase's runs, run events and
thread messages in the database (by the phase's trace-id prefix: run ids are
`<traceId>-<spanId>`) and compares them with what the server accepted: OK or MISMATCH.
Per level it prints OTLP spans/s over /api/report events/s; the target is >= 80 %.

Request bodies are built by a helper thread per worker, one request ahead, so that the
client's encoding (tens of ms for 1,000 spans, either protocol) overlaps the server's work
instead of adding to each request; its mean is reported.

Run from the repository root against a running server (gunicorn, production settings,
OBSERVATORY_RATE_LIMIT_PER_MINUTE=0):

    python bench/otlp.py --url http://127.0.0.1:8100 --key obs_... \\
        --database-url postgres://postgres@127.0.0.1:5432/observatory_otlp_bench
    python bench/otlp.py ... --concurrency 1,4 --batch-size 1000 --seconds 10 --rounds 2
    python bench/otlp.py ... --quick           # a few seconds, for a smoke check

Results: a table on stdout, JSON in bench/results/otlp.json (`--json`). Exits non-zero
(`BenchmarkFailed`) when a span or event is lost, rejected, or a request fails.

From Python (the smoke test): `run(url=..., key=..., concurrencies=[1], batch_size=20,
seconds=1)` returns the result dict; without `database_url` it uses Django's connection.
"""

from __future__ import annotations

import gzip as gzip_module
import queue
import random
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apps.interop.spans import Span, span_events  # noqa: E402  (plain Python: no Django needed)
from bench.common import (  # noqa: E402
    RESULTS_DIR,
    Database,
    HttpClient,
    drive,
    load_figures,
    log,
    machine_info,
    parse_server_args,
    percentile,
    publish,
    rounded,
    server_parser,
    table,
)
from bench.ingest import (  # noqa: E402
    AGENTS,
    MODELS,
    TAGS,
    TOOLS,
    WORDS,
    BenchmarkFailed,
    _int_list,
    autovacuum_off,
    check_level,
    wait_for_assembly,
)

OTLP, REPORT = "otlp", "report"
PATHS = {OTLP: "/v1/traces", REPORT: "/api/report"}
LABELS = {OTLP: "OTLP /v1/traces", REPORT: "/api/report"}
PROTOCOL_DIGIT = {OTLP: "0", REPORT: "1"}  # in the trace id, after the run tag and the level
PROTOBUF = "application/x-protobuf"
TARGET_RATIO = 0.80  # OTLP spans/s >= 80 % of /api/report events/s: "within 20 %"
SPANS_PER_TRACE = 5
TURNS_PER_CONVERSATION = 4  # consecutive traces of one worker share a conversation (and its user)

SCOPE = "opentelemetry.instrumentation.openai_v2"
RESOURCE = {
    "service.name": "support-bot",
    "service.version": "1.4.2",
    "deployment.environment": "production",
    "telemetry.sdk.language": "python",
    "telemetry.sdk.name": "opentelemetry",
    "telemetry.sdk.version": "1.38.0",
}
PROVIDERS = {"gpt": "openai", "cla": "anthropic", "mis": "mistral_ai", "lla": "meta"}


# --- the spans ----------------------------------------------------------------------------------


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _text_message(role: str, text: str, **extra) -> dict:
    return {"role": role, "parts": [{"type": "text", "content": text}], **extra}


class SpanSource:
    """An endless stream of realistic GenAI spans, trace after trace; `take(n)` cuts the next batch.

    A span is a plain dict (ids as hex, times in ns, attributes as Python values); `protobuf()`
    encodes a batch for /v1/traces and `report_events()` maps spans to their /api/report events.
    Trace ids are `trace_prefix` (13 hex digits) + a 19-digit counter, so a phase's runs can be
    counted by the prefix of their run ids.
    """

    def __init__(self, trace_prefix: str, seed: int, conversation_share: float = 1.0) -> None:
        if len(trace_prefix) != 13 or any(c not in "0123456789abcdef" for c in trace_prefix):
            raise ValueError(f"trace prefix must be 13 lowercase hex digits: {trace_prefix!r}")
        self.prefix = trace_prefix
        self.rng = random.Random(seed)
        self.conversation_share = conversation_share
        self.pending: list[dict] = []
        self.traces = 0
        self.conversation: tuple[str, str] | None = None  # (conversation id, user) of the current one

    def _text(self, low: int, high: int) -> str:
        return " ".join(self.rng.choices(WORDS, k=self.rng.randint(low, high)))

    def _span_id(self) -> str:
        return f"{self.rng.getrandbits(64) | 1:016x}"

    def _people(self) -> tuple[str | None, str]:
        """The conversation and user of the next trace: a new conversation every few traces."""
        rng, n = self.rng, self.traces
        if n % TURNS_PER_CONVERSATION == 0 or self.conversation is None:
            user = f"user-{rng.randint(1, 1000):04d}"
            conversation = f"conv-{self.prefix}{n:08x}" if rng.random() < self.conversation_share else None
            self.conversation = (conversation, user)
        return self.conversation

    def _trace(self) -> list[dict]:
        rng = self.rng
        trace_id = f"{self.prefix}{self.traces:019x}"
        conversation, user = self._people()
        self.traces += 1
        agent, tool, model = rng.choice(AGENTS), rng.choice(TOOLS), rng.choice(MODELS)
        provider = PROVIDERS.get(model[:3], "openai")
        question, answer = self._text(8, 22), self._text(8, 22)
        system = "You are a helpful assistant for Acme support. " + self._text(3, 8)
        t0 = time.time_ns() - 5_000_000_000
        clock = [t0]

        def later(low_ms: int, high_ms: int) -> int:
            clock[0] += rng.randint(low_ms, high_ms) * 1_000_000
            return clock[0]

        a_id, c_id, t_id, x_id, l_id = (self._span_id() for _ in range(5))
        c_start, t_start = later(1, 5), later(1, 5)
        t_end = later(20, 300)
        x_start, x_end = later(1, 5), later(200, 2000)
        l_start, l_end = later(1, 5), later(400, 4000)
        c_end, a_end = later(1, 5), later(1, 5)

        def llm(span_id: str, start: int, end: int, messages: list[dict], said: str) -> dict:
            return {
                "trace_id": trace_id, "span_id": span_id, "parent_span_id": c_id, "name": f"chat {model}",
                "kind": 3, "start_ns": start, "end_ns": end,
                "attributes": {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": provider,
                    "gen_ai.request.model": model,
                    "gen_ai.response.model": model,
                    "gen_ai.request.temperature": 0.2,
                    "gen_ai.response.id": f"chatcmpl-{rng.getrandbits(64):016x}",
                    "gen_ai.response.finish_reasons": ["stop"],
                    "gen_ai.usage.input_tokens": rng.randint(200, 3000),
                    "gen_ai.usage.output_tokens": rng.randint(20, 600),
                    "gen_ai.input.messages": _json(messages),
                    "gen_ai.output.messages": _json([_text_message("assistant", said, finish_reason="stop")]),
                },
            }  # fmt: skip

        root_attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent,
            "user.id": user,
            "user.email": f"{user}@example.com",
            "gen_ai.input.messages": _json([_text_message("user", question)]),
            "gen_ai.output.messages": _json([_text_message("assistant", answer, finish_reason="stop")]),
        }
        if conversation:
            root_attributes["gen_ai.conversation.id"] = conversation
        tags = rng.sample(TAGS, rng.choice((0, 1, 1, 2)))
        if tags:
            root_attributes["tag.tags"] = tags
        root = {
            "trace_id": trace_id, "span_id": a_id, "parent_span_id": "", "name": f"invoke_agent {agent}", "kind": 1,
            "start_ns": t0, "end_ns": a_end, "attributes": root_attributes,
        }  # fmt: skip
        if rng.random() < 0.03:
            root["status"] = (2, "agent gave up: the tool timed out")
        return [
            root,
            {
                "trace_id": trace_id, "span_id": c_id, "parent_span_id": a_id, "name": "answer-question",
                "kind": 1, "start_ns": c_start, "end_ns": c_end,
                "attributes": {
                    "traceloop.span.kind": "task",
                    "traceloop.entity.name": "answer-question",
                    "traceloop.entity.input": _json({"question": question, "history": []}),
                    "traceloop.entity.output": _json({"answer": answer}),
                },
            },
            {
                "trace_id": trace_id, "span_id": t_id, "parent_span_id": c_id, "name": f"execute_tool {tool}",
                "kind": 1, "start_ns": t_start, "end_ns": t_end,
                "attributes": {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": tool,
                    "gen_ai.tool.call.id": f"call_{rng.getrandbits(48):012x}",
                    "input.value": _json({"query": self._text(3, 8), "top_k": 2}),
                    "output.value": _json(
                        {"documents": [{"id": rng.randint(1, 10**6), "text": self._text(5, 12)} for _ in range(2)]}
                    ),
                },
            },
            llm(x_id, x_start, x_end,
                [{"role": "system", "content": system},
                 {"role": "user", "content": "Rewrite as a search query: " + question[:120]}],
                self._text(3, 8)),
            llm(l_id, l_start, l_end, [{"role": "system", "content": system}, _text_message("user", question)],
                self._text(10, 25)),
        ]  # fmt: skip

    def take(self, n: int) -> list[dict]:
        while len(self.pending) < n:
            self.pending.extend(self._trace())
        batch, self.pending = self.pending[:n], self.pending[n:]
        return batch


def set_any_value(pb, value: Any) -> None:
    """Set an OTLP AnyValue from a Python value (bool before int: bool is an int)."""
    if isinstance(value, str):
        pb.string_value = value
    elif isinstance(value, bool):
        pb.bool_value = value
    elif isinstance(value, int):
        pb.int_value = value
    elif isinstance(value, float):
        pb.double_value = value
    elif isinstance(value, list):
        pb.array_value.SetInParent()
        for item in value:
            set_any_value(pb.array_value.values.add(), item)
    elif isinstance(value, dict):
        pb.kvlist_value.SetInParent()
        for key, item in value.items():
            set_any_value(pb.kvlist_value.values.add(key=key).value, item)
    else:
        raise TypeError(f"no OTLP attribute value for {type(value).__name__}")


def protobuf(spans: list[dict], resource: dict = RESOURCE, scope: str = SCOPE) -> bytes:
    """The spans as one OTLP ExportTraceServiceRequest (one resource, one scope), serialized."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in resource.items():
        set_any_value(resource_spans.resource.attributes.add(key=key).value, value)
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = scope
    add = scope_spans.spans.add
    for s in spans:
        pb = add(
            trace_id=bytes.fromhex(s["trace_id"]), span_id=bytes.fromhex(s["span_id"]), name=s["name"],
            kind=s["kind"], start_time_unix_nano=s["start_ns"], end_time_unix_nano=s["end_ns"],
        )  # fmt: skip
        if s["parent_span_id"]:
            pb.parent_span_id = bytes.fromhex(s["parent_span_id"])
        attributes = pb.attributes
        for key, value in s["attributes"].items():
            set_any_value(attributes.add(key=key).value, value)
        if "status" in s:
            pb.status.code, pb.status.message = s["status"]
    return request.SerializeToString()


def _span(s: dict) -> Span:
    code, message = s.get("status", (0, ""))
    return Span(
        trace_id=s["trace_id"], span_id=s["span_id"], parent_span_id=s["parent_span_id"], name=s["name"],
        kind=s["kind"], start_ns=s["start_ns"], end_ns=s["end_ns"], attributes=s["attributes"], status_code=code,
        status_message=message, resource=RESOURCE, scope=SCOPE,
    )  # fmt: skip


def chat_messages_of(spans: list[dict]) -> int:
    """How many thread messages the server derives from these spans: two per root in a conversation."""
    return sum(2 for s in spans if not s["parent_span_id"] and "gen_ai.conversation.id" in s["attributes"])


def chat_events(event: dict) -> list[dict]:
    """The two `chat` events the server derives from a conversation's root span (its run event here):
    the question (the input's last user message) and the answer, linked to the run."""
    if "parent_run_id" in event or "thread_id" not in event:
        return []
    agent = event["metadata"].get("agent")
    common = {"thread_id": event["thread_id"], "metadata": {"agent": agent} if agent else {}}
    common |= {key: event[key] for key in ("user_id", "user_email") if key in event}
    question = [m["content"] for m in event["input"] if m.get("role") == "user"][-1]
    return [
        {**common, "name": "chat", "role": "user", "content": question, "message_id": f"{event['run_id']}-in",
         "timestamp": event["started_at"]},
        {**common, "name": "chat", "role": "assistant", "content": event["output"]["content"],
         "message_id": f"{event['run_id']}-out", "run_id": event["run_id"], "timestamp": event["timestamp"]},
    ]  # fmt: skip


def report_events(spans: list[dict], with_chat: bool = False) -> list[dict]:
    """The /api/report events of these spans, made by the server's own mapping (apps.interop.spans,
    which needs no Django): one run event each, and with `with_chat` the chat events it derives
    from conversation roots (then the batch holds more events than spans)."""
    return [e for s in spans for e in (span_events(_span(s)) if with_chat else span_events(_span(s))[:1])]


# --- HTTP load ----------------------------------------------------------------------------------


class Worker(threading.Thread):
    """Posts batches of one protocol until the deadline; a helper thread builds the next body meanwhile."""

    def __init__(self, *, url, key, protocol, trace_prefix, seed, batch_size, use_gzip, conversation_share,
                 report_chat, start_gate, deadline_box) -> None:  # fmt: skip
        super().__init__(daemon=True)
        self.client = HttpClient(url, key)
        self.protocol, self.batch_size, self.use_gzip = protocol, batch_size, use_gzip
        self.report_chat = report_chat
        self.source = SpanSource(trace_prefix, seed, conversation_share)
        self.start_gate, self.deadline_box = start_gate, deadline_box
        self.bodies: queue.Queue = queue.Queue(maxsize=1)
        self.stop = threading.Event()
        self.build_ms: list[float] = []
        self.body_bytes: list[int] = []
        self.latencies: list[float] = []
        self.server_ms: list[float] = []
        self.sent = self.accepted = self.rejected = self.messages_expected = 0
        self.statuses: Counter = Counter()
        self.failures: list[str] = []
        self.error_samples: list[str] = []

    def _build(self) -> tuple[bytes, int, int]:
        began = time.perf_counter()
        spans = self.source.take(self.batch_size)
        if self.protocol == OTLP:
            body = protobuf(spans)
        else:
            body = orjson.dumps({"events": report_events(spans, self.report_chat)})
        if self.use_gzip:
            body = gzip_module.compress(body, compresslevel=5)
        self.build_ms.append((time.perf_counter() - began) * 1000)
        messages = chat_messages_of(spans) if self.protocol == OTLP or self.report_chat else 0
        return body, len(spans), messages

    def _builder(self) -> None:
        while not self.stop.is_set():
            try:
                item = self._build()
            except Exception as exc:  # handed to the worker, which raises it
                item = exc
            while not self.stop.is_set():
                try:
                    self.bodies.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def run(self) -> None:
        headers = {"Content-Type": PROTOBUF if self.protocol == OTLP else "application/json"}
        if self.use_gzip:
            headers["Content-Encoding"] = "gzip"
        path = PATHS[self.protocol]
        self.bodies.put(self._build())  # the first body before the clock starts
        builder = threading.Thread(target=self._builder, daemon=True)
        builder.start()
        self.start_gate.wait()
        deadline = self.deadline_box[0]
        try:
            while time.perf_counter() < deadline:
                item = self.bodies.get()
                if isinstance(item, Exception):
                    raise item
                body, spans, messages = item
                self.sent += spans
                self.body_bytes.append(len(body))
                try:
                    reply = self.client.request("POST", path, body, headers)
                except OSError as exc:  # timeouts, refused connections: counted, the phase goes on
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    self.client.close()
                    continue
                self.latencies.append(reply.ms)
                if reply.server_ms is not None:
                    self.server_ms.append(reply.server_ms)
                self.statuses[reply.status] += 1
                if reply.status in (200, 207):
                    rejected, sample = self._rejected(reply.body)
                    self.rejected += rejected
                    self.accepted += spans - rejected
                    if rejected:
                        self.error_samples.append(sample)
                    else:
                        self.messages_expected += messages
                elif len(self.error_samples) < 5:
                    self.error_samples.append(f"HTTP {reply.status}: {reply.body[:200]!r}")
        finally:
            self.stop.set()
            builder.join()
            self.client.close()

    def _rejected(self, body: bytes) -> tuple[int, str]:
        if self.protocol == OTLP:
            partial = ExportTraceServiceResponse.FromString(body).partial_success
            return partial.rejected_spans, partial.error_message
        result = orjson.loads(body)
        return result["rejected"], "; ".join(e["error"] for e in result["errors"][:3])


def run_phase(*, url, key, protocol, prefix, concurrency, batch_size, seconds, use_gzip=False, seed=1,
              conversation_share=1.0, report_chat=False) -> dict:  # fmt: skip
    """Post batches of `protocol` from `concurrency` threads for `seconds`; the phase's figures.

    `prefix` is 11 hex digits; worker i's traces start with `prefix` + i as 2 hex digits.
    """
    gate = threading.Barrier(concurrency + 1)
    deadline_box = [0.0]
    common = {
        "url": url, "key": key, "protocol": protocol, "batch_size": batch_size, "use_gzip": use_gzip,
        "conversation_share": conversation_share, "report_chat": report_chat, "start_gate": gate,
        "deadline_box": deadline_box,
    }  # fmt: skip
    workers = [Worker(trace_prefix=f"{prefix}{i:02x}", seed=seed * 1000 + i, **common) for i in range(concurrency)]
    elapsed, cpu = drive(
        workers, seconds=seconds, gate=gate, deadline_box=deadline_box,
        ready=lambda: not any(w.bodies.empty() for w in workers if w.is_alive()),  # every first body built
    )  # fmt: skip
    accepted = sum(w.accepted for w in workers)
    server_ms = [ms for w in workers for ms in w.server_ms]
    build_ms = [ms for w in workers for ms in w.build_ms]
    body_bytes = [n for w in workers for n in w.body_bytes]
    figures = load_figures(workers, elapsed, cpu, accepted)
    return {
        "protocol": protocol,
        "batch_size": batch_size,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "spans_sent": sum(w.sent for w in workers),
        "spans_accepted": accepted,
        "spans_rejected": sum(w.rejected for w in workers),
        "messages_expected": sum(w.messages_expected for w in workers),
        "spans_per_s": figures.pop("rate"),
        "server_p50_ms": rounded(percentile(server_ms, 50)),
        "server_p99_ms": rounded(percentile(server_ms, 99)),
        **figures,
        "build_ms_mean": rounded(statistics.fmean(build_ms) if build_ms else None),
        "body_bytes_mean": round(statistics.fmean(body_bytes)) if body_bytes else None,
        "run_prefix": prefix,
        "_server_ms": server_ms,
    }


# --- verification -----------------------------------------------------------------------------------


def verify(db: Database, app_pk: int, phase: dict) -> dict:
    """Count the phase's runs, run events and thread messages in the database against what was accepted.

    After the server has applied every queued event (worker assembly; 0 s inline): that drain
    is part of the phase's end-to-end rate.
    """
    drain = wait_for_assembly(db)
    end_to_end = phase["spans_accepted"] / (phase["seconds"] + drain) if phase["seconds"] else 0.0
    params = [app_pk, phase["run_prefix"] + "%"]
    (runs,) = db.query("SELECT count(*) FROM tracing_run WHERE app_id = %s AND run_id LIKE %s", params)[0]
    (events,) = db.query(
        "SELECT count(*) FROM tracing_event WHERE app_id = %s AND run_id LIKE %s AND name <> 'chat'", params
    )[0]
    (messages,) = db.query(
        "SELECT count(*) FROM threads_threadmessage WHERE app_id = %s AND message_id LIKE %s", params
    )[0]
    accepted = phase["spans_accepted"]
    ok = (
        runs == events == accepted == phase["spans_sent"]
        and messages == phase["messages_expected"]
        and not phase["spans_rejected"]
    )
    return {
        "db_runs": runs, "db_run_events": events, "db_messages": messages, "verified": "OK" if ok else "MISMATCH",
        "drain_s": round(drain, 2), "end_to_end_per_s": round(end_to_end, 1),
    }  # fmt: skip


def _measure(db, app_pk, analyzing: bool, **phase_args) -> dict:
    if analyzing:
        for statement in (
            "ANALYZE tracing_run", "ANALYZE tracing_event", "ANALYZE threads_thread", "ANALYZE threads_threadmessage",
            "VACUUM (ANALYZE) tracing_queuedbatch",
        ):  # fmt: skip
            db.execute(statement)
    phase = run_phase(**phase_args)
    check_level(phase)
    phase.update(verify(db, app_pk, phase))
    return phase


def _combine(phases: list[dict]) -> dict:
    """One protocol's phases at one level (one per round) as one: rates over the summed time, latencies pooled."""
    if len(phases) == 1:
        combined = dict(phases[0])
    else:
        seconds = sum(p["seconds"] for p in phases)
        drain = sum(p["drain_s"] for p in phases)
        latencies = [ms for p in phases for ms in p["_latencies"]]
        server_ms = [ms for p in phases for ms in p["_server_ms"]]
        combined = {
            **{k: sum(p[k] for p in phases) for k in (
                "requests", "spans_sent", "spans_accepted", "spans_rejected", "messages_expected", "errors",
                "db_runs", "db_run_events", "db_messages",
            )},
            "protocol": phases[0]["protocol"], "batch_size": phases[0]["batch_size"],
            "concurrency": phases[0]["concurrency"], "seconds": round(seconds, 3), "drain_s": round(drain, 2),
            "p50_ms": rounded(percentile(latencies, 50)), "p99_ms": rounded(percentile(latencies, 99)),
            "max_ms": rounded(max(latencies, default=None)),
            "server_p50_ms": rounded(percentile(server_ms, 50)), "server_p99_ms": rounded(percentile(server_ms, 99)),
            "client_cpu_pct": round(statistics.fmean(p["client_cpu_pct"] or 0 for p in phases), 1),
            "build_ms_mean": rounded(statistics.fmean(p["build_ms_mean"] or 0 for p in phases)),
            "body_bytes_mean": round(statistics.fmean(p["body_bytes_mean"] or 0 for p in phases)),
            "verified": "OK" if all(p["verified"] == "OK" for p in phases) else "MISMATCH",
            "rounds": [{k: p[k] for k in ("spans_per_s", "p50_ms", "p99_ms", "verified")} for p in phases],
        }  # fmt: skip
        combined["spans_per_s"] = round(combined["spans_accepted"] / seconds, 1) if seconds else 0.0
        combined["requests_per_s"] = round(combined["requests"] / seconds, 1) if seconds else 0.0
        combined["end_to_end_per_s"] = round(combined["spans_accepted"] / (seconds + drain), 1) if seconds else 0.0
    # Every event the pipeline accepted: a run event per span, and the chat events of conversation roots.
    events, elapsed = (
        combined["spans_accepted"] + combined["messages_expected"],
        combined["seconds"] + combined["drain_s"],
    )
    combined["events_per_s"] = round(events / elapsed, 1) if elapsed else 0.0
    combined.pop("_latencies", None)
    combined.pop("_server_ms", None)
    return combined


# --- the whole benchmark --------------------------------------------------------------------------


def run(
    *,
    url: str,
    key: str,
    database_url: str | None = None,
    concurrencies: list[int] | tuple[int, ...] = (1, 4),
    batch_size: int = 1000,
    seconds: float = 10.0,
    rounds: int = 1,
    use_gzip: bool = False,
    conversation_share: float = 1.0,
    report_chat: bool = False,
    warmup_seconds: float = 2.0,
    analyze: str = "auto",
    seed: int = 1,
    json_path: str | Path | None = None,
    quiet: bool = False,
) -> dict:
    """Both phases at every level, each verified in the database; returns (and writes) the results.

    Raises BenchmarkFailed, after writing the results, when anything was lost or refused.
    `analyze` as in bench/ingest.py: "auto" ANALYZEs the tables before each phase when the
    server's autovacuum is off.
    """
    db = Database(database_url)
    try:
        app_pk, app_public_id = db.app_for_key(key)
        run_tag = uuid.uuid4().hex[:8]
        log(quiet, f"otlp benchmark: {url}, app {app_public_id}, trace-id prefix {run_tag}")
        analyzing = analyze == "always" or (analyze == "auto" and autovacuum_off(db))
        if analyzing:
            log(quiet, "  autovacuum is off: ANALYZE the run, event and thread tables before each phase")
        common = {"url": url, "key": key, "batch_size": batch_size, "use_gzip": use_gzip,
                  "conversation_share": conversation_share, "report_chat": report_chat}  # fmt: skip
        warmup = []
        if warmup_seconds > 0:
            for protocol in (OTLP, REPORT):
                phase = _measure(
                    db, app_pk, False, protocol=protocol, prefix=f"{run_tag}ff{PROTOCOL_DIGIT[protocol]}",
                    concurrency=min(4, max(concurrencies)), seconds=warmup_seconds / 2, seed=seed + 5000, **common,
                )  # fmt: skip
                warmup.append(_combine([phase]))
        phases, levels = [], []
        for c, concurrency in enumerate(concurrencies):
            by_protocol: dict[str, list[dict]] = {OTLP: [], REPORT: []}
            for r in range(rounds):
                order = (OTLP, REPORT) if (c + r) % 2 == 0 else (REPORT, OTLP)
                for protocol in order:
                    level_digits = f"{(c * rounds + r) % 0xFF:02x}"
                    phase = _measure(
                        db, app_pk, analyzing, protocol=protocol,
                        prefix=f"{run_tag}{level_digits}{PROTOCOL_DIGIT[protocol]}", concurrency=concurrency,
                        seconds=seconds, seed=seed + 7 * (c * 100 + r + 1), **common,
                    )  # fmt: skip
                    by_protocol[protocol].append(phase)
                    phases.append({k: v for k, v in phase.items() if not k.startswith("_")} | {"round": r})
                    log(
                        quiet,
                        f"  {concurrency:>2} workers, {LABELS[protocol]:<15}: {phase['spans_per_s']:>8,.0f} spans/s, "
                        f"p50 {phase['p50_ms']} ms, p99 {phase['p99_ms']} ms, server p50 {phase['server_p50_ms']} ms,"
                        f" errors {phase['errors']}, {phase['verified']}",
                    )
            otlp, report_ = _combine(by_protocol[OTLP]), _combine(by_protocol[REPORT])
            rate = {p: lv.get("end_to_end_per_s", lv["spans_per_s"]) for p, lv in ((OTLP, otlp), (REPORT, report_))}
            levels.append({
                "concurrency": concurrency, "batch_size": batch_size, OTLP: otlp, REPORT: report_,
                "ratio": round(rate[OTLP] / rate[REPORT], 3) if rate[REPORT] else None,
                "events_ratio": _ratio(otlp.get("events_per_s"), report_.get("events_per_s")),
                "p50_ratio": _ratio(otlp["p50_ms"], report_["p50_ms"]),
                "p99_ratio": _ratio(otlp["p99_ms"], report_["p99_ms"]),
            })  # fmt: skip
        result = {
            "benchmark": "otlp",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "url": url,
            "app_id": app_public_id,
            "database": db.server_version(),
            "machine": machine_info(),
            "settings": {
                "seconds": seconds,
                "rounds": rounds,
                "concurrencies": list(concurrencies),
                "batch_size": batch_size,
                "gzip": use_gzip,
                "conversation_share": conversation_share,
                "report_chat": report_chat,
                "spans_per_trace": SPANS_PER_TRACE,
                "analyze_before_phases": analyzing,
                **sizes(seed, conversation_share),
            },
            "warmup": warmup,
            "phases": phases,
            "levels": levels,
        }
        _add_summary_and_targets(result)
    finally:
        db.close()
    publish(result, report, json_path, quiet)
    bad = [p for p in [*result["warmup"], *result["phases"]] if p["verified"] != "OK" or p["errors"]]
    if bad:
        first = bad[0]
        raise BenchmarkFailed(
            f"{len(bad)} phase(s) lost or refused spans, e.g. {LABELS[first['protocol']]} at concurrency "
            f"{first['concurrency']}: sent {first['spans_sent']}, accepted {first['spans_accepted']}, runs in the "
            f"database {first['db_runs']}, run events {first['db_run_events']}, messages {first['db_messages']} of "
            f"{first['messages_expected']}, errors {first['errors']} {first['error_samples'][:2]}"
        )
    return result


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def sizes(seed: int, conversation_share: float = 1.0, spans: int = 1000) -> dict:
    """Mean bytes per span: as /api/report JSON, and in the OTLP protobuf (and of one JSON event)."""
    sample = SpanSource("0" * 13, seed, conversation_share).take(spans)
    events = report_events(sample)
    return {
        "avg_event_bytes": round(statistics.fmean(len(orjson.dumps(e)) for e in events)),
        "avg_span_protobuf_bytes": round(len(protobuf(sample)) / spans),
        "chat_messages_per_span": round(chat_messages_of(sample) / spans, 3),
    }


def _add_summary_and_targets(result: dict) -> None:
    levels = result["levels"]
    worst = min(levels, key=lambda lv: lv["ratio"] or 0, default=None)
    lost = [p for p in [*result["warmup"], *result["phases"]] if p["verified"] != "OK"]
    errors = sum(p["errors"] for p in [*result["warmup"], *result["phases"]])
    result["summary"] = {
        "worst_ratio": worst and worst["ratio"],
        "worst_level": worst and f"batch {worst['batch_size']} x {worst['concurrency']}",
        "errors": errors,
        "all_verified": not lost,
    }
    name = f"OTLP spans/s >= {TARGET_RATIO:.0%} of /api/report events/s (batch {result['settings']['batch_size']})"
    if not worst or worst["ratio"] is None:
        verdict = "not measured"
    else:
        each = ", ".join(f"{lv['ratio']:.0%} at {lv['concurrency']}" for lv in levels if lv["ratio"] is not None)
        verdict = f"{'PASS' if worst['ratio'] >= TARGET_RATIO else 'FAIL'} (worst {worst['ratio']:.0%}; {each})"
    result["targets"] = {name: verdict, "nothing lost, no errors": "PASS" if not lost and not errors else "FAIL"}


def report(result: dict) -> str:
    settings = result["settings"]
    rows = []
    for lv in result["levels"]:
        for protocol in (OTLP, REPORT):
            p = lv[protocol]
            rows.append([
                lv["concurrency"], LABELS[protocol], p["spans_per_s"], p["requests_per_s"], p["p50_ms"], p["p99_ms"],
                p["server_p50_ms"], p["errors"], p["spans_accepted"], p["db_runs"], p["db_messages"], p["verified"],
                p.get("drain_s"), p.get("end_to_end_per_s"), p["body_bytes_mean"], p["build_ms_mean"],
                p["client_cpu_pct"],
            ])  # fmt: skip
    headers = [
        "conc", "protocol", "spans/s", "req/s", "p50 ms", "p99 ms", "server p50", "errors", "accepted", "runs in db",
        "messages", "check", "drain s", "e2e/s", "body B", "build ms", "client cpu%",
    ]  # fmt: skip
    ratios = [
        [lv["concurrency"], lv[OTLP].get("end_to_end_per_s", lv[OTLP]["spans_per_s"]),
         lv[REPORT].get("end_to_end_per_s", lv[REPORT]["spans_per_s"]), _percent(lv["ratio"]),
         lv[OTLP].get("events_per_s"), lv[REPORT].get("events_per_s"), _percent(lv.get("events_ratio")),
         _percent(lv["p50_ratio"]), _percent(lv["p99_ratio"])]
        for lv in result["levels"]
    ]  # fmt: skip
    # With --report-chat a report batch also carries the chat events: its rate is counted in run events (spans).
    unit = "run events" if settings.get("report_chat") else "events"
    lines = [
        f"OTLP ingestion: {settings['batch_size']:,} spans per request, {settings['seconds']} s per phase x "
        f"{settings['rounds']} round(s), gzip {'on' if settings['gzip'] else 'off'}; per span ~"
        f"{settings['avg_event_bytes']} B as /api/report JSON, ~{settings['avg_span_protobuf_bytes']} B as "
        f"protobuf; {settings['chat_messages_per_span']} thread messages per span over OTLP "
        f"({result['database']}, {result['machine']['cpus']} CPUs"
        + ("; tables ANALYZEd before each phase" if settings["analyze_before_phases"] else "")
        + ")"
        + ("\n/api/report batches also carry the chat events OTLP derives (--report-chat)" if unit != "events" else ""),
        "",
        table(headers, rows),
        "",
        table(
            [
                "conc",
                "OTLP spans/s",
                f"/api/report {unit}/s",
                "ratio",
                "OTLP events/s",
                "/api/report events/s",
                "events ratio",
                "p50 ratio",
                "p99 ratio",
            ],
            ratios,
        ),  # fmt: skip
        "",
        "targets:",
        *(f"  {name}: {verdict}" for name, verdict in result["targets"].items()),
    ]
    samples = [s for p in result["phases"] for s in p["error_samples"] + p["failures"]]
    if samples:
        lines += ["", "first errors:", *(f"  {s}" for s in samples[:5])]
    return "\n".join(lines)


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.0%}"


def main(argv: list[str] | None = None) -> dict:
    parser = server_parser(__doc__)
    parser.add_argument("--concurrency", type=_int_list, default=[1, 4], help="e.g. 1,4")
    parser.add_argument("--batch-size", type=int, default=1000, help="spans (events) per request")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each phase")
    parser.add_argument("--rounds", type=int, default=1, help="OTLP / report pairs per level (order alternates)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unreported warm-up load (both)")
    parser.add_argument("--gzip", action="store_true", help="send Content-Encoding: gzip bodies (both protocols)")
    parser.add_argument(
        "--conversation-share", type=float, default=1.0,
        help="share of conversations whose root spans carry gen_ai.conversation.id (0: no thread messages)",
    )  # fmt: skip
    parser.add_argument(
        "--report-chat", action="store_true",
        help="the /api/report phase also sends the chat events OTLP derives from conversation roots (the same "
        "work; its batches then exceed --batch-size: raise the server's OBSERVATORY_MAX_BATCH_EVENTS)",
    )  # fmt: skip
    parser.add_argument("--analyze", choices=["auto", "always", "never"], default="auto")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=str(RESULTS_DIR / "otlp.json"), help="where to write the results")
    parser.add_argument("--quick", action="store_true", help="a tiny run: batch 100, 1 s phases at 1 and 2 workers")
    args = parse_server_args(parser, argv, "to verify that every span landed")
    if args.batch_size < 1 or args.rounds < 1 or not 0 <= args.conversation_share <= 1:
        parser.error("--batch-size and --rounds must be positive, --conversation-share in [0, 1]")
    if args.quick:
        args.concurrency, args.batch_size, args.seconds, args.warmup, args.rounds = [1, 2], 100, 1.0, 0.4, 1
    return run(
        url=args.url, key=args.key, database_url=args.database_url, concurrencies=args.concurrency,
        batch_size=args.batch_size, seconds=args.seconds, rounds=args.rounds, use_gzip=args.gzip,
        conversation_share=args.conversation_share, report_chat=args.report_chat, warmup_seconds=args.warmup,
        analyze=args.analyze, seed=args.seed, json_path=args.json,
    )  # fmt: skip


if __name__ == "__main__":
    main()
