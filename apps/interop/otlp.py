"""OTLP/HTTP trace export requests, in and out: protobuf (with the official `opentelemetry-proto`
classes) or the OTLP JSON mapping (hex ids, enums as numbers, 64-bit integers as strings).

`decode` turns a request body into spans, each either a `Span` or the `SpanInvalid` that
keeps it from being one, so that one bad span is counted as rejected and the rest are kept.
A body that is not an export request at all is a `RequestInvalid` (HTTP 400).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from apps.interop.spans import Span, SpanInvalid

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ZERO_IDS = {"0" * 16, "0" * 32}
SPAN_KIND_NAMES = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
                   "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}  # fmt: skip
STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
MAX_ATTRIBUTE_DEPTH = 8
# google.rpc.Code values for the error body of each HTTP status (OTLP/HTTP "Failures").
RPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 411: 3, 413: 8, 415: 3, 429: 8, 503: 14}


class RequestInvalid(Exception):
    """The body is not an OTLP export request (HTTP 400)."""


def encoding_of(content_type: str) -> str | None:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type if media_type in (PROTOBUF, JSON) else None


def decode(body: bytes, encoding: str) -> list[Span | SpanInvalid]:
    return _decode_protobuf(body) if encoding == PROTOBUF else _decode_json(body)


# --- protobuf -------------------------------------------------------------------------------


def _decode_protobuf(body: bytes) -> list[Span | SpanInvalid]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise RequestInvalid(f"body is not a valid protobuf ExportTraceServiceRequest: {exc}") from None
    spans: list[Span | SpanInvalid] = []
    for resource_spans in request.resource_spans:
        resource = _pb_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name
            for span in scope_spans.spans:
                spans.append(
                    Span(
                        trace_id=_pb_id(span.trace_id),
                        span_id=_pb_id(span.span_id),
                        parent_span_id=_pb_id(span.parent_span_id),
                        name=span.name,
                        kind=span.kind,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes=_pb_attributes(span.attributes),
                        events=[(e.name, e.time_unix_nano, _pb_attributes(e.attributes)) for e in span.events],
                        status_code=span.status.code,
                        status_message=span.status.message,
                        resource=resource,
                        scope=scope,
                    )
                )
    return spans


def _pb_id(raw: bytes) -> str:
    hex_id = raw.hex()
    return "" if hex_id in ZERO_IDS else hex_id


def _pb_attributes(pairs) -> dict[str, Any]:
    return {pair.key: _pb_value(pair.value, 0) for pair in pairs}


def _pb_value(value, depth: int) -> Any:
    which = value.WhichOneof("value")
    if which is None or depth > MAX_ATTRIBUTE_DEPTH:
        return None
    if which == "array_value":
        return [_pb_value(item, depth + 1) for item in value.array_value.values]
    if which == "kvlist_value":
        return {pair.key: _pb_value(pair.value, depth + 1) for pair in value.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, which)


# --- JSON -----------------------------------------------------------------------------------


def _decode_json(body: bytes) -> list[Span | SpanInvalid]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestInvalid(f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise RequestInvalid("body must be a JSON object: an ExportTraceServiceRequest")
    spans: list[Span | SpanInvalid] = []
    for resource_spans in _list(document, "resourceSpans", "resource_spans", where="body"):
        resource = _json_resource(_object(_object(resource_spans, "resourceSpans[]").get("resource"), "resource"))
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans", where="resourceSpans[]"):
            scope_spans = _object(scope_spans, "scopeSpans[]")
            scope = _object(scope_spans.get("scope"), "scope").get("name") or ""
            for raw in _list(scope_spans, "spans", where="scopeSpans[]"):
                try:
                    spans.append(_json_span(raw, resource, str(scope)))
                except SpanInvalid as exc:
                    spans.append(exc)
    return spans


def _list(container: dict, *keys: str, where: str) -> list:
    value = next((container[key] for key in keys if key in container), None)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RequestInvalid(f"{where}.{keys[0]}: expected a list")
    return value


def _object(value: Any, name: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestInvalid(f"{name}: expected an object")
    return value


def _get(raw: dict, camel: str, snake: str) -> Any:
    return raw.get(camel, raw.get(snake))


def _json_span(raw: Any, resource: dict, scope: str) -> Span:
    if not isinstance(raw, dict):
        raise SpanInvalid("span: expected an object")
    status = raw.get("status") or {}
    if not isinstance(status, dict):
        raise SpanInvalid("status: expected an object")
    events = raw.get("events") or []
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise SpanInvalid("events: expected a list of objects")
    name = raw.get("name") or ""
    if not isinstance(name, str):
        raise SpanInvalid("name: expected a string")
    message = status.get("message") or ""
    return Span(
        trace_id=_json_id(_get(raw, "traceId", "trace_id"), "traceId", 32),
        span_id=_json_id(_get(raw, "spanId", "span_id"), "spanId", 16),
        parent_span_id=_json_id(_get(raw, "parentSpanId", "parent_span_id"), "parentSpanId", 16),
        name=name,
        kind=_enum(raw.get("kind"), SPAN_KIND_NAMES, "kind"),
        start_ns=_uint64(_get(raw, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano"),
        end_ns=_uint64(_get(raw, "endTimeUnixNano", "end_time_unix_nano"), "endTimeUnixNano"),
        attributes=_json_attributes(raw),
        events=[
            (
                str(e.get("name") or ""),
                _uint64(_get(e, "timeUnixNano", "time_unix_nano"), "events.timeUnixNano"),
                _json_attributes(e),
            )
            for e in events
        ],  # fmt: skip
        status_code=_enum(status.get("code"), STATUS_NAMES, "status.code"),
        status_message=message if isinstance(message, str) else str(message),
        resource=resource,
        scope=scope,
    )


def _json_id(value: Any, name: str, length: int) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or len(value) != length:
        raise SpanInvalid(f"{name}: expected {length} hexadecimal characters")
    try:
        bytes.fromhex(value)
    except ValueError:
        raise SpanInvalid(f"{name}: expected {length} hexadecimal characters") from None
    value = value.lower()
    return "" if value in ZERO_IDS else value


def _uint64(value: Any, name: str) -> int:
    if value in (None, ""):
        return 0
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise SpanInvalid(f"{name}: expected an unsigned 64-bit integer")
    return value


def _enum(value: Any, names: dict[str, int], name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, str) and value in names:
        return names[value]
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpanInvalid(f"{name}: expected an integer")
    return value


def _json_resource(resource: dict) -> dict[str, Any]:
    try:
        return _json_attributes(resource)
    except SpanInvalid as exc:  # shared by all the resource's spans: the request is wrong
        raise RequestInvalid(f"resource.{exc}") from None


def _json_attributes(container: dict) -> dict[str, Any]:
    pairs = container.get("attributes") or []
    if not isinstance(pairs, list):
        raise SpanInvalid("attributes: expected a list of {key, value}")
    return _json_pairs(pairs, 0)


def _json_pairs(pairs: list, depth: int) -> dict[str, Any]:
    values = {}
    for pair in pairs:
        if not isinstance(pair, dict) or not isinstance(pair.get("key"), str):
            raise SpanInvalid("attributes: expected a list of {key, value}")
        values[pair["key"]] = _json_value(pair.get("value"), depth)
    return values


def _json_value(value: Any, depth: int) -> Any:
    if not isinstance(value, dict) or not value or depth > MAX_ATTRIBUTE_DEPTH:
        return None
    (which, item), *_ = value.items()
    if which in ("intValue", "int_value"):
        digits = isinstance(item, str) and 0 < len(item) <= 20 and item.lstrip("-").isdigit()
        return int(item) if digits else item
    if which in ("arrayValue", "array_value"):
        items = item.get("values") if isinstance(item, dict) else None
        return [_json_value(v, depth + 1) for v in items] if isinstance(items, list) else None
    if which in ("kvlistValue", "kvlist_value"):
        items = item.get("values") if isinstance(item, dict) else None
        return _json_pairs(items, depth + 1) if isinstance(items, list) else None
    return item  # stringValue, boolValue, doubleValue, bytesValue (base64, kept as text)


# --- responses ------------------------------------------------------------------------------


def success_body(rejected: int, message: str, encoding: str) -> bytes:
    """An ExportTraceServiceResponse: empty when all spans were taken, else its partialSuccess."""
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if encoding == PROTOBUF:
        return response.SerializeToString()
    if not rejected:
        return b"{}"
    return orjson.dumps({"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": message}})


def error_body(status: int, message: str, encoding: str) -> bytes:
    """A google.rpc.Status, as OTLP/HTTP answers a failed request, in the request's encoding."""
    code = RPC_CODES.get(status, 2)
    if encoding == PROTOBUF:
        return status_pb2.Status(code=code, message=message).SerializeToString()
    return orjson.dumps({"code": code, "message": message})
