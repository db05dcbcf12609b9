"""The run merge of SPEC §2 in plain Python: events folded into a `RunState`, whatever their order.

No database here: apps.tracing.services reads the stored runs into states, merges a batch's
events into them and writes the rows back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings
from django.utils import timezone

from apps.costs.pricing import ZERO, PriceBook, Usage
from apps.tracing.events import EventIn
from apps.tracing.models import STATUS_RANK, Status

# Fields a start event is authoritative for, and those an end event is authoritative for.
# An authoritative event overwrites what a non-authoritative one filled in earlier; anything
# else only fills a field that is still empty, so a later event never erases a value.
START_FIELDS = (
    "input",
    "parent_run_id",
    "type",
    "run_name",
    "agent",
    "user_id",
    "user_email",
    "user_props",
    "thread_id",
)
END_FIELDS = ("output", "error", "model", "prompt_tokens", "completion_tokens", "total_tokens", "cached_prompt_tokens")
INHERITED = ("agent", "user_id", "user_email")


@dataclass(slots=True)
class RunState:
    """One run while a batch merges into it: every column of `Run` (by attname), then what
    the merge derives for the run's other tables (its search text, its cost and cost row)."""

    run_id: str
    started_at: datetime
    id: int | None = None
    app_id: int | None = None
    parent_run_id: str | None = None
    type: str | None = None
    name: str | None = None
    run_name: str | None = None
    agent: str | None = None
    status: str = Status.STARTED
    ended_at: datetime | None = None
    latency_s: float | None = None
    has_start: bool = False
    has_end: bool = False
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_prompt_tokens: int | None = None
    tags: list[str] = field(default_factory=list)
    user_id: str | None = None
    user_email: str | None = None
    user_props: dict | None = None
    thread_id: str | None = None
    saved: bool = False
    saved_at: datetime | None = None
    positive_feedback: bool = False
    negative_feedback: bool = False
    input: Any = None
    output: Any = None
    error: Any = None
    metadata: dict = field(default_factory=dict)
    search_digest: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # Not columns of Run: RunSearch.text, and RunCost's cost and cost row.
    search: str = ""
    cost: Decimal = ZERO
    cost_row_id: int | None = None


STATE_FIELDS = frozenset(f.name for f in fields(RunState))


def new_state(event: EventIn) -> RunState:
    return RunState(run_id=event.run_id, started_at=event.started_at or event.timestamp)


def merge_event(state: RunState | None, event: EventIn) -> RunState:
    """Fold one run event into a run's state; the result is the same whatever the order of events."""
    state = state or new_state(event)
    starts = event.phase in ("start", "call")
    ends = event.phase in ("end", "error", "call")
    _fill(state, event, START_FIELDS, authoritative=starts and not state.has_start)
    _fill(state, event, END_FIELDS, authoritative=ends and not state.has_end)
    if starts and not state.has_start:
        state.metadata = {**state.metadata, **event.metadata}
        state.started_at = event.started_at or event.timestamp
    else:
        state.metadata = {**event.metadata, **state.metadata}
        if not state.has_start or starts:
            state.started_at = min(state.started_at, event.started_at or event.timestamp)
    if ends:
        ended = state.ended_at
        state.ended_at = event.timestamp if not state.has_end or ended is None else max(ended, event.timestamp)
    status = event.status or (Status.SUCCESS if ends else Status.STARTED)
    if STATUS_RANK[status] > STATUS_RANK[state.status]:
        state.status = status
    state.tags = state.tags + [tag for tag in event.tags if tag not in state.tags]
    state.has_start = state.has_start or starts
    state.has_end = state.has_end or ends
    return state


def _fill(state: RunState, event: EventIn, names: tuple[str, ...], *, authoritative: bool) -> None:
    for name in names:
        value = getattr(event, name)
        if value is not None and (authoritative or getattr(state, name) is None):
            setattr(state, name, value)


def inherit_from_parent(state: RunState, known: dict[str, RunState]) -> None:
    """Agent and user fall back to the nearest ancestor's among the `known` runs (this batch's or stored)."""
    seen = {state.run_id}
    node = state
    while any(getattr(state, name) is None for name in INHERITED) and node.parent_run_id not in (None, *seen):
        seen.add(node.parent_run_id)
        node = known.get(node.parent_run_id)
        if node is None:
            return
        for name in INHERITED:
            if getattr(state, name) is None:
                setattr(state, name, getattr(node, name))


def finish_state(state: RunState, prices: PriceBook) -> None:
    """Derived columns: latency, display name, search text and its digest, cost."""
    state.type = state.type or "custom"
    if state.has_start and state.ended_at is not None:
        state.latency_s = max(0.0, (state.ended_at - state.started_at).total_seconds())
    else:
        state.latency_s = None
    state.name = display_name(state)
    state.search = search_text(state)
    state.search_digest = int.from_bytes(
        hashlib.blake2b(state.search.encode(), digest_size=8).digest(), "big", signed=True
    )
    cost, row = prices.price(usage_of(state)) if state.type == "llm" else (ZERO, None)
    state.cost, state.cost_row_id = cost, row.pk if row else None
    state.updated_at = timezone.now()
    if state.created_at is None:
        state.created_at = state.updated_at


def usage_of(state: RunState) -> Usage:
    """What prices an llm run."""
    return Usage(
        model=state.model,
        prompt_tokens=state.prompt_tokens,
        completion_tokens=state.completion_tokens,
        total_tokens=state.total_tokens,
        started_at=state.started_at,
        cached_prompt_tokens=state.cached_prompt_tokens,
        cache_hit=is_cache_hit(state.metadata),
    )


def is_cache_hit(metadata) -> bool:
    # `metadata.cache_hit = true`: the app served the answer from its own cache, nothing was billed.
    return isinstance(metadata, dict) and metadata.get("cache_hit") is True


def display_name(state: RunState) -> str:
    name = state.run_name or state.metadata.get("run_name")
    if not name and state.type == "agent":
        name = state.agent
    if not name and state.type == "llm":
        name = state.model
    return str(name or state.type)[:200]


def search_text(state: RunState) -> str:
    """What the runs search looks through: names, model, and the start of input and output."""
    limit = settings.OBSERVATORY_SEARCH_CHARS_PER_FIELD
    parts = [state.name, state.agent, state.model, _text(state.input, limit), _text(state.output, limit)]
    return "\n".join(part for part in parts if part).lower()


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text[:limit]
