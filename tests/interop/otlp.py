"""OTLP export requests built for tests: spans as plain dicts, encoded as protobuf (with the official
opentelemetry-proto classes) or as the OTLP JSON mapping, and posted to /v1/traces."""

from __future__ import annotations

import gzip

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from bench.otlp import set_any_value

TRACE = "5b8efff798038103d269b633813fc60c"
T0 = 1_780_000_000_000_000_000  # 2026-05-28T20:26:40Z in nanoseconds


def span(span_id: str, name: str = "span", parent: str = "", trace: str = TRACE, start_ms: int = 0,
         end_ms: int | None = 100, attributes: dict | None = None, **extra) -> dict:  # fmt: skip
    return {
        "trace_id": trace, "span_id": span_id, "parent_span_id": parent, "name": name,
        "start": T0 + start_ms * 1_000_000, "end": None if end_ms is None else T0 + end_ms * 1_000_000,
        "attributes": attributes or {}, **extra,
    }  # fmt: skip


def _attributes(target, values: dict) -> None:
    for key, value in values.items():
        set_any_value(target.add(key=key).value, value)


def protobuf(*spans: dict, resource: dict | None = None) -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    _attributes(resource_spans.resource.attributes, resource or {"service.name": "support-bot"})
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "tests"
    for s in spans:
        pb = scope_spans.spans.add(
            trace_id=bytes.fromhex(s["trace_id"]), span_id=bytes.fromhex(s["span_id"]), name=s["name"],
            start_time_unix_nano=s["start"], end_time_unix_nano=s["end"] or 0, kind=s.get("kind", 1),
        )  # fmt: skip
        if s["parent_span_id"]:
            pb.parent_span_id = bytes.fromhex(s["parent_span_id"])
        _attributes(pb.attributes, s["attributes"])
        for name, attributes in s.get("events", []):
            event = pb.events.add(name=name, time_unix_nano=s["start"])
            _attributes(event.attributes, attributes)
        if "status" in s:
            pb.status.code, pb.status.message = s["status"]
    return request.SerializeToString()


def _json_any(value) -> dict:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_json_any(item) for item in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": _json_attributes(value)}}
    return {"stringValue": value}


def _json_attributes(values: dict) -> list[dict]:
    return [{"key": key, "value": _json_any(value)} for key, value in values.items()]


def json_request(*spans: dict, resource: dict | None = None) -> dict:
    def one(s: dict) -> dict:
        body = {
            "traceId": s["trace_id"], "spanId": s["span_id"], "name": s["name"], "kind": s.get("kind", 1),
            "startTimeUnixNano": str(s["start"]), "endTimeUnixNano": str(s["end"] or 0),
            "attributes": _json_attributes(s["attributes"]),
            "events": [{"name": n, "timeUnixNano": str(s["start"]), "attributes": _json_attributes(a)}
                       for n, a in s.get("events", [])],
        }  # fmt: skip
        if s["parent_span_id"]:
            body["parentSpanId"] = s["parent_span_id"]
        if "status" in s:
            body["status"] = {"code": s["status"][0], "message": s["status"][1]}
        return body

    return {
        "resourceSpans": [{
            "resource": {"attributes": _json_attributes(resource or {"service.name": "support-bot"})},
            "scopeSpans": [{"scope": {"name": "tests"}, "spans": [one(s) for s in spans]}],
        }]
    }  # fmt: skip


def post_protobuf(client, body: bytes, *, path: str = "/v1/traces", gzipped: bool = False, **extra):
    if gzipped:
        body, extra["HTTP_CONTENT_ENCODING"] = gzip.compress(body), "gzip"
    return client.post(path, body, content_type="application/x-protobuf", **extra)


def post_json(client, document, *, path: str = "/v1/traces", gzipped: bool = False, **extra):
    body = document if isinstance(document, bytes) else orjson.dumps(document)
    if gzipped:
        body, extra["HTTP_CONTENT_ENCODING"] = gzip.compress(body), "gzip"
    return client.post(path, body, content_type="application/json", **extra)


def partial_success(response) -> tuple[int, str]:
    """(rejected spans, error message) of a 200 answer, protobuf or JSON."""
    assert response.status_code == 200, response.content
    if response["Content-Type"] == "application/x-protobuf":
        answer = ExportTraceServiceResponse.FromString(response.content)
        return answer.partial_success.rejected_spans, answer.partial_success.error_message
    partial = orjson.loads(response.content).get("partialSuccess", {})
    return int(partial.get("rejectedSpans", 0)), partial.get("errorMessage", "")


def run_id(span_id: str, trace: str = TRACE) -> str:
    return f"{trace}-{span_id}"
