"""Building events on the calling thread: run start/end and ``track_event``.

Only cheap work happens here (a dict of references and a float timestamp). Ids, ISO
timestamps, app/org ids and JSON sanitizing are added by the consumer thread; see
``consumer.prepare_event``. With ``snapshot=False`` (the default) input and output are
kept by reference, so a caller that mutates an argument right after the call may see
the mutation reported; ``configure(snapshot=True)`` copies them on the calling thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from .capture import Binder, error_payload
from .client import RUNTIME, Client, active_client
from .config import Config
from .consumer import LogGate
from .context import _EMPTY, RunFrame, child_metadata, current_frame, new_run_id
from .serialize import to_jsonable

logger = logging.getLogger("flowxobservatory")

_internal_errors = LogGate()

FEEDBACK_RATINGS = ("positive", "negative")
CHAT_ROLES = ("user", "assistant", "system", "tool")


class RunSpec:
    """What a decorator knows before any call: names, the metadata it adds, its binder."""

    __slots__ = ("bind", "end_name", "kind", "name", "own", "start_name")

    def __init__(self, kind: str, name: str, own: Mapping[str, Any], bind: Binder) -> None:
        self.kind = kind
        self.name = name
        self.start_name = f"{kind}_start"
        self.end_name = f"{kind}_end"
        self.own = own
        self.bind = bind


class RunHandle:
    """A started run: its frame plus the client its events go to."""

    __slots__ = ("client", "frame", "parent_run_id")

    def __init__(self, client: Client, frame: RunFrame, parent_run_id: str | None) -> None:
        self.client = client
        self.frame = frame
        self.parent_run_id = parent_run_id


def log_internal_error(where: str) -> None:
    """An SDK bug must never reach the host app: log it (once a minute) and carry on."""
    if _internal_errors.allow(where):
        logger.exception("Observatory SDK internal error in %s; event skipped", where)


def capture(value: Any, config: Config) -> Any:
    if not config.snapshot:
        return value
    return to_jsonable(value, max_depth=config.max_depth, max_chars=config.max_string_chars)


def new_frame(own: Mapping[str, Any]) -> tuple[RunFrame, str | None]:
    """A frame for a new run below the current one, and its parent's run id."""
    parent = current_frame()
    if parent is None:
        return RunFrame(new_run_id(), child_metadata(_EMPTY, own)), None
    return RunFrame(new_run_id(), child_metadata(parent.metadata, own)), parent.run_id


def start_run(spec: RunSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RunHandle | None:
    """Emit ``<kind>_start``; None when the run cannot be traced (the call proceeds untraced)."""
    try:
        client = active_client()
        if client is None:
            return None
        frame, parent_run_id = new_frame(spec.own)
        event = {
            "name": spec.start_name,
            "type": spec.kind,
            "run_id": frame.run_id,
            "parent_run_id": parent_run_id,
            "timestamp": time.time(),
            "run_name": spec.name,
            "metadata": frame.metadata,
        }
        if client.config.capture_input:
            event["input"] = capture(spec.bind(args, kwargs), client.config)
        client.emit(event)
        return RunHandle(client, frame, parent_run_id)
    except Exception:
        log_internal_error("start_run")
        return None


def end_run(
    spec: RunSpec, run: RunHandle, output: Any = None, exc: BaseException | None = None
) -> None:
    """Emit ``<kind>_end`` with status success, or error and ``{type, message, stack}``."""
    try:
        config = run.client.config
        event = {
            "name": spec.end_name,
            "type": spec.kind,
            "run_id": run.frame.run_id,
            "parent_run_id": run.parent_run_id,
            "timestamp": time.time(),
            "run_name": spec.name,
            "metadata": run.frame.metadata,
            "status": "success" if exc is None else "error",
        }
        if config.capture_output and (exc is None or output is not None):
            event["output"] = capture(output, config)
        if exc is not None:
            event["error"] = error_payload(exc, config.max_stack_chars)
        run.client.emit(event)
    except Exception:
        log_internal_error("end_run")


def track_event(name: str, run_id: str | None = None, **fields: Any) -> None:
    """Report a custom event: ``saved``, ``chat``, ``feedback`` or any name of your own.

    ``run_id`` defaults to the current run (except for feedback addressed to a
    ``message_id``). Invalid events are logged at WARNING and not sent; this function
    never raises into the caller.
    """
    if not RUNTIME.enabled:
        return
    try:
        _track(name, run_id, fields)
    except Exception:
        log_internal_error("track_event")


def _track(name: str, run_id: str | None, fields: dict[str, Any]) -> None:
    frame = current_frame()
    addressed_to_message = name == "feedback" and fields.get("message_id") is not None
    if run_id is None and frame is not None and not addressed_to_message:
        run_id = frame.run_id
    problem = _problem(name, run_id, fields)
    if problem:
        logger.warning("track_event(%r) not sent: %s", name, problem)
        return
    client = active_client()
    if client is None:
        return
    event: dict[str, Any] = {"name": name, "timestamp": time.time()}
    if run_id is not None:
        event["run_id"] = run_id
    user_metadata = fields.pop("metadata", None)
    event.update(fields)
    event["metadata"] = _event_metadata(name, frame, user_metadata, fields)
    client.emit(event)


def _event_metadata(
    name: str, frame: RunFrame | None, user_metadata: Any, fields: Mapping[str, Any]
) -> Any:
    metadata: dict[str, Any] = dict(frame.metadata) if frame is not None else {}
    if isinstance(user_metadata, Mapping):
        metadata.update(user_metadata)
    elif user_metadata is not None:
        metadata["value"] = user_metadata
    if name == "chat" and fields.get("thread_id") is not None:
        # thread_id is also a well-known metadata key on the server; send it both ways.
        metadata["thread_id"] = fields["thread_id"]
    return metadata


def _problem(name: Any, run_id: str | None, fields: Mapping[str, Any]) -> str | None:
    """Why the server would refuse this event, checked locally so the app hears about it."""
    if not isinstance(name, str) or not name:
        return "name must be a non-empty string"
    if name == "saved" and not run_id:
        return "saved needs run_id (or must be called inside a traced run)"
    if name == "feedback":
        if not run_id and fields.get("message_id") is None:
            return "feedback needs run_id or message_id"
        if fields.get("rating") not in FEEDBACK_RATINGS:
            return f"rating must be one of {FEEDBACK_RATINGS}, got {fields.get('rating')!r}"
    if name == "chat" and fields.get("role") not in CHAT_ROLES:
        return f"role must be one of {CHAT_ROLES}, got {fields.get('role')!r}"
    return None
