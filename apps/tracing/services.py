"""Writes of runs and events: the run assembly of SPEC §2, set-based, a fixed number of queries a batch.

Every function here takes validated events (`apps.tracing.events.EventIn`) of one batch and
is called inside the batch's transaction by the ingestion pipeline's `apply()`; the merge
itself is apps.tracing.merge.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection
from django.db.models import Exists, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.costs.pricing import PriceBook
from apps.tenancy.models import App
from apps.tracing.events import RUN_KINDS, EventIn, by_app
from apps.tracing.merge import INHERITED, RunState, finish_state, inherit_from_parent, merge_event, usage_of
from apps.tracing.models import Event, Feedback, Rating, Run, RunCost, RunSearch
from apps.tracing.sql import run_tree, update_rows, upsert

MAX_ANCESTRY = 500
EVENT_COLUMNS = ["app", "run_id", "name", "timestamp", "received_at", "dedup_key", "payload"]
COST_COLUMNS = ["run", "app", "type", "model", "started_at", "prompt_tokens", "completion_tokens",
                "cached_prompt_tokens", "total_tokens", "cache_hit", "cost", "cost_row",
                "agent", "user_id", "status", "latency_s", "root"]  # fmt: skip
FEEDBACK_COLUMNS = [
    "app",
    "run_id",
    "message_id",
    "rating",
    "comment",
    "score_name",
    "score_value",
    "timestamp",
    "dedup_key",
]
# Every column but the primary key. A merge rewrites all of them but these: the conflict
# target, created_at, and the flags that other statements set (saved and saved_at, feedback) —
# a batch that merged from an older read must not undo them.
RUN_COLUMNS = ["app", "run_id", *(f.name for f in Run._meta.concrete_fields if f.name not in ("id", "app", "run_id"))]
SET_ELSEWHERE = ("created_at", "saved", "saved_at", "positive_feedback", "negative_feedback")
RUN_UPDATE = [c for c in RUN_COLUMNS[2:] if c not in SET_ELSEWHERE]
RUN_ATTNAMES = [Run._meta.get_field(name).attname for name in RUN_COLUMNS[1:]]

# Run ids of each app: what the steps of one batch hand on to the next.
RunIds = dict[App, set[str]]


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
    placeholders = ", ".join(["%s"] * len(run_ids))
    table = Run._meta.db_table
    seed = f"SELECT app_id, run_id, parent_run_id, 0 FROM {table} WHERE app_id = %s AND run_id IN ({placeholders})"  # noqa: S608
    chain = run_tree("chain", seed, up=True, max_depth=MAX_ANCESTRY)
    with connection.cursor() as cursor:
        cursor.execute(f"{chain} SELECT DISTINCT run_id, parent_run_id FROM chain", [app.pk, *run_ids])
        return dict(cursor.fetchall())


def with_ancestors(app, run_ids: set[str]) -> set[str]:
    """The given run ids and those of all their stored ancestors, in one recursive query.

    No depth column, so the walk's UNION drops a row met twice: a parent shared by many runs
    (or one of the given runs itself) is walked once, and a cycle ends the walk."""
    if not run_ids:
        return set()
    placeholders = ", ".join(["%s"] * len(run_ids))
    table = Run._meta.db_table
    seed = f"SELECT app_id, run_id, parent_run_id FROM {table} WHERE app_id = %s AND run_id IN ({placeholders})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(f"{run_tree('chain', seed, up=True)} SELECT run_id FROM chain", [app.pk, *run_ids])
        return set(run_ids) | {run_id for (run_id,) in cursor.fetchall()}


# --- events --------------------------------------------------------------------------------


def store_events(events: Sequence[EventIn]) -> dict[str, int]:
    """Insert the events, skipping any already stored; returns {dedup key: event id} of the new ones.

    ON CONFLICT DO NOTHING on (app, dedup_key) makes redelivery, even of the same batch by
    two requests at once, insert each event exactly once; RETURNING tells `apply()`
    which events take effect for the first time.
    """
    rows = [
        (event.app.pk, event.run_id, event.name, event.timestamp, event.received_at, event.dedup_key, event.raw)
        for event in events
    ]
    return dict(upsert(Event, EVENT_COLUMNS, rows, conflict=["app", "dedup_key"], returning=["dedup_key", "id"]))


# --- runs ------------------------------------------------------------------------------------


def apply_run_events(runs: Sequence[EventIn], saves: Sequence[EventIn]) -> RunIds:
    """Merge run events into their runs (creating them as needed), then mark saved runs.

    `saves` are the `saved` events stored for the first time. Returns the runs created, by app.
    """
    created: RunIds = {}
    saves_by_app = by_app(saves)
    for app, run_events in by_app(runs).items():
        created[app], inheritable = _upsert_runs(app, run_events)
        newly_saved = {e.run_id for e in saves_by_app.pop(app, [])}
        _mark_saved(app, newly_saved | created[app])
        _propagate_to_children(app, inheritable)
    for app, app_saves in saves_by_app.items():
        _mark_saved(app, {e.run_id for e in app_saves})
    return created


def _upsert_runs(app, events: list[EventIn]) -> tuple[set[str], set[str]]:
    """Merge and write the runs of one app; returns the run ids that did not exist before, and
    those with an agent or user to hand down (see _propagate_to_children)."""
    run_ids = list(dict.fromkeys(e.run_id for e in events))  # batch order: new runs get ids in it
    wanted = {*run_ids, *(e.parent_run_id for e in events if e.parent_run_id)}
    stored = {row["run_id"]: RunState(**row) for row in Run.objects.for_app(app).filter(run_id__in=wanted).values()}
    digests = {run_id: state.search_digest for run_id, state in stored.items()}
    states = {run_id: stored.get(run_id) for run_id in run_ids}
    for event in sorted(events, key=lambda e: e.timestamp):
        states[event.run_id] = merge_event(states[event.run_id], event)
    known = {**stored, **states}
    for state in states.values():
        inherit_from_parent(state, known)
    _finish(states)
    rows = [[app.pk, *(getattr(state, column) for column in RUN_ATTNAMES)] for state in states.values()]
    # Agent and user may also be filled in by _propagate_to_children of another batch.
    written = upsert(
        Run,
        RUN_COLUMNS,
        rows,
        conflict=["app", "run_id"],
        update=RUN_UPDATE,
        keep=INHERITED,
        returning=["run_id", "id", "agent", "user_id"],
    )
    _write_costs(app, states, {run_id: (pk, agent, user_id) for run_id, pk, agent, user_id in written})
    _write_searches(app, states, {run_id: pk for run_id, pk, *_ in written}, digests)
    inheritable = {run_id for run_id, s in states.items() if any(getattr(s, name) for name in INHERITED)}
    return set(run_ids) - stored.keys(), inheritable


def _finish(states: dict[str, RunState]) -> None:
    prices = PriceBook.for_models(s.model for s in states.values() if s.type == "llm")
    for state in states.values():
        finish_state(state, prices)


def _write_searches(app, states: dict[str, RunState], pks: dict[str, int], digests: dict[str, int | None]) -> None:
    """The RunSearch rows of the runs whose search text changed (its digest is not the stored one)."""
    searches = [
        (pks[run_id], app.pk, *search_columns(s.search))
        for run_id, s in states.items()
        if s.search_digest != digests.get(run_id)
    ]
    upsert(RunSearch, ["run", "app", "text", "full_text"], searches, conflict=["run"], update=["text", "full_text"])


def search_columns(text: str) -> tuple[str, str | None]:
    """RunSearch's (text, full_text) for a search text: its distinct words, and the text itself
    unless those are the same (see RunSearch)."""
    words = " ".join(dict.fromkeys(text.split()))
    return words, None if words == text else text


def _write_costs(app, states: dict[str, RunState], written: dict[str, tuple[int, str | None, str | None]]) -> None:
    """Each run's RunCost row: its pricing inputs and the cost they give, and what analytics reads.

    `written` is {run id: (pk, agent, user_id)} as the run upsert stored them (a stored inherited
    agent or user survives a merge that has none, see INHERITED)."""
    rows = []
    for run_id, state in states.items():
        usage = usage_of(state)
        pk, agent, user_id = written[run_id]
        rows.append([
            pk, app.pk, state.type, usage.model, usage.started_at,
            usage.prompt_tokens, usage.completion_tokens, usage.cached_prompt_tokens, usage.total_tokens,
            usage.cache_hit, state.cost, state.cost_row_id,
            agent, user_id, state.status, state.latency_s, state.parent_run_id is None,
        ])  # fmt: skip
    upsert(RunCost, COST_COLUMNS, rows, conflict=["run"], update=COST_COLUMNS[2:])


def apply_feedback_events(feedback: Sequence[EventIn]) -> None:
    """Store each new feedback; the flags on runs and threads follow (mark_run_feedback, threads)."""
    rows = [
        (e.app.pk, e.run_id, e.message_id, e.rating, e.comment or "", e.score_name or "", e.score_value, e.timestamp,
         e.dedup_key)
        for e in feedback
    ]  # fmt: skip
    upsert(Feedback, FEEDBACK_COLUMNS, rows, conflict=["app", "dedup_key"])


def mark_run_feedback(feedback: Sequence[EventIn], *others: RunIds) -> None:
    """Raise the runs' positive/negative flags for the feedback that now rates them.

    Candidates: runs named by new `feedback`, and the `others` — new runs (their feedback may
    have come first), runs that message feedback was just resolved to (threads.link_message_feedback).
    Flags only go up (feedback is never withdrawn): one look at the feedback of the candidates
    (usually none), then an UPDATE only of runs whose flag changes, so redelivery writes nothing.
    """
    candidates: RunIds = {app: {e.run_id for e in events if e.run_id} for app, events in by_app(feedback).items()}
    for extra in others:
        for app, run_ids in extra.items():
            candidates.setdefault(app, set()).update(run_ids)
    for app, run_ids in candidates.items():
        if not run_ids:
            continue
        ratings = set(Feedback.objects.for_app(app).filter(run_id__in=run_ids).values_list("run_id", "rating"))
        for flag, rating in (("positive_feedback", Rating.POSITIVE), ("negative_feedback", Rating.NEGATIVE)):
            rated = {run_id for run_id, given in ratings if given == rating}
            if rated:
                Run.objects.for_app(app).filter(run_id__in=rated, **{flag: False}).update(**{flag: True})


def _mark_saved(app, run_ids: set[str]) -> None:
    """Set `saved` (and `saved_at`: now) on runs that have a saved event, whichever of the two arrived first."""
    if not run_ids:
        return
    has_saved_event = Exists(Event.objects.for_app(app).filter(run_id=OuterRef("run_id"), name="saved"))
    unsaved = Run.objects.for_app(app).filter(run_id__in=run_ids, saved=False).filter(has_saved_event)
    unsaved.update(saved=True, saved_at=timezone.now())


def _propagate_to_children(app, parent_ids: set[str]) -> None:
    """Runs stored before their parent inherit its agent and user now that it is known, their own
    children in turn, and the copies in their cost and search rows follow.

    `parent_ids`: the batch's runs that have an agent or user, given or inherited — a parent
    arriving late may itself inherit them from a grandparent stored long before. One query when no
    stored child lacks them (nearly always); a level of descendants per round otherwise. The
    UPDATE only fills what is empty (COALESCE), so a concurrent merge of a child loses nothing.
    """
    parent = Run.objects.for_app(app).filter(run_id=OuterRef("parent_run_id"))
    missing = Q(agent__isnull=True) | Q(user_id__isnull=True) | Q(user_email__isnull=True)
    inherited = {name: Coalesce(name, Subquery(parent.values(name)[:1])) for name in INHERITED}
    while parent_ids:
        children = Run.objects.for_app(app).filter(parent_run_id__in=parent_ids).filter(missing)
        before = {pk: values for pk, *values in children.values_list("pk", *INHERITED)}
        if not before:
            return
        Run.objects.filter(pk__in=before).update(**inherited)
        changed = {
            row["run_id"]: RunState(**row)
            for row in Run.objects.filter(pk__in=before).values()
            if [row[name] for name in INHERITED] != before[row["id"]]
        }
        if not changed:
            return
        digests = {run_id: state.search_digest for run_id, state in changed.items()}
        _finish(changed)  # the name and search text may show the agent
        update_rows(Run, ["name", "search_digest"], [(s.id, s.name, s.search_digest) for s in changed.values()])
        _write_costs(app, changed, {run_id: (s.id, s.agent, s.user_id) for run_id, s in changed.items()})
        _write_searches(app, changed, {run_id: s.id for run_id, s in changed.items()}, digests)
        parent_ids = set(changed)


# --- the Run page --------------------------------------------------------------------------------


def set_saved(app, run_id: str, saved: bool) -> bool:
    """Save or unsave a run (the Run page's button); False when `app` has no run `run_id`.

    Only the flag and its time change: a later event of the run keeps them (merges never
    rewrite `saved` or `saved_at`). Saving a saved run keeps the time it was first saved.
    """
    runs = Run.objects.for_app(app).filter(run_id=run_id)
    if not saved:
        return runs.update(saved=False, saved_at=None) > 0
    return runs.update(saved=True, saved_at=Coalesce("saved_at", Value(timezone.now()))) > 0


def unsave_runs(runs) -> int:
    """Unsave the saved runs among `runs` (a Run queryset: the saved runs admin's selection); how many."""
    return Run.objects.filter(pk__in=runs.order_by().values("pk"), saved=True).update(saved=False, saved_at=None)
