"""What a run is made of: one reported event, validated (by apps.ingestion.validation).

Defined here, below the ingestion pipeline, because every app that applies events — runs
here, thread messages and feedback in apps.threads — reads them; none of them imports the
pipeline that validated them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

RUN_KINDS = ("run", "saved")


@dataclass(slots=True)
class EventIn:
    """A validated event. None always means "not given": a later event never erases a value with null."""

    index: int
    name: str
    kind: str  # "run", "saved", "chat", "feedback" or "custom"
    phase: str | None  # start / end / error / call for run events
    raw: dict
    timestamp: datetime
    timestamp_given: bool
    type: str | None = None
    app_ref: str | None = None
    client_id: str | None = None
    run_id: str | None = None
    parent_run_id: str | None = None
    run_name: str | None = None
    metadata: dict = field(default_factory=dict)
    input: Any = None
    output: Any = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_prompt_tokens: int | None = None
    tags: list[str] = field(default_factory=list)
    status: str | None = None
    error: Any = None
    started_at: datetime | None = None
    agent: str | None = None
    user_id: str | None = None
    user_email: str | None = None
    user_props: dict | None = None
    thread_id: str | None = None
    role: str | None = None
    content: Any = None
    message_id: str | None = None
    rating: str | None = None
    comment: str | None = None
    score_name: str | None = None
    score_value: Any = None
    # Filled in by the pipeline once the app is resolved.
    app: Any = None
    dedup_key: str = ""
    received_at: datetime | None = None


def of_kind(events: Iterable[EventIn], *kinds: str) -> list[EventIn]:
    return [e for e in events if e.kind in kinds]


def by_app(events: Iterable[EventIn]) -> dict[Any, list[EventIn]]:
    """The events grouped by their (resolved) app, apps in order of first appearance."""
    grouped: dict[Any, list[EventIn]] = defaultdict(list)
    for event in events:
        grouped[event.app].append(event)
    return grouped
