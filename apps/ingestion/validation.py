"""Validate and normalise one reported event (SPEC §2) into an `EventIn` (apps.tracing.events).

Plain Python over the parsed dict — no serializer, no ORM — because this runs for every
event of every batch. Each problem raises `EventInvalid("field: message")`; the caller
turns it into a per-event error and the rest of the batch goes on.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from apps.tracing.events import EventIn

RUN_PHASES = ("start", "end", "error", "call")
CHAT_ROLES = {"user", "assistant", "system", "tool"}
RATINGS = {"positive", "negative"}
TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# JavaScript's safe integer range: anything larger is a client bug, and sums of such
# counts would overflow 64-bit columns.
MAX_TOKENS = 2**53 - 1
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_FUTURE = timedelta(days=1)
MAX_TAGS = 50


class EventInvalid(Exception):
    """The event is rejected; the message names the field ("timestamp: not ISO 8601")."""


# --- field readers -------------------------------------------------------------------


def _string(value: Any, name: str, max_length: int, *, allow_int: bool = False) -> str | None:
    if value is None:
        return None
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise EventInvalid(f"{name}: expected a string, got {_type_name(value)}")
    if value == "":
        return None
    if len(value) > max_length:
        raise EventInvalid(f"{name}: longer than {max_length} characters")
    return value


def _tokens(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventInvalid(f"{name}: expected a non-negative integer, got {_type_name(value)}")
    if value < 0:
        raise EventInvalid(f"{name}: must not be negative")
    if value > MAX_TOKENS:
        raise EventInvalid(f"{name}: larger than {MAX_TOKENS}")
    return value


def _number(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EventInvalid(f"{name}: expected a number, got {_type_name(value)}")
    if value < 0:
        raise EventInvalid(f"{name}: must not be negative")
    if value > 86400 * 365:
        raise EventInvalid(f"{name}: longer than a year")
    return float(value)


def parse_timestamp(value: Any, name: str, now: datetime) -> datetime:
    if not isinstance(value, str):
        raise EventInvalid(f"{name}: expected an ISO 8601 string, got {_type_name(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise EventInvalid(f"{name}: {value[:40]!r} is not an ISO 8601 timestamp") from None
    # A client timestamp without a zone is UTC by contract, never the server's local time.
    # An offset can move it past year 1 or 9999, where datetime overflows: out of range too.
    try:
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        parsed = None
    if parsed is None or parsed < EARLIEST or parsed > now + MAX_FUTURE:
        raise EventInvalid(f"{name}: {value[:40]!r} is out of range (2000-01-01 to one day ahead)")
    return parsed


def _object(value: Any, name: str) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise EventInvalid(f"{name}: expected an object, got {_type_name(value)}")
    return value


def _tags(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise EventInvalid(f"{name}: expected a list of strings, got {_type_name(value)}")
    if len(value) > MAX_TAGS:
        raise EventInvalid(f"{name}: more than {MAX_TAGS} tags")
    tags = []
    for position, tag in enumerate(value):
        tag = _string(tag, f"{name}[{position}]", 100)
        if tag is not None and tag not in tags:
            tags.append(tag)
    return tags


def _error(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value or None
    if not isinstance(value, dict):
        raise EventInvalid(f"error: expected a string or an object, got {_type_name(value)}")
    for key in ("type", "message", "stack"):
        if value.get(key) is not None and not isinstance(value[key], str):
            raise EventInvalid(f"error.{key}: expected a string, got {_type_name(value[key])}")
    return value


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _pick(event: dict, metadata: dict, key: str) -> Any:
    """A well-known field from the top level, else from metadata (SPEC §2)."""
    value = event.get(key)
    return metadata.get(key) if value is None else value


# --- the event --------------------------------------------------------------------------


def classify(name: str) -> tuple[str, str | None, str | None]:
    """(kind, phase, type implied by the name) for an event name."""
    if name in ("saved", "chat", "feedback"):
        return name, None, None
    prefix, _, suffix = name.rpartition("_")
    if prefix and suffix in RUN_PHASES:
        return "run", suffix, prefix
    return "custom", None, None


def validate_event(raw: Any, index: int, now: datetime) -> EventIn:
    if not isinstance(raw, dict):
        raise EventInvalid(f"event: expected an object, got {_type_name(raw)}")
    name = _string(raw.get("name"), "name", 100)
    if name is None:
        raise EventInvalid("name: required")
    kind, phase, implied_type = classify(name)
    metadata = _object(raw.get("metadata"), "metadata") or {}
    timestamp = raw.get("timestamp")
    event = EventIn(
        index=index,
        name=name,
        kind=kind,
        phase=phase,
        raw=raw,
        timestamp=now if timestamp is None else parse_timestamp(timestamp, "timestamp", now),
        timestamp_given=timestamp is not None,
        metadata=metadata,
    )
    event.client_id = _string(raw.get("id", raw.get("event_id")), "id", 128, allow_int=True)
    event.app_ref = _string(_pick(raw, metadata, "app_id"), "app_id", 64)
    event.run_id = _string(raw.get("run_id"), "run_id", 128)
    event.parent_run_id = _string(raw.get("parent_run_id"), "parent_run_id", 128)
    _read_run_fields(event, raw, metadata, implied_type)
    READERS[kind](event, raw, now)
    return event


def _read_run_fields(event: EventIn, raw: dict, metadata: dict, implied_type: str | None) -> None:
    event.type = _string(raw.get("type"), "type", 32) or implied_type
    if event.type is not None and not TYPE_RE.match(event.type):
        raise EventInvalid("type: must be a short lowercase word (a-z, 0-9, _)")
    event.run_name = _string(_pick(raw, metadata, "run_name"), "run_name", 200)
    event.agent = _string(metadata.get("agent"), "metadata.agent", 200)
    event.user_id = _string(_pick(raw, metadata, "user_id"), "user_id", 200, allow_int=True)
    event.user_email = _string(_pick(raw, metadata, "user_email"), "user_email", 254)
    event.user_props = _object(_pick(raw, metadata, "user_props"), "user_props")
    event.thread_id = _string(_pick(raw, metadata, "thread_id"), "thread_id", 128)
    event.model = _string(_pick(raw, metadata, "model"), "model", 200)
    _read_tokens(event, raw, metadata)
    if event.total_tokens is None and event.prompt_tokens is not None and event.completion_tokens is not None:
        event.total_tokens = event.prompt_tokens + event.completion_tokens
    event.tags = _tags(raw.get("tags"), "tags")
    event.tags += [tag for tag in _tags(metadata.get("tags"), "metadata.tags") if tag not in event.tags]
    event.input, event.output = raw.get("input"), raw.get("output")
    event.error = _error(raw.get("error"))
    status = raw.get("status")
    if status is not None and status not in ("success", "error"):
        raise EventInvalid("status: must be 'success' or 'error'")
    event.status = "error" if event.error is not None or event.phase == "error" else status


def _read_tokens(event: EventIn, raw: dict, metadata: dict) -> None:
    """Token counts from the top level, else metadata, else an OpenAI-style `usage` object."""
    usage = _object(_pick(raw, metadata, "usage"), "usage") or {}
    details = _object(usage.get("prompt_tokens_details"), "usage.prompt_tokens_details") or {}
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = _pick(raw, metadata, name)
        setattr(event, name, _tokens(value, name) if value is not None else _tokens(usage.get(name), f"usage.{name}"))
    cached = _pick(raw, metadata, "cached_prompt_tokens")
    event.cached_prompt_tokens = (
        _tokens(cached, "cached_prompt_tokens")
        if cached is not None
        else _tokens(details.get("cached_tokens"), "usage.prompt_tokens_details.cached_tokens")
    )
    if event.cached_prompt_tokens is not None and event.prompt_tokens is not None:
        if event.cached_prompt_tokens > event.prompt_tokens:
            raise EventInvalid("cached_prompt_tokens: more than prompt_tokens, which include them")


def _read_run(event: EventIn, raw: dict, now: datetime) -> None:
    if event.run_id is None:
        raise EventInvalid("run_id: required for run events")
    if event.parent_run_id == event.run_id:
        raise EventInvalid("parent_run_id: a run cannot be its own parent")
    if event.phase != "call":
        return
    # A one-shot run: the event's timestamp is its end; its start comes from the duration.
    latency = _number(raw.get("latency_s"), "latency_s")
    duration_ms = _number(raw.get("duration_ms"), "duration_ms")
    if raw.get("started_at") is not None:
        event.started_at = parse_timestamp(raw["started_at"], "started_at", now)
        if event.started_at > event.timestamp:
            raise EventInvalid("started_at: after the event's timestamp")
    elif latency is not None or duration_ms is not None:
        event.started_at = event.timestamp - timedelta(seconds=latency if latency is not None else duration_ms / 1000)
    else:
        event.started_at = event.timestamp


def _read_saved(event: EventIn, raw: dict, now: datetime) -> None:
    if event.run_id is None:
        raise EventInvalid("run_id: required for saved events")


def _read_chat(event: EventIn, raw: dict, now: datetime) -> None:
    role = raw.get("role")
    if role not in CHAT_ROLES:
        raise EventInvalid(f"role: must be one of {', '.join(sorted(CHAT_ROLES))}")
    event.role = role
    event.content = raw.get("content")
    event.message_id = _string(raw.get("message_id"), "message_id", 128)


def _read_feedback(event: EventIn, raw: dict, now: datetime) -> None:
    event.message_id = _string(raw.get("message_id"), "message_id", 128)
    if event.run_id is None and event.message_id is None:
        raise EventInvalid("run_id: feedback needs a run_id or a message_id")
    rating = raw.get("rating")
    if rating not in RATINGS:
        raise EventInvalid("rating: must be 'positive' or 'negative'")
    event.rating = rating
    event.comment = _string(raw.get("comment"), "comment", 10_000)
    score = _object(raw.get("score"), "score")
    if score is not None:
        event.score_name = _string(score.get("name"), "score.name", 200)
        value = score.get("value")
        if value is not None and not isinstance(value, bool | str) and not _finite_number(value):
            raise EventInvalid(f"score.value: expected a number, a boolean or a string, got {_type_name(value)}")
        if isinstance(value, str) and len(value) > 200:
            raise EventInvalid("score.value: longer than 200 characters")
        event.score_value = value


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _read_custom(event: EventIn, raw: dict, now: datetime) -> None:
    pass


READERS = {
    "run": _read_run,
    "saved": _read_saved,
    "chat": _read_chat,
    "feedback": _read_feedback,
    "custom": _read_custom,
}


# --- whole-payload checks ------------------------------------------------------------------


def check_payload(raw: Any, *, max_bytes: int, max_depth: int, strict_walk: bool) -> None:
    """Size, NUL characters, nesting depth and non-finite numbers anywhere in the event.

    The fast path serialises once with orjson: its output gives the size, and NUL
    characters show up as `\\u0000` escapes. The slow walk runs only when something may be
    wrong (many brackets, a NUL found, or a body that needed the lenient parser, which
    lets NaN and lone surrogates through).
    """
    try:
        encoded = orjson.dumps(raw)
    except orjson.JSONEncodeError:
        encoded = None  # too deep or lone surrogates: the walk below names the field
    if encoded is not None and len(encoded) > max_bytes:
        raise EventInvalid(f"event: larger than {max_bytes} bytes")
    suspicious = encoded is None or b"\\u0000" in encoded or encoded.count(b"{") + encoded.count(b"[") > max_depth
    if strict_walk or suspicious:
        _walk(raw, "", 0, max_depth)


def _walk(value: Any, path: str, depth: int, max_depth: int) -> None:
    # Paths name the field ("input.messages[0].content"), cut at a readable depth.
    if depth > max_depth:
        raise EventInvalid(f"{path or 'event'}: nested deeper than {max_depth} levels")
    if isinstance(value, str):
        _check_text(value, path or "event")
    elif isinstance(value, float) and not math.isfinite(value):
        raise EventInvalid(f"{path or 'event'}: NaN and Infinity are not valid JSON")
    elif isinstance(value, int) and not -(2**63) <= value < 2**64:
        raise EventInvalid(f"{path or 'event'}: integer out of the 64-bit range")
    elif isinstance(value, dict):
        for key, item in value.items():
            label = _label(key)
            child = (f"{path}.{label}" if path else label) if depth < 8 else path
            _check_text(key, f"{child} (key)")
            _walk(item, child, depth + 1, max_depth)
    elif isinstance(value, list):
        for position, item in enumerate(value):
            _walk(item, f"{path}[{position}]" if depth < 8 else path, depth + 1, max_depth)


def _label(key: str) -> str:
    """A key made safe to quote in an error message (no NUL, no lone surrogate)."""
    return key.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")[:60]


def _check_text(text: str, path: str) -> None:
    if "\x00" in text:
        raise EventInvalid(f"{path}: contains a NUL character (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise EventInvalid(f"{path}: contains an invalid unicode surrogate") from None
