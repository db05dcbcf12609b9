"""Writes of runs and events: the run assembly of SPEC §2, set-based, a fixed number of queries a batch.

Every function here takes the validated events of one batch (`apps.ingestion.validation.EventIn`)
and is called inside the batch's transaction by the ingestion pipeline.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.costs.pricing import ZERO, PriceBook, Usage
from apps.tracing.models import STATUS_RANK, Event, Feedback, Rating, Run, RunCost, RunSearch, Status
from apps.tracing.sql import upsert

if TYPE_CHECKING:
    from apps.ingestion.services import Batch
    from apps.ingestion.validation import EventIn

RUN_KINDS = ("run", "saved")
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
MAX_ANCESTRY = 500
EVENT_COLUMNS = ["app", "run_id", "name", "timestamp", "received_at", "dedup_key", "payload"]
COST_COLUMNS = ["run", "app", "type", "model", "started_at", "prompt_tokens", "completion_tokens",
                "cached_prompt_tokens", "total_tokens", "cache_hit", "cost", "cost_row"]  # fmt: skip
FEEDBACK_COLUMNS = ["app", "run_id", "message_id", "rating", "comment", "timestamp", "dedup_key"]
# Every column but the primary key. A merge rewrites all of them but these: the conflict
# target, created_at, and the flags that other statements set (saved, feedback) — a batch
# that merged from an older read must not undo them.
RUN_COLUMNS = ["app", "run_id", *(f.name for f in Run._meta.concrete_fields if f.name not in ("id", "app", "run_id"))]
RUN_UPDATE = [c for c in RUN_COLUMNS[2:] if c not in ("created_at", "saved", "positive_feedback", "negative_feedback")]


def by_app(events: Iterable[EventIn]) -> dict[Any, list[EventIn]]:
    grouped: dict[Any, list[EventIn]] = defaultdict(list)
    for event in events:
        grouped[event.app].append(event)
    return grouped


# --- locking and integrity ---------------------------------------------------------------


def run_lock_names(events: Sequence[EventIn]) -> set[str]:
    """The runs this batch writes, to be locked for its transaction (see sql.advisory_lock)."""
    return {f"run:{e.app.pk}:{e.run_id}" for e in events if e.kind in RUN_KINDS}


def find_parent_cycles(events: Sequence[EventIn], *, stored: bool = True) -> dict[int, str]:
    """{event index: error} for run events whose parent_run_id would make a run its own ancestor.

    With `stored` the stored runs' ancestry counts too (one query an app); without, only the
    batch's own parents do.
    """
    errors: dict[int, str] = {}
    for app, app_events in by_app(e for e in events if e.kind == "run" and e.parent_run_id).items():
        parent_of = _stored_ancestry(app, {e.parent_run_id for e in app_events}) if stored else {}
        for event in app_events:
            if _is_ancestor(event.run_id, event.parent_run_id, parent_of):
                errors[event.index] = (
                    f"parent_run_id: {event.parent_run_id!r} is a descendant of run {event.run_id!r}; "
                    "a run cannot be its own ancestor"
                )
            else:
                parent_of.setdefault(event.run_id, event.parent_run_id)
    return errors


def _is_ancestor(run_id: str, parent_id: str, parent_of: dict[str, str | None]) -> bool:
    seen = set()
    node: str | None = parent_id
    while node is not None and node not in seen and len(seen) < MAX_ANCESTRY:
        if node == run_id:
            return True
        seen.add(node)
        node = parent_of.get(node)
    return False


def _stored_ancestry(app, run_ids: set[str]) -> dict[str, str | None]:
    """parent_run_id of the given runs and all their stored ancestors, in one recursive query."""
    table = Run._meta.db_table
    placeholders = ", ".join(["%s"] * len(run_ids))
    sql = f"""
        WITH RECURSIVE chain(run_id, parent_run_id, depth) AS (
            SELECT run_id, parent_run_id, 0 FROM {table} WHERE app_id = %s AND run_id IN ({placeholders})
            UNION
            SELECT r.run_id, r.parent_run_id, c.depth + 1
            FROM {table} r JOIN chain c ON r.run_id = c.parent_run_id
            WHERE r.app_id = %s AND c.depth < {MAX_ANCESTRY}
        )
        SELECT DISTINCT run_id, parent_run_id FROM chain
    """  # noqa: S608 - only the table name and placeholders are formatted in
    with connection.cursor() as cursor:
        cursor.execute(sql, [app.pk, *run_ids, app.pk])
        return dict(cursor.fetchall())


# --- events --------------------------------------------------------------------------------


def store_events(events: Sequence[EventIn], received_at) -> dict[str, int]:
    """Insert the events, skipping any already stored; returns {dedup key: event id} of the new ones.

    ON CONFLICT DO NOTHING on (app, dedup_key) makes redelivery, even of the same batch by
    two requests at once, insert each event exactly once; RETURNING tells the handlers
    which events take effect for the first time.
    """
    rows = [
        (event.app.pk, event.run_id, event.name, event.timestamp, received_at, event.dedup_key, event.raw)
        for event in events
    ]
    return dict(upsert(Event, EVENT_COLUMNS, rows, conflict=["app", "dedup_key"], returning=["dedup_key", "id"]))


# --- runs ------------------------------------------------------------------------------------


def apply_run_events(batch: Batch) -> None:
    """Merge the batch's run events into their runs (creating them as needed), then mark saved runs."""
    for app, app_events in by_app(e for e in batch.events if e.kind in RUN_KINDS).items():
        run_events = [e for e in app_events if e.kind == "run"]
        created = _upsert_runs(app, run_events) if run_events else set()
        batch.created_runs[app.pk] = created
        newly_saved = {e.run_id for e in app_events if e.kind == "saved" and e.dedup_key in batch.new_keys}
        _mark_saved(app, newly_saved | created)
        _propagate_to_children(app, {e.run_id for e in run_events if e.agent or e.user_id or e.user_email})


def _upsert_runs(app, events: list[EventIn]) -> set[str]:
    """Merge and write the runs of one app; returns the run ids that did not exist before."""
    run_ids = list(dict.fromkeys(e.run_id for e in events))  # batch order: new runs get ids in it
    wanted = {*run_ids, *(e.parent_run_id for e in events if e.parent_run_id)}
    stored = {row["run_id"]: row for row in Run.objects.filter(app=app, run_id__in=wanted).values()}
    states = {run_id: dict(stored[run_id]) if run_id in stored else None for run_id in run_ids}
    for event in sorted(events, key=lambda e: e.timestamp):
        states[event.run_id] = merge_event(states[event.run_id], event)
    for state in states.values():
        _inherit_from_parent(state, states, stored)
    prices = PriceBook.for_models(s["model"] for s in states.values() if s["type"] == "llm")
    for state in states.values():
        finish_state(state, prices)
    columns = [Run._meta.get_field(name).attname for name in RUN_COLUMNS[1:]]
    rows = [[app.pk, *(state[column] for column in columns)] for state in states.values()]
    # Agent and user may also be filled in by _propagate_to_children of another batch.
    written = upsert(
        Run,
        RUN_COLUMNS,
        rows,
        conflict=["app", "run_id"],
        update=RUN_UPDATE,
        keep=INHERITED,
        returning=["run_id", "id"],
    )
    pks = dict(written)
    _write_costs(app, states, pks)
    changed = [
        run_id for run_id, s in states.items() if s["search_digest"] != stored.get(run_id, {}).get("search_digest")
    ]
    upsert(RunSearch, ["run", "app", "text"], [(pks[run_id], app.pk, states[run_id]["_search"]) for run_id in changed],
           conflict=["run"], update=["text"])  # fmt: skip
    return set(run_ids) - stored.keys()


def _write_costs(app, states: dict[str, dict], pks: dict[str, int]) -> None:
    """Each run's RunCost row: its pricing inputs and the cost they give."""
    rows = []
    for run_id, state in states.items():
        usage = usage_of(state)
        rows.append([
            pks[run_id], app.pk, state["type"], usage.model, usage.started_at,
            usage.prompt_tokens, usage.completion_tokens, usage.cached_prompt_tokens, usage.total_tokens,
            usage.cache_hit, state["cost"], state["cost_row_id"],
        ])  # fmt: skip
    upsert(RunCost, COST_COLUMNS, rows, conflict=["run"], update=COST_COLUMNS[2:])


def new_state(event: EventIn) -> dict[str, Any]:
    start = event.started_at or event.timestamp
    return {
        "run_id": event.run_id, "status": Status.STARTED, "started_at": start, "ended_at": None,
        "has_start": False, "has_end": False, "tags": [], "metadata": {}, "saved": False,
        "positive_feedback": False, "negative_feedback": False,
        **{name: None for name in START_FIELDS + END_FIELDS},
    }  # fmt: skip


def merge_event(state: dict[str, Any] | None, event: EventIn) -> dict[str, Any]:
    """Fold one run event into a run's state; the result is the same whatever the order of events."""
    state = state or new_state(event)
    starts = event.phase in ("start", "call")
    ends = event.phase in ("end", "error", "call")
    _fill(state, event, START_FIELDS, authoritative=starts and not state["has_start"])
    _fill(state, event, END_FIELDS, authoritative=ends and not state["has_end"])
    if starts and not state["has_start"]:
        state["metadata"] = {**state["metadata"], **event.metadata}
        state["started_at"] = event.started_at or event.timestamp
    else:
        state["metadata"] = {**event.metadata, **state["metadata"]}
        if not state["has_start"] or starts:
            state["started_at"] = min(state["started_at"], event.started_at or event.timestamp)
    if ends:
        ended = state["ended_at"]
        state["ended_at"] = event.timestamp if not state["has_end"] or ended is None else max(ended, event.timestamp)
    status = event.status or (Status.SUCCESS if ends else Status.STARTED)
    if STATUS_RANK[status] > STATUS_RANK[state["status"]]:
        state["status"] = status
    state["tags"] = state["tags"] + [tag for tag in event.tags if tag not in state["tags"]]
    state["has_start"] = state["has_start"] or starts
    state["has_end"] = state["has_end"] or ends
    return state


def _fill(state: dict[str, Any], event: EventIn, fields: tuple[str, ...], *, authoritative: bool) -> None:
    for name in fields:
        value = getattr(event, name)
        if value is not None and (authoritative or state[name] is None):
            state[name] = value


def _inherit_from_parent(state: dict[str, Any], states: dict[str, dict], stored: dict[str, dict]) -> None:
    """Agent and user fall back to the parent's when the parent is known (in this batch or stored)."""
    seen = {state["run_id"]}
    node = state
    while any(state[name] is None for name in INHERITED) and node["parent_run_id"] not in (None, *seen):
        parent_id = node["parent_run_id"]
        seen.add(parent_id)
        node = states.get(parent_id) or stored.get(parent_id)
        if node is None:
            return
        for name in INHERITED:
            if state[name] is None:
                state[name] = node[name]


def finish_state(state: dict[str, Any], prices: PriceBook) -> None:
    """Derived columns: latency, display name, cost."""
    state["type"] = state["type"] or "custom"
    if state["has_start"] and state["ended_at"] is not None:
        state["latency_s"] = max(0.0, (state["ended_at"] - state["started_at"]).total_seconds())
    else:
        state["latency_s"] = None
    state["name"] = display_name(state)
    state["_search"] = search_text(state)  # not a column: RunSearch, written when the digest changes
    state["search_digest"] = int.from_bytes(
        hashlib.blake2b(state["_search"].encode(), digest_size=8).digest(), "big", signed=True
    )
    cost, row = prices.price(usage_of(state)) if state["type"] == "llm" else (ZERO, None)
    state["cost"], state["cost_row_id"] = cost, row.pk if row else None
    state["updated_at"] = timezone.now()
    state.setdefault("created_at", state["updated_at"])


def usage_of(run: dict[str, Any]) -> Usage:
    """What prices an llm run, from its columns (a merge state, or a row being recalculated)."""
    return Usage(
        model=run["model"],
        prompt_tokens=run["prompt_tokens"],
        completion_tokens=run["completion_tokens"],
        total_tokens=run["total_tokens"],
        started_at=run["started_at"],
        cached_prompt_tokens=run["cached_prompt_tokens"],
        cache_hit=is_cache_hit(run["metadata"]),
    )


def is_cache_hit(metadata) -> bool:
    # `metadata.cache_hit = true`: the app served the answer from its own cache, nothing was billed.
    return isinstance(metadata, dict) and metadata.get("cache_hit") is True


def display_name(state: dict[str, Any]) -> str:
    name = state["run_name"] or state["metadata"].get("run_name")
    if not name and state["type"] == "agent":
        name = state["agent"]
    if not name and state["type"] == "llm":
        name = state["model"]
    return str(name or state["type"])[:200]


def search_text(state: dict[str, Any]) -> str:
    """What the runs search looks through: names, model, and the start of input and output."""
    limit = settings.OBSERVATORY_SEARCH_CHARS_PER_FIELD
    parts = [state["name"], state["agent"], state["model"], _text(state["input"], limit), _text(state["output"], limit)]
    return "\n".join(part for part in parts if part).lower()


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text[:limit]


def apply_feedback_events(batch: Batch) -> None:
    """Store each new feedback; flags on runs and threads follow in threads.refresh_after_batch."""
    rows = [
        (e.app.pk, e.run_id, e.message_id, e.rating, e.comment or "", e.timestamp,
         e.dedup_key)
        for e in batch.new("feedback")
    ]  # fmt: skip
    upsert(Feedback, FEEDBACK_COLUMNS, rows, conflict=["app", "dedup_key"])


def mark_run_feedback(batch: Batch) -> None:
    """Raise the runs' positive/negative flags for the feedback that now rates them.

    Candidates: runs named by new feedback, runs that message feedback was just resolved to
    (threads.link_message_feedback), and new runs (their feedback may have come first).
    Flags only go up (feedback is never withdrawn): one look at the feedback of the candidates
    (usually none), then an UPDATE only of runs whose flag changes, so redelivery writes nothing.
    """
    for app, events in by_app(batch.events).items():
        run_ids = {e.run_id for e in events if e.kind == "feedback" and e.run_id and e.dedup_key in batch.new_keys}
        run_ids |= batch.created_runs.get(app.pk, set()) | batch.rated_runs.get(app.pk, set())
        if not run_ids:
            continue
        ratings = set(Feedback.objects.filter(app=app, run_id__in=run_ids).values_list("run_id", "rating"))
        for flag, rating in (("positive_feedback", Rating.POSITIVE), ("negative_feedback", Rating.NEGATIVE)):
            rated = {run_id for run_id, given in ratings if given == rating}
            if rated:
                Run.objects.filter(app=app, run_id__in=rated, **{flag: False}).update(**{flag: True})


def _mark_saved(app, run_ids: set[str]) -> None:
    """Set `saved` on runs that have a saved event, whichever of the two arrived first."""
    if not run_ids:
        return
    has_saved_event = Exists(Event.objects.filter(app=app, run_id=OuterRef("run_id"), name="saved"))
    Run.objects.filter(app=app, run_id__in=run_ids, saved=False).filter(has_saved_event).update(saved=True)


def _propagate_to_children(app, parent_ids: set[str]) -> None:
    """Children stored before their parent inherit its agent and user now that it is known."""
    if not parent_ids:
        return
    parent = Run.objects.filter(app=app, run_id=OuterRef("parent_run_id"))
    missing = Q(agent__isnull=True) | Q(user_id__isnull=True) | Q(user_email__isnull=True)
    Run.objects.filter(missing, app=app, parent_run_id__in=parent_ids).update(
        **{name: Coalesce(name, Subquery(parent.values(name)[:1])) for name in INHERITED}
    )
