"""Lunary's events (and LLMonitor's, the same protocol under its earlier name) as ours (SPEC §2).

A Lunary event is `{"event": "start"|"end"|"error"|"chat"|"feedback"|…, "type": "llm"|"agent"|
"tool"|"thread"|…, "runId", "parentRunId", "name", "timestamp", …}`. Its SDK sends
`parentRunId`, `userId` and `name` only on start events and nulls on the others; our merge
never erases a value with null, so the nulls are simply left out. Run ids are kept as sent:
Lunary's look like UUIDs with random version bits, LLMonitor's are decimal strings.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from apps.interop.ratings import rating_of
from apps.tracing.selectors import run_exists

PHASES = ("start", "end", "error")
ROLES = {"user": "user", "assistant": "assistant", "ai": "assistant", "bot": "assistant", "system": "system",
         "tool": "tool", "function": "tool", "human": "user"}  # fmt: skip
RESERVED_NAMES = ("saved", "chat", "feedback")
MAX_NESTING = 32


class EventInvalid(Exception):
    pass


def flatten(events: list) -> list:
    """LLMonitor's SDK re-sends a failed batch nested one list deeper per failure: `[[[{…}]]]`."""
    flat: list = []

    def walk(items: list, depth: int) -> None:
        for item in items:
            if isinstance(item, list) and depth < MAX_NESTING:
                walk(item, depth + 1)
            else:
                flat.append(item)  # past the nesting limit: a per-event error, not a crash

    walk(events, 0)
    return flat


def translate_all(raw_events: list) -> tuple[list[int], list[dict], dict[int, str]]:
    """(owner of each event, our events, {position: error}) for a batch of Lunary events."""
    owners, events, rejected = [], [], {}
    for position, raw in enumerate(raw_events):
        try:
            events.append(translate(raw))
        except EventInvalid as exc:
            rejected[position] = str(exc)
            continue
        owners.append(position)
    return owners, events, rejected


def translate(raw: Any) -> dict:
    if not isinstance(raw, dict):
        raise EventInvalid("event: expected an object")
    kind = raw.get("event")
    run_type = raw.get("type")
    if not isinstance(kind, str) or not kind:
        raise EventInvalid("event: required (start, end, error, chat, feedback or a custom event)")
    if run_type is not None and not isinstance(run_type, str):
        raise EventInvalid("type: expected a string")
    common = _common(raw)
    if kind == "chat":
        return _chat(raw, common)
    if kind == "feedback":
        return _feedback(raw, common)
    if kind in PHASES and run_type:
        return _run(raw, common, run_type, kind)
    name = raw.get("name") if isinstance(raw.get("name"), str) and raw.get("name") else kind
    if name in RESERVED_NAMES or name.rpartition("_")[2] in ("start", "end", "error", "call"):
        name = f"{name}!"  # never mistaken for one of our run or special events
    return {
        **common,
        "name": name[:100],
        "run_id": raw.get("runId") or raw.get("parentRunId"),
        "input": raw.get("input"),
    }


def _common(raw: dict) -> dict:
    event: dict[str, Any] = {"timestamp": _timestamp(raw.get("timestamp"))}
    user_props = raw.get("userProps")
    if raw.get("userId") is not None:
        event["user_id"] = raw["userId"]
    if isinstance(user_props, dict):
        event["user_props"] = user_props
        if isinstance(user_props.get("email"), str):
            event["user_email"] = user_props["email"]
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    extra = {
        key: raw[key] for key in ("params", "templateId", "runtime", "threadTags", "extra") if raw.get(key) is not None
    }
    if raw.get("metadata") is not None and not isinstance(raw.get("metadata"), dict):
        extra["metadata"] = raw["metadata"]
    event["metadata"] = {**metadata, **extra}
    return event


def _run(raw: dict, common: dict, run_type: str, phase: str) -> dict:
    run_type = run_type.lower()
    event = {**common, "name": f"{run_type}_{phase}", "type": run_type, "run_id": raw.get("runId")}
    if raw.get("parentRunId") is not None:
        event["parent_run_id"] = raw["parentRunId"]
    name = raw.get("name")
    if name is not None:
        event["model" if run_type == "llm" else "run_name"] = name
    if run_type == "agent" and isinstance(name, str):
        event["metadata"] = {"agent": name, **event["metadata"]}
    for field in ("input", "output"):
        if raw.get(field) is not None:
            event[field] = _messages(raw[field])
    if raw.get("tags") is not None:
        event["tags"] = raw["tags"]
    usage = raw.get("tokensUsage")
    if isinstance(usage, dict):
        for ours, theirs in (("prompt_tokens", "prompt"), ("completion_tokens", "completion"),
                             ("cached_prompt_tokens", "promptCached")):  # fmt: skip
            if usage.get(theirs) is not None:
                event[ours] = usage[theirs]
    elif usage is not None:
        raise EventInvalid("tokensUsage: expected an object {prompt, completion}")
    if raw.get("error") is not None:
        event["error"] = raw["error"]
    if phase == "error" and "error" not in event:
        event["error"] = "error"
    return event


def _chat(raw: dict, common: dict) -> dict:
    message = raw.get("message")
    if not isinstance(message, dict):
        raise EventInvalid("message: expected an object {role, content}")
    role = ROLES.get(str(message.get("role")).lower())
    if role is None:
        raise EventInvalid(f"message.role: {str(message.get('role'))[:40]!r} is not user, assistant, system or tool")
    event = {**common, "name": "chat", "role": role, "content": message.get("content"), "message_id": raw.get("runId")}
    if raw.get("parentRunId") is not None:
        event["thread_id"] = raw["parentRunId"]
    extra = {key: value for key, value in message.items() if key not in ("role", "content", "id")}
    if extra:
        event["metadata"] = {**event["metadata"], "message": extra}
    return event


def _feedback(raw: dict, common: dict) -> dict:
    feedback = raw.get("feedback")
    if feedback is None and isinstance(raw.get("extra"), dict):
        feedback = raw["extra"].get("feedback", raw["extra"])
    if not isinstance(feedback, dict):
        raise EventInvalid("feedback: expected an object such as {thumb: up}")
    run_id = raw.get("runId")
    # The id may be a run's or a thread message's (Lunary rates both by runId).
    event = {**common, "name": "feedback", "run_id": run_id, "message_id": run_id}
    comment = feedback.get("comment")
    if comment is not None:
        event["comment"] = str(comment)
    for key in ("thumb", "thumbs", "rating", "emoji", "score"):
        if feedback.get(key) is not None:
            value = feedback[key]
            rating = rating_of(value)
            if rating is None:
                raise EventInvalid(f"feedback.{key}: {str(value)[:40]!r} is not a rating this server reads")
            event["rating"] = rating
            event["score"] = {
                "name": key,
                "value": value if isinstance(value, bool | int | float | str) else str(value),
            }
            return event
    if comment is not None:
        raise EventInvalid("feedback: a comment without a thumb; send {thumb: up|down, comment}")
    raise EventInvalid("feedback: expected thumb up or down")


def _messages(value: Any) -> Any:
    """LLMonitor's messages `{role, text, function_call: null, tool_calls: null}` as `{role, content}`;
    anything else as it is."""
    if isinstance(value, dict) and "role" in value and "text" in value and "content" not in value:
        message = {"role": value["role"], "content": value["text"]}
        return message | {key: item for key, item in value.items() if item is not None and key not in ("role", "text")}
    if isinstance(value, list):
        return [_messages(item) if isinstance(item, dict) else item for item in value]
    return value


def score_event(run_id: str, body: Any, *, key: str, app) -> dict:
    """Feedback for `lunary.score(run_id, label, value, comment)`: PATCH /v1/runs/<run_id>/score.

    The SDK sends the run id as the caller wrote it, while its events carry
    `uuid(sha256(run_id + key))`: the score goes to that run unless a run `run_id` exists.
    """
    if not isinstance(body, dict):
        raise EventInvalid("body: expected an object {label, value, comment}")
    label, value = body.get("label"), body.get("value")
    if not isinstance(label, str) or not label:
        raise EventInvalid("label: required")
    rating = rating_of(value)
    if rating is None:
        raise EventInvalid(f"value: {str(value)[:40]!r} does not say positive or negative (docs/INTEROP.md)")
    if not run_exists(app, run_id):
        run_id = str(uuid.UUID(hashlib.sha256(f"{run_id}{key}".encode()).hexdigest()[:32]))
    event = {"name": "feedback", "run_id": run_id, "rating": rating, "score": {"name": label, "value": value}}
    if body.get("comment") is not None:
        event["comment"] = str(body["comment"])
    return event


def _timestamp(value: Any) -> Any:
    """ISO strings as they are; epoch numbers (ms, as some SDK versions send) as ISO."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 10**11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC).isoformat()
        except (OverflowError, OSError, ValueError):
            raise EventInvalid(f"timestamp: {value} is out of range") from None
    return value
