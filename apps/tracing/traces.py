"""Reading whole traces: a run and its descendants in one recursive query, assembled in Python."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import orjson
from django.db import connection, models
from django.db.models.base import ModelState

from apps.costs.models import ModelCost
from apps.tracing.models import Event, Feedback, Run, RunCost

MAX_DEPTH = 200
MAX_NODES = 10_000


@dataclass
class TreeInfo:
    children: list[Run] = field(default_factory=list)
    subtree_tokens: int = 0
    subtree_cost: Decimal = Decimal(0)
    depth: int = 0
    events: list[Event] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)


def load_trace(app, run_id: str, *, with_events: bool = False) -> Run | None:
    """The run `run_id` of `app` with `.tree` set on it and on every descendant, or None.

    `with_events` also loads the root's events and feedback (two more queries).

    One recursive query fetches the subtree (bounded in depth and size, and safe against
    cycles), whatever its shape; totals are summed bottom-up in Python.
    """
    runs = _subtree(app, run_id)
    by_id = {run.run_id: run for run in runs}
    root = by_id.get(run_id)
    if root is None:
        return None
    for run in runs:
        run.tree = TreeInfo()
        # The joined cost arrives as the driver's number (a float on SQLite).
        run.cost = Decimal(str(run.cost)) if run.cost is not None else Decimal(0)
    for run in sorted(runs, key=lambda r: (r.started_at, r.pk)):
        parent = by_id.get(run.parent_run_id) if run is not root else None
        if parent is not None:
            parent.tree.children.append(run)
    _sum_subtree(root)
    if with_events:
        root.tree.events = list(Event.objects.filter(app=app, run_id=run_id).order_by("timestamp", "id"))
        root.tree.feedback = list(Feedback.objects.filter(app=app, run_id=run_id).order_by("timestamp", "id"))
    return root


# Columns a trace never shows, left out of its query (deferred: read lazily if ever touched).
NOT_LOADED = {"run_name", "has_start", "has_end", "cached_prompt_tokens", "user_props", "positive_feedback",
              "negative_feedback", "search_digest", "created_at", "updated_at"}  # fmt: skip
TRACE_FIELDS = [f for f in Run._meta.concrete_fields if f.name not in NOT_LOADED]
TRACE_ATTNAMES = [f.attname for f in TRACE_FIELDS] + ["cost", "cost_row_id"]
JSON_ATTNAMES = [f.attname for f in TRACE_FIELDS if isinstance(f, models.JSONField)]
BOOLEAN_ATTNAMES = [f.attname for f in TRACE_FIELDS if isinstance(f, models.BooleanField)]
DATETIME_ATTNAMES = [f.attname for f in TRACE_FIELDS if isinstance(f, models.DateTimeField)]


def _subtree(app, run_id: str) -> list[Run]:
    table, costs = Run._meta.db_table, RunCost._meta.db_table
    columns = ", ".join(
        # Datetimes as ISO text: datetime.fromisoformat (C) is ~50x faster than the driver's
        # loader as Django installs it (pure Python).
        f"CAST(r.{connection.ops.quote_name(f.column)} AS text)"
        if isinstance(f, models.DateTimeField)
        else f"r.{connection.ops.quote_name(f.column)}"
        for f in TRACE_FIELDS
    )
    sql = f"""
        WITH RECURSIVE tree(id, run_id, depth) AS (
            SELECT id, run_id, 0 FROM {table} WHERE app_id = %s AND run_id = %s
            UNION
            SELECT r.id, r.run_id, t.depth + 1
            FROM {table} r JOIN tree t ON r.parent_run_id = t.run_id
            WHERE r.app_id = %s AND t.depth < {MAX_DEPTH}
        )
        SELECT {columns}, c.cost, c.cost_row_id FROM {table} r LEFT JOIN {costs} c ON c.run_pk = r.id
        WHERE r.id IN (SELECT id FROM tree) LIMIT {MAX_NODES}
    """  # noqa: S608 - only the table and column names are formatted in
    with connection.cursor() as cursor:
        cursor.execute(sql, [app.pk, run_id, app.pk])
        return [_hydrate(row) for row in cursor.fetchall()]


def _hydrate(row) -> Run:
    """A Run from a row of `_subtree`, converting only what the drivers leave raw (JSON text,
    SQLite's 0/1 and datetime text). Model.from_db with Django's per-cell converters costs
    ~140 µs a run, fifteen times the database's work for a whole 500-span trace."""
    values = dict(zip(TRACE_ATTNAMES, row, strict=True))
    for name in JSON_ATTNAMES:
        if isinstance(values[name], str | bytes):
            values[name] = orjson.loads(values[name])
    for name in BOOLEAN_ATTNAMES:
        if values[name] is not None:
            values[name] = bool(values[name])
    for name in DATETIME_ATTNAMES:
        if isinstance(values[name], str):
            values[name] = datetime.fromisoformat(values[name])
        if values[name] is not None and values[name].tzinfo is None:
            values[name] = values[name].replace(tzinfo=UTC)
    run = Run.__new__(Run)
    run._state = ModelState()
    run._state.adding, run._state.db = False, connection.alias
    run.__dict__.update(values)
    return run


def _sum_subtree(root: Run) -> None:
    """Subtree totals, iteratively (a trace may be deeper than Python's recursion limit)."""
    order, stack, seen = [], [root], set()
    while stack:
        run = stack.pop()
        if run.pk in seen:
            continue
        seen.add(run.pk)
        order.append(run)
        for child in run.tree.children:
            child.tree.depth = run.tree.depth + 1
            stack.append(child)
    for run in reversed(order):
        run.tree.subtree_tokens = (run.total_tokens or 0) + sum(c.tree.subtree_tokens for c in run.tree.children)
        run.tree.subtree_cost = (run.cost or 0) + sum((c.tree.subtree_cost for c in run.tree.children), Decimal(0))


def subtree_totals(app, run_ids: set[str]) -> dict[str, tuple[int, Decimal, float | None]]:
    """{run_id: (tokens, cost, latency_s)} for each run with its whole subtree, in one query."""
    if not run_ids:
        return {}
    table, costs = Run._meta.db_table, RunCost._meta.db_table
    placeholders = ", ".join(["%s"] * len(run_ids))
    sql = f"""
        WITH RECURSIVE tree(root, run_id) AS (
            SELECT run_id, run_id FROM {table} WHERE app_id = %s AND run_id IN ({placeholders})
            UNION
            SELECT t.root, r.run_id FROM {table} r JOIN tree t ON r.parent_run_id = t.run_id WHERE r.app_id = %s
        )
        SELECT t.root, COALESCE(SUM(r.total_tokens), 0), COALESCE(SUM(c.cost), 0),
               MAX(CASE WHEN r.run_id = t.root THEN r.latency_s END)
        FROM tree t JOIN {table} r ON r.app_id = %s AND r.run_id = t.run_id LEFT JOIN {costs} c ON c.run_pk = r.id
        GROUP BY t.root
    """  # noqa: S608 - only the table name and placeholders are formatted in
    with connection.cursor() as cursor:
        cursor.execute(sql, [app.pk, *run_ids, app.pk, app.pk])
        return {root: (int(tokens), Decimal(str(cost)), latency) for root, tokens, cost, latency in cursor.fetchall()}


def walk(root: Run):
    """Runs of a loaded trace in pre-order (parents before children, siblings by start time)."""
    stack, seen = [root], set()
    while stack:
        run = stack.pop()
        if run.pk in seen:
            continue
        seen.add(run.pk)
        yield run
        stack.extend(reversed(run.tree.children))


def cost_rows_for(root: Run) -> dict[int, ModelCost]:
    ids = {run.cost_row_id for run in walk(root) if run.cost_row_id}
    return {row.pk: row for row in ModelCost.objects.filter(pk__in=ids)} if ids else {}


COMPARED_FIELDS = ["input", "output", "model", "prompt_tokens", "completion_tokens", "total_tokens", "cost",
                   "latency_s", "status"]  # fmt: skip


def differences(a: Run, b: Run) -> list[dict]:
    """What differs between two loaded traces: each compared field, then the shape of their trees."""
    diffs = [
        {"field": name, "a": getattr(a, name), "b": getattr(b, name)}
        for name in COMPARED_FIELDS
        if getattr(a, name) != getattr(b, name)
    ]
    shape_a, shape_b = tree_shape(a), tree_shape(b)
    if shape_a != shape_b:
        diffs.append({"field": "tree", "a": shape_a, "b": shape_b})
    return diffs


def tree_shape(root: Run) -> list[str]:
    """The trace as indented "type name" lines, pre-order: equal shapes mean the same steps."""
    return [f"{'  ' * run.tree.depth}{run.type} {run.name}" for run in walk(root)]
