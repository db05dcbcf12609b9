"""Reads of runs: the runs of an app, whole traces, subtree totals (pages, API and analytics read here).

A trace is one recursive query (sql.run_tree) assembled in Python into `TraceNode`s: plain
slots dataclasses with the columns a trace shows and the totals of each node's subtree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from django.db import connection, models
from rest_framework.exceptions import ValidationError

from apps.costs.models import ModelCost
from apps.tracing.api.pagination import RunPagination
from apps.tracing.filters import RunFilterSet
from apps.tracing.models import Event, Feedback, Run, RunCost, RunQuerySet
from apps.tracing.sql import run_tree

MAX_DEPTH = 200
MAX_NODES = 10_000


def runs_of(app) -> RunQuerySet:
    """The runs of one app, each with its cost: what the runs list filters and pages."""
    return Run.objects.for_app(app).with_cost()


@dataclass(slots=True, eq=False)
class TraceNode:
    """One run of a loaded trace: the columns a trace shows, its cost, and its place in the tree."""

    id: int
    app_id: int
    run_id: str
    parent_run_id: str | None
    type: str
    name: str
    agent: str | None
    status: str
    started_at: datetime
    ended_at: datetime | None
    latency_s: float | None
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    cached_prompt_tokens: int | None
    tags: list[str]
    user_id: str | None
    user_email: str | None
    thread_id: str | None
    saved: bool
    input: Any
    output: Any
    error: Any
    metadata: dict
    cost: Decimal | None
    cost_row_id: int | None
    # Filled in as the tree is assembled; events and feedback only for the root, on request.
    children: list[TraceNode] = field(default_factory=list)
    subtree_tokens: int = 0
    subtree_cost: Decimal = Decimal(0)
    depth: int = 0
    events: list[Event] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)

    @property
    def pk(self) -> int:
        return self.id


# The Run columns a trace loads: TraceNode's fields up to `cost` (which comes from RunCost).
_NODE_FIELDS = [f.name for f in fields(TraceNode)]
TRACE_FIELDS = [Run._meta.get_field(name) for name in _NODE_FIELDS[: _NODE_FIELDS.index("cost")]]
JSON_COLUMNS = [f.attname for f in TRACE_FIELDS if isinstance(f, models.JSONField)]
BOOLEAN_COLUMNS = [f.attname for f in TRACE_FIELDS if isinstance(f, models.BooleanField)]
DATETIME_COLUMNS = [f.attname for f in TRACE_FIELDS if isinstance(f, models.DateTimeField)]


def load_trace(app, run_id: str, *, with_events: bool = False) -> TraceNode | None:
    """The run `run_id` of `app` as the root of its trace, or None.

    `with_events` also loads the root's events and feedback (two more queries). One recursive
    query fetches the subtree (bounded in depth and size, and safe against cycles), whatever
    its shape; totals are summed bottom-up in Python.
    """
    nodes = _subtree(app, run_id)
    by_id = {node.run_id: node for node in nodes}
    root = by_id.get(run_id)
    if root is None:
        return None
    for node in sorted(nodes, key=lambda n: (n.started_at, n.id)):
        parent = by_id.get(node.parent_run_id) if node is not root else None
        if parent is not None:
            parent.children.append(node)
    _sum_subtree(root)
    if with_events:
        root.events = list(Event.objects.for_app(app).filter(run_id=run_id).order_by("timestamp", "id"))
        root.feedback = list(Feedback.objects.for_app(app).filter(run_id=run_id).order_by("timestamp", "id"))
    return root


def trace_root(app, run_id: str) -> str | None:
    """The run id of the topmost stored ancestor of `run_id` (one recursive query), if not the run itself."""
    seed = f"SELECT app_id, run_id, parent_run_id, 0 FROM {Run._meta.db_table} WHERE app_id = %s AND run_id = %s"  # noqa: S608
    chain = run_tree("chain", seed, up=True, max_depth=MAX_DEPTH * 5)
    with connection.cursor() as cursor:
        cursor.execute(f"{chain} SELECT run_id FROM chain ORDER BY depth DESC LIMIT 1", [app.pk, run_id])
        found = cursor.fetchone()
    return found[0] if found and found[0] != run_id else None


def _subtree(app, run_id: str) -> list[TraceNode]:
    table, costs = Run._meta.db_table, RunCost._meta.db_table
    columns = ", ".join(
        # Datetimes as ISO text: datetime.fromisoformat (C) is ~50x faster than the driver's
        # loader as Django installs it (pure Python).
        f"CAST(r.{connection.ops.quote_name(f.column)} AS text)"
        if isinstance(f, models.DateTimeField)
        else f"r.{connection.ops.quote_name(f.column)}"
        for f in TRACE_FIELDS
    )
    seed = f"SELECT app_id, run_id, parent_run_id, 0 FROM {table} WHERE app_id = %s AND run_id = %s"  # noqa: S608
    sql = f"""
        {run_tree("tree", seed, max_depth=MAX_DEPTH)}
        SELECT {columns}, c.cost, c.cost_row_id FROM {table} r LEFT JOIN {costs} c ON c.run_pk = r.id
        WHERE r.app_id = %s AND r.run_id IN (SELECT run_id FROM tree) LIMIT {MAX_NODES}
    """  # noqa: S608 - only the table and column names are formatted in
    with connection.cursor() as cursor:
        cursor.execute(sql, [app.pk, run_id, app.pk])
        return [_node(row) for row in cursor.fetchall()]


def _node(row) -> TraceNode:
    """A TraceNode from a row of `_subtree`, converting only what the drivers leave raw (JSON text,
    SQLite's 0/1 and datetime text, the joined cost as a float on SQLite). Model.from_db with
    Django's per-cell converters costs ~140 µs a run, fifteen times the database's work for a
    whole 500-span trace."""
    values = dict(zip(_NODE_FIELDS, row, strict=False))
    for name in JSON_COLUMNS:
        if isinstance(values[name], str | bytes):
            values[name] = orjson.loads(values[name])
    for name in BOOLEAN_COLUMNS:
        if values[name] is not None:
            values[name] = bool(values[name])
    for name in DATETIME_COLUMNS:
        if isinstance(values[name], str):
            values[name] = datetime.fromisoformat(values[name])
        if values[name] is not None and values[name].tzinfo is None:
            values[name] = values[name].replace(tzinfo=UTC)
    values["cost"] = Decimal(str(values["cost"])) if values["cost"] is not None else Decimal(0)
    return TraceNode(**values)


def _sum_subtree(root: TraceNode) -> None:
    """Depths and subtree totals, iteratively (a trace may be deeper than Python's recursion limit)."""
    order, stack, seen = [], [root], set()
    while stack:
        node = stack.pop()
        if node.id in seen:
            continue
        seen.add(node.id)
        order.append(node)
        for child in node.children:
            child.depth = node.depth + 1
            stack.append(child)
    for node in reversed(order):
        node.subtree_tokens = (node.total_tokens or 0) + sum(c.subtree_tokens for c in node.children)
        node.subtree_cost = (node.cost or 0) + sum((c.subtree_cost for c in node.children), Decimal(0))


def subtree_totals(app, run_ids: set[str]) -> dict[str, tuple[int, Decimal, float | None]]:
    """{run_id: (tokens, cost, latency_s)} for each run with its whole subtree, in one query."""
    if not run_ids:
        return {}
    table, costs = Run._meta.db_table, RunCost._meta.db_table
    placeholders = ", ".join(["%s"] * len(run_ids))
    seed = f"SELECT run_id, app_id, run_id, parent_run_id FROM {table} WHERE app_id = %s AND run_id IN ({placeholders})"  # noqa: S608
    sql = f"""
        {run_tree("tree", seed, carry=["root"])}
        SELECT t.root, COALESCE(SUM(r.total_tokens), 0), COALESCE(SUM(c.cost), 0),
               MAX(CASE WHEN r.run_id = t.root THEN r.latency_s END)
        FROM tree t JOIN {table} r ON r.app_id = t.app_id AND r.run_id = t.run_id LEFT JOIN {costs} c ON c.run_pk = r.id
        GROUP BY t.root
    """  # noqa: S608 - only the table name and placeholders are formatted in
    with connection.cursor() as cursor:
        cursor.execute(sql, [app.pk, *run_ids])
        return {root: (int(tokens), Decimal(str(cost)), latency) for root, tokens, cost, latency in cursor.fetchall()}


def walk(root: TraceNode) -> Iterator[TraceNode]:
    """Nodes of a loaded trace in pre-order (parents before children, siblings by start time)."""
    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if node.id in seen:
            continue
        seen.add(node.id)
        yield node
        stack.extend(reversed(node.children))


def cost_rows_for(*roots: TraceNode) -> dict[int, ModelCost]:
    """The cost rows that priced the runs of these traces, by id (one query, none when nothing was priced)."""
    ids = {node.cost_row_id for root in roots for node in walk(root) if node.cost_row_id}
    return {row.pk: row for row in ModelCost.objects.filter(pk__in=ids)} if ids else {}


COMPARED_FIELDS = ["input", "output", "model", "prompt_tokens", "completion_tokens", "total_tokens", "cost",
                   "latency_s", "status"]  # fmt: skip


def differences(a: TraceNode, b: TraceNode) -> list[dict]:
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


def tree_shape(root: TraceNode) -> list[str]:
    """The trace as indented "type name" lines, pre-order: equal shapes mean the same steps."""
    return [f"{'  ' * node.depth}{node.type} {node.name}" for node in walk(root)]


# --- The LLM Calls page: one page of the runs list, and the app's own filter choices -------------


@dataclass(slots=True)
class RunPage:
    """One page of the runs list: its runs (each with `.cost`), the next page's cursor (None on the
    last page) and the ordering the page was sorted by."""

    rows: list[Run]
    next_cursor: str | None
    ordering: str


class _ListRequest:
    """What RunPagination reads of a request (`query_params`) and of its view (`ordering`)."""

    def __init__(self, params, ordering: str) -> None:
        self.query_params, self.ordering = params, ordering


def page_of_runs(app, params) -> RunPage:
    """The page of `app`'s runs that GET /api/run/ answers for the same query `params` (a QueryDict).

    The same FilterSet, ordering and keyset cursors as the API (RunFilterSet, RunPagination):
    a cursor from either works in the other. Invalid values raise the API's ValidationError,
    with its messages, in its order: the filters first, then `limit`, then `cursor`. One query.
    """
    filterset = RunFilterSet(params, queryset=runs_of(app), app=app)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    ordering = filterset.requested_ordering
    paginator, request = RunPagination(), _ListRequest(params, ordering)
    rows = paginator.paginate_queryset(filterset.qs, request, request)
    return RunPage(rows, paginator.encode(paginator.last) if paginator.has_next else None, ordering)


CHOICES_LIMIT = 200  # values of each column offered as filter choices
TAG_SAMPLE = 1000  # the tags offered are those of the app's latest runs


@dataclass(slots=True)
class RunChoices:
    """The values an app's runs use, to offer as filter choices (sorted, at most CHOICES_LIMIT each)."""

    types: list[str]
    agents: list[str]
    models: list[str]
    tags: list[str]


def _distinct_values(alias: str, column: str) -> str:
    """A recursive CTE `alias(val, n)` that walks the distinct values of `column` in one app, in order.

    A "loose index scan": each step is one probe of the (app, column, …) index for the next value
    above the last, so 200 values cost 200 probes whatever the number of runs (PostgreSQL has no
    skip scan, and SELECT DISTINCT would read every run of the app).
    """
    table, col = connection.ops.quote_name(Run._meta.db_table), connection.ops.quote_name(column)
    return (
        f"{alias}(val, n) AS (SELECT MIN({col}), 1 FROM {table} WHERE app_id = %s"
        f" UNION ALL SELECT (SELECT MIN({col}) FROM {table} WHERE app_id = %s AND {col} > {alias}.val), {alias}.n + 1"
        f" FROM {alias} WHERE {alias}.val IS NOT NULL AND {alias}.n < {CHOICES_LIMIT})"
    )


def run_choices(app) -> RunChoices:
    """The app's run types, agents and models (all of them, up to CHOICES_LIMIT each, alphabetically,
    in one query walking the run_app_type/agent/model indexes) and the tags of its TAG_SAMPLE latest
    runs (a second query: one page of run_app_started). About 1-3 ms at 1,000,000 runs on PostgreSQL.
    No types means the app has no runs at all."""
    columns = {"types": "type", "agents": "agent", "models": "model"}
    ctes = ", ".join(_distinct_values(f"d_{name}", column) for name, column in columns.items())
    union = " UNION ALL ".join(f"SELECT '{name}', val FROM d_{name} WHERE val IS NOT NULL" for name in columns)
    found: dict[str, list[str]] = {name: [] for name in columns}
    with connection.cursor() as cursor:
        cursor.execute(f"WITH RECURSIVE {ctes} {union}", [app.pk, app.pk] * len(columns))  # noqa: S608 - names only
        for name, value in cursor.fetchall():
            found[name].append(value)
    recent = Run.objects.for_app(app).order_by("-started_at", "-id").values_list("tags", flat=True)[:TAG_SAMPLE]
    tags = sorted(
        {tag for run_tags in recent if isinstance(run_tags, list) for tag in run_tags if isinstance(tag, str)}
    )
    return RunChoices(
        types=sorted(found["types"]),
        agents=sorted(found["agents"]),
        models=sorted(found["models"]),
        tags=tags[:CHOICES_LIMIT],
    )


def trace_root_id(app, *, prefix: str) -> str | None:
    """The run id of the earliest root run whose id starts with `prefix` (an OTLP trace's `<trace id>-`)."""
    roots = Run.objects.for_app(app).filter(run_id__startswith=prefix, parent_run_id__isnull=True)
    return roots.order_by("started_at").values_list("run_id", flat=True).first()


def run_exists(app, run_id: str) -> bool:
    return Run.objects.for_app(app).filter(run_id=run_id).exists()
