"""An OpenTelemetry span, as the events of `/api/report` (SPEC §2): one span is one run.

Three attribute vocabularies name what a span is: the OpenTelemetry GenAI semantic
conventions (`gen_ai.*`), OpenInference (`openinference.span.kind`, `llm.*`, `input.value`)
and Langfuse's (`langfuse.observation.*`, `langfuse.trace.*`); OpenLLMetry's older
`gen_ai.prompt.N.*` and `traceloop.*` are read as well. Whatever none of them claims is
kept in the run's metadata under its own key. The mapping is written out in docs/INTEROP.md.

Pure functions over plain values: the pipeline that validates and stores the events is
apps.ingestion's, exactly as for our own SDK's events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STATUS_ERROR = 2
SPAN_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}

OPERATION_TYPES = {
    "chat": "llm",
    "text_completion": "llm",
    "generate_content": "llm",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "execute_tool": "tool",
    "embeddings": "embedding",
    "retrieval": "retriever",
}
OPENINFERENCE_TYPES = {"LLM": "llm", "EMBEDDING": "embedding", "RETRIEVER": "retriever"}
LANGFUSE_TYPES = {"generation": "llm"}
TRACELOOP_TYPES = {"workflow": "chain", "task": "chain"}
TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_NAME = 200
MAX_SPAN_EVENTS = 20
# Resource attributes every SDK adds: noise on every run.
RESOURCE_NOISE = ("telemetry.sdk.", "process.", "host.", "os.")


@dataclass(slots=True)
class Span:
    """One decoded span: ids as lowercase hex, times in nanoseconds, attributes as plain values."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    events: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    status_code: int = 0
    status_message: str = ""
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str = ""


class SpanInvalid(Exception):
    """The span cannot be a run; the message names the field."""


def run_id(trace_id: str, span_id: str) -> str:
    """Span ids are unique only within their trace: the trace id makes the run id unique in the app."""
    return f"{trace_id}-{span_id}"


def span_events(span: Span) -> list[dict]:
    """The run event of the span, then the chat messages it stands for (a conversation's root span)."""
    if not span.trace_id:
        raise SpanInvalid("traceId: required")
    if not span.span_id:
        raise SpanInvalid("spanId: required")
    attrs = _Attributes(span.attributes)
    event = {"id": f"otel-{span.trace_id}-{span.span_id}", "run_id": run_id(span.trace_id, span.span_id)}
    if span.parent_span_id:
        event["parent_run_id"] = run_id(span.trace_id, span.parent_span_id)
    run_type = _type(attrs, span)
    started = _time(span.start_ns, "startTimeUnixNano")
    if span.end_ns:
        event.update(
            name=f"{run_type}_call", type=run_type, started_at=started, timestamp=_time(span.end_ns, "endTimeUnixNano")
        )
    else:  # still open: a start only
        event.update(name=f"{run_type}_start", type=run_type, timestamp=started)
    event["run_name"] = span.name[:MAX_NAME] or None
    metadata: dict[str, Any] = {}
    _model_and_tokens(attrs, event, metadata)
    _people_and_thread(attrs, event)
    agent = attrs.take("gen_ai.agent.name") or (attrs.peek("gen_ai.tool.name") if run_type == "tool" else None)
    if agent is None and run_type == "agent":
        agent = span.name or None
    if agent is None and not span.parent_span_id:
        agent = attrs.peek("langfuse.trace.name") or _service_name(span.resource)
    if agent is not None:
        metadata["agent"] = str(agent)
    event["input"], event["output"] = _input(attrs), _output(attrs)
    event["error"] = _error(span, attrs)
    if event["error"] is not None:
        event["status"] = "error"
    event["tags"] = _tags(attrs)
    metadata.update(_metadata_objects(attrs))
    metadata.update(attrs.rest())
    metadata["otel"] = _otel(span)
    event["metadata"] = metadata
    event = {key: value for key, value in event.items() if value is not None and value != []}
    return [event, *_chat_messages(event, span)]


def _service_name(resource: dict[str, Any]) -> str | None:
    """The resource's `service.name`, unless it is the SDK's `unknown_service:<language>` default."""
    name = resource.get("service.name")
    return None if not isinstance(name, str) or name.startswith("unknown_service") else name


# --- attributes ---------------------------------------------------------------------------


class _Attributes:
    """The span's attributes, each taken at most once; what nobody took goes to metadata."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = dict(values)

    def take(self, *keys: str) -> Any:
        found = None
        for key in keys:
            value = self.values.pop(key, None)
            if found is None and value is not None and value != "":
                found = value
        return found

    def peek(self, key: str) -> Any:
        return self.values.get(key)

    def take_prefixed(self, prefix: str) -> dict[str, Any]:
        keys = [key for key in self.values if key.startswith(prefix)]
        return {key[len(prefix) :]: self.values.pop(key) for key in keys}

    def take_indexed(self, prefix: str) -> list[dict[str, Any]]:
        """`prefix.0.message.role=…, prefix.0.message.content=…` as `[{"role": …, "content": …}]`
        (and OpenInference's `retrieval.documents.0.document.*` as `[{"id": …, "content": …}]`)."""
        items: dict[int, dict[str, Any]] = {}
        for rest, value in self.take_prefixed(prefix + ".").items():
            index, _, path = rest.partition(".")
            if index.isdigit() and path:
                items.setdefault(int(index), {})[path.removeprefix("message.").removeprefix("document.")] = value
        return [items[index] for index in sorted(items)]

    def rest(self) -> dict[str, Any]:
        return self.values


def _type(attrs: _Attributes, span: Span) -> str:
    operation = attrs.take("gen_ai.operation.name")
    kind = attrs.take("openinference.span.kind")
    observation = attrs.take("langfuse.observation.type")
    traceloop = attrs.take("traceloop.span.kind")
    request_type = attrs.peek("llm.request.type")
    for value, table in (
        (observation, LANGFUSE_TYPES),
        (operation, OPERATION_TYPES),
        (kind, OPENINFERENCE_TYPES),
        (traceloop, TRACELOOP_TYPES),
    ):
        if isinstance(value, str) and value:
            mapped = table.get(value) or table.get(value.lower()) or value.lower()
            if TYPE_RE.match(mapped):
                return mapped
    if request_type in ("chat", "completion"):
        return "llm"
    return "span"


def _integer(value: Any) -> int | None:
    """A token count as an exporter may send it: an int, a whole double or a numeric string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value if isinstance(value, int) else None


def _model_and_tokens(attrs: _Attributes, event: dict, metadata: dict) -> None:
    requested = attrs.take("gen_ai.request.model", "llm.request.model")
    model = attrs.take(
        "gen_ai.response.model", "llm.model_name", "langfuse.observation.model.name", "llm.response.model"
    )
    event["model"] = str(model or requested)[:MAX_NAME] if (model or requested) else None
    if requested and model and requested != model:
        metadata["requested_model"] = requested
    usage = _json(attrs.take("langfuse.observation.usage_details"))
    usage = usage if isinstance(usage, dict) else {}
    counts = {
        "prompt_tokens": (
            attrs.take(
                "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
                "llm.usage.prompt_tokens",
            ),
            usage.get("input", usage.get("prompt_tokens", usage.get("input_tokens"))),
        ),
        "completion_tokens": (
            attrs.take(
                "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion",
                "llm.usage.completion_tokens",
            ),
            usage.get("output", usage.get("completion_tokens", usage.get("output_tokens"))),
        ),
        "total_tokens": (
            attrs.take("llm.token_count.total", "llm.usage.total_tokens", "gen_ai.usage.total_tokens"),
            usage.get("total", usage.get("total_tokens")),
        ),
        "cached_prompt_tokens": (
            attrs.take(
                "gen_ai.usage.cache_read_input_tokens", "gen_ai.usage.cache_read.input_tokens",
                "llm.token_count.prompt_details.cache_read",
            ),
            usage.get("input_cached_tokens", usage.get("cache_read_input_tokens")),
        ),
    }  # fmt: skip
    for name, candidates in counts.items():
        for candidate in candidates:
            if candidate is not None:
                value = _integer(candidate)
                if value is None:  # kept, not lost: a wrong type is shown, not counted
                    metadata[f"unreadable.{name}"] = candidate
                else:
                    event[name] = value
                    break


def _people_and_thread(attrs: _Attributes, event: dict) -> None:
    event["user_id"] = _text(attrs.take("user.id", "langfuse.user.id", "enduser.id", "gen_ai.user.id"))
    event["user_email"] = _text(attrs.take("user.email", "enduser.email"))
    event["thread_id"] = _text(
        attrs.take(
            "gen_ai.conversation.id",
            "session.id",
            "langfuse.session.id",
            "thread.id",
            "traceloop.association.properties.thread_id",
        )
    )


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def _json(value: Any) -> Any:
    """A JSON document sent as a string attribute, parsed; anything else as it is."""
    if isinstance(value, str) and value[:1] in ("{", "[", '"'):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _messages(value: Any) -> Any:
    """GenAI `parts` messages as `{role, content}`, content the text when every part is text."""
    value = _json(value)
    if not isinstance(value, list):
        return value
    messages = []
    for message in value:
        if isinstance(message, dict) and isinstance(message.get("parts"), list):
            parts = message["parts"]
            texts = [p.get("content") for p in parts if isinstance(p, dict) and p.get("type") == "text"]
            converted = {key: item for key, item in message.items() if key != "parts"}
            converted["content"] = "\n".join(map(str, texts)) if len(texts) == len(parts) else parts
            messages.append(converted)
        else:
            messages.append(message)
    return messages


def _payload(attrs: _Attributes, side: str) -> Any:
    """The span's `input` or `output`: the first vocabulary that carries it. Every candidate is
    taken, so that none is also kept in metadata."""
    candidates = [
        _messages(attrs.take(f"gen_ai.{side}.messages")),
        (attrs.take_indexed("retrieval.documents") or None) if side == "output" else None,
        attrs.take_indexed(f"llm.{side}_messages") or None,
        attrs.take_indexed("gen_ai.prompt" if side == "input" else "gen_ai.completion") or None,
        _json(attrs.take(f"langfuse.observation.{side}")),
        _json(attrs.take(f"{side}.value")),
        _json(attrs.take(f"traceloop.entity.{side}")),
        _json(attrs.take(f"langfuse.trace.{side}")),
    ]
    attrs.take(f"{side}.mime_type")
    return next((candidate for candidate in candidates if candidate is not None), None)


def _input(attrs: _Attributes) -> Any:
    system = _messages(attrs.take("gen_ai.system_instructions"))
    value = _payload(attrs, "input")
    return system + value if isinstance(system, list) and isinstance(value, list) else value


def _output(attrs: _Attributes) -> Any:
    value = _payload(attrs, "output")
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict) and "role" in value[0]:
        return value[0]  # one answer: shown as the message it is
    return value


def _error(span: Span, attrs: _Attributes) -> dict | None:
    exception = next((attributes for name, _, attributes in span.events if name == "exception"), None)
    level = attrs.take("langfuse.observation.level")
    level_message = attrs.take("langfuse.observation.status_message")
    if span.status_code != STATUS_ERROR and exception is None and level != "ERROR":
        return None
    exception = exception or {}
    message = span.status_message or exception.get("exception.message") or level_message or "error"
    error = {
        "type": exception.get("exception.type"),
        "message": str(message),
        "stack": exception.get("exception.stacktrace"),
    }
    return {key: str(value) for key, value in error.items() if value is not None}


def _tags(attrs: _Attributes) -> list[str]:
    tags: list[str] = []
    for value in (attrs.take("tag.tags"), attrs.take("langfuse.trace.tags"), attrs.take("gen_ai.tags")):
        value = _json(value)
        values = value if isinstance(value, list) else [value] if isinstance(value, str) else []
        tags += [str(tag)[:100] for tag in values if tag is not None and str(tag) and str(tag)[:100] not in tags]
    return tags[:50]


def _metadata_objects(attrs: _Attributes) -> dict[str, Any]:
    """OpenInference's `metadata` (a JSON object) and Langfuse's `langfuse.*.metadata.<key>` attributes."""
    found: dict[str, Any] = {}
    metadata = _json(attrs.take("metadata"))
    if isinstance(metadata, dict):
        found.update(metadata)
    elif metadata is not None:
        found["metadata"] = metadata
    for prefix in ("langfuse.trace.metadata.", "langfuse.observation.metadata.", "traceloop.association.properties."):
        found.update({key: _json(value) for key, value in attrs.take_prefixed(prefix).items()})
    return found


def _otel(span: Span) -> dict[str, Any]:
    otel: dict[str, Any] = {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "kind": SPAN_KINDS.get(span.kind, span.kind),
    }
    if span.scope:
        otel["scope"] = span.scope
    resource = {key: value for key, value in span.resource.items() if not key.startswith(RESOURCE_NOISE)}
    if resource:
        otel["resource"] = resource
    others = [
        {"name": name, "time_unix_nano": str(time_ns), "attributes": attributes}
        for name, time_ns, attributes in span.events
        if name != "exception"
    ]
    if others:
        otel["events"] = others[:MAX_SPAN_EVENTS]
    return otel


def _time(nanoseconds: int, name: str) -> str:
    try:
        return (EPOCH + timedelta(microseconds=nanoseconds // 1000)).isoformat()
    except OverflowError:
        raise SpanInvalid(f"{name}: {nanoseconds} is out of range") from None


# --- threads ------------------------------------------------------------------------------


def _chat_messages(event: dict, span: Span) -> list[dict]:
    """A conversation's root span is one exchange in its thread: its input the user's, its output the answer.

    Only the root: the LLM calls inside it repeat the conversation so far, and would
    repeat its messages. The answer links to the root run (its latency, its trace).
    """
    thread_id = event.get("thread_id")
    if span.parent_span_id or not thread_id:
        return []
    agent = event["metadata"].get("agent")
    common = {"thread_id": thread_id, "metadata": {"agent": agent} if agent else {}}
    common |= {key: event[key] for key in ("user_id", "user_email") if key in event}
    messages = []
    question, answer = _said(event.get("input"), "user"), _said(event.get("output"), "assistant")
    if question is not None:
        messages.append({
            **common, "name": "chat", "role": "user", "content": question, "message_id": f"{event['run_id']}-in",
            "timestamp": event.get("started_at", event["timestamp"]),
        })  # fmt: skip
    if answer is not None and "started_at" in event:
        messages.append({
            **common, "name": "chat", "role": "assistant", "content": answer, "message_id": f"{event['run_id']}-out",
            "run_id": event["run_id"], "timestamp": event["timestamp"],
        })  # fmt: skip
    return messages


def _said(value: Any, role: str) -> Any:
    """What one side said, from a run's input or output: the last message of that role, else the value."""
    if isinstance(value, dict) and "content" in value:
        return value["content"]
    if isinstance(value, list):
        said = [m.get("content") for m in value if isinstance(m, dict) and m.get("role") == role]
        return said[-1] if said else None
    return value
