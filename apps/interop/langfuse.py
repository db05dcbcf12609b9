"""Langfuse scores as our feedback events.

The Langfuse SDK (v3) exports its traces as OTLP, so a score's `traceId` and `observationId`
are the OpenTelemetry trace and span ids: the run is `spans.run_id(traceId, observationId)`.
A score on a whole trace rates the trace's root run, found among the runs already stored;
the SDK exports a trace before the scores its code gives it, and a score whose trace is not
stored yet is refused (404) rather than kept where no run would ever show it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from apps.interop.ratings import rating_of
from apps.interop.spans import run_id
from apps.tracing.selectors import trace_root_id

DATA_TYPES = ("NUMERIC", "BOOLEAN", "CATEGORICAL")


class ScoreInvalid(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def score_event(score: Any, app) -> dict:
    """The feedback event for one score (the body of POST /api/public/scores)."""
    if not isinstance(score, dict):
        raise ScoreInvalid("body: expected a score object")
    name, value, data_type = score.get("name"), score.get("value"), score.get("dataType", score.get("data_type"))
    trace_id, observation_id = _hex(score, "traceId", 32), _hex(score, "observationId", 16)
    if not isinstance(name, str) or not name:
        raise ScoreInvalid("name: required")
    if data_type is not None and data_type not in DATA_TYPES:
        raise ScoreInvalid(f"dataType: must be one of {', '.join(DATA_TYPES)}")
    if value is None or isinstance(value, dict | list):
        raise ScoreInvalid("value: expected a number, a boolean or a string")
    if data_type == "BOOLEAN" and value in (0, 1):
        value = bool(value)
    rating = rating_of(value)
    if rating is None:
        raise ScoreInvalid(f"value: {str(value)[:40]!r} does not say positive or negative (docs/INTEROP.md)")
    if trace_id is None:
        raise ScoreInvalid("traceId: required (scores on sessions or datasets are not stored)")
    if observation_id is not None:
        target = run_id(trace_id, observation_id)
    else:
        target = trace_root_id(app, prefix=f"{trace_id}-")
        if target is None:
            raise ScoreInvalid(f"traceId: no trace {trace_id} has been received yet", status=404)
    score_id = score.get("id") or hashlib.sha256(f"{trace_id}:{observation_id}:{name}".encode()).hexdigest()[:32]
    event = {"id": f"langfuse-score-{score_id}", "name": "feedback", "run_id": target, "rating": rating,
             "score": {"name": name, "value": value}}  # fmt: skip
    if score.get("comment") is not None:
        event["comment"] = str(score["comment"])
    return event


def ingestion_events(batch: Any) -> list[tuple[str, Any]]:
    """(item id, score) of each `score-create` item of a POST /api/public/ingestion batch."""
    if not isinstance(batch, list):
        raise ScoreInvalid("batch: expected a list")
    return [(str(item.get("id")) if isinstance(item, dict) else "", item) for item in batch]


def _hex(score: dict, name: str, length: int) -> str | None:
    value = score.get(name, score.get(name.replace("Id", "_id")))
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ScoreInvalid(f"{name}: expected a string")
    return value.lower() if len(value) == length else value[:128]
