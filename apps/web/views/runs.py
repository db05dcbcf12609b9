"""The Run page: a trace as a tree on one time axis, the selected span's detail, Save, Compare.

Everything a client sent (names, inputs, outputs, metadata, tags, errors) reaches the
templates as plain strings and numbers and is auto-escaped there: nothing here marks text
safe. The waterfall's positions are numbers computed here, never client text.

Budgets that keep huge traces usable:
- the tree shows at most MAX_ROWS spans at first, breadth first (the top levels of the
  trace); the rest sit behind "N more spans" rows that `subtree` renders on demand;
- a value (input, output, an event's payload) shows at most CONTENT_LIMIT characters until
  "show all" is asked for (`full=1`), and base64 data (data URLs, long base64 runs) shows as
  a "[image/png, 120 KB]" placeholder, never as text.

Queries: the session, the user, the user's apps, the trace (one recursive query) with the
root's events and feedback, the cost rows that priced it; one more for the trace's root when
the run has a parent; a selected span other than the root adds its own load (subtree, events,
feedback) and, for a priced LLM call, its cached-token count.
"""

from __future__ import annotations

import json
import math
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from difflib import SequenceMatcher
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from apps.costs.models import ModelCost
from apps.tracing.merge import is_cache_hit
from apps.tracing.models import TIMEOUT_AFTER
from apps.tracing.selectors import MAX_DEPTH, TraceNode, cost_rows_for, differences, load_trace, trace_root, walk
from apps.tracing.services import set_saved
from apps.web.scoping import page_app

MAX_ROWS = 300  # spans rendered at first, and per "show more"
CONTENT_LIMIT = 20_000  # characters of one value before "show all"
EVENT_LIMIT = 4_000  # characters of one event's payload before "show all"
BASE64_RUN = 1_000  # a run of base64 characters at least this long is data, not text
MAX_INDENT = 24  # tree levels indented; deeper rows say their depth
SHORT_JSON = 80  # a metadata value this short in JSON stays on one line
SHAPE_LINES = 2_000  # lines of a tree shape compared side by side
THOUSAND = Decimal(1000)
TEN_DECIMALS = Decimal("0.0000000001")
URL_SAFE = "!$&'()*+,;=~:@"  # what Django's reverse() leaves unquoted in a path segment
ERROR_KEYS = ("message", "error", "detail")


def _app_or_404(request):
    app = page_app(request)
    if app is None:
        raise Http404("You have no apps yet.")
    return app


def _trace_or_404(app, run_id: str, *, with_events: bool = False) -> TraceNode:
    root = load_trace(app, run_id, with_events=with_events)
    if root is None:
        raise Http404("No such run.")
    return root


# --- views -----------------------------------------------------------------------------------


@login_required
@require_GET
def run_page(request, run_id: str):
    app = _app_or_404(request)
    root = _trace_or_404(app, run_id, with_events=True)
    cost_rows = cost_rows_for(root)
    by_id = {node.run_id: node for node in walk(root)}
    full = request.GET.get("full") == "1"
    wanted = request.GET.get("span") or root.run_id
    missing_span = None
    if wanted == root.run_id:
        selected = root
    else:
        selected = load_trace(app, wanted, with_events=True)
        if selected is None:
            missing_span, selected = wanted, root
        elif selected.run_id not in by_id:
            cost_rows = {**cost_rows, **cost_rows_for(selected)}
    urls = RunUrls(app, root.run_id)
    axis = Axis.of(by_id.values())
    forced = _path_to(by_id, root, by_id.get(selected.run_id))
    rows = layout(root, urls, axis, include_root=True, selected=selected.run_id, forced=forced)
    top = trace_root(app, root.run_id) if root.parent_run_id else None
    context = {
        "app": app,
        "root": root,
        "head": _summary(root, by_id.values()),
        "trace_root": top,
        "trace_root_url": urls.page(run_id=top) if top else None,
        "parent_url": urls.page(run_id=root.parent_run_id) if root.parent_run_id else None,
        "rows": rows,
        "axis": axis,
        "urls": urls,
        "missing_span": missing_span,
        **_span_context(app, selected, cost_rows, urls, full=full),
    }
    return render(request, "web/run.html", context)


@login_required
@require_GET
def span(request, run_id: str, span_id: str):
    """The detail panel of one span (htmx); the full page with ?span= otherwise."""
    app = _app_or_404(request)
    urls = RunUrls(app, run_id)
    full = request.GET.get("full") == "1"
    if not request.htmx:
        return _vary(redirect(urls.page(span_id, full=full)))
    node = _trace_or_404(app, span_id, with_events=True)
    context = {"app": app, "urls": urls, **_span_context(app, node, cost_rows_for(node), urls, full=full)}
    return _vary(render(request, "web/_run_span.html", context))


@login_required
@require_GET
def subtree(request, run_id: str, span_id: str):
    """Rows of the spans below `span_id` that the tree left collapsed (htmx), on the page's time axis."""
    app = _app_or_404(request)
    if not request.htmx:
        return _vary(redirect(RunUrls(app, span_id).page()))
    node = _trace_or_404(app, span_id)
    skip = _int(request.GET.get("skip"), 0, 0, 10**6)
    take = _int(request.GET.get("take"), len(node.children), 0, 10**6)
    depth = _int(request.GET.get("depth"), 0, 0, 10**6)
    axis = Axis.given(request.GET.get("t0"), request.GET.get("t1")) or Axis.of(walk(node))
    urls = RunUrls(app, run_id)
    rows = layout(node, urls, axis, include_root=False, start=skip, stop=skip + take, base_depth=depth)
    if not rows:
        rows = [Row(kind="empty", depth=depth + 1)]
    return _vary(render(request, "web/_run_rows.html", {"rows": rows, "urls": urls, "app": app}))


@login_required
@require_POST
def save(request, run_id: str):
    """Save (saved=1) or unsave (saved=0) a run: any member of the app's organization may."""
    app = _app_or_404(request)
    saved = request.POST.get("saved") == "1"
    if not set_saved(app, run_id, saved):
        raise Http404("No such run.")
    urls = RunUrls(app, run_id)
    if request.htmx:
        return render(request, "web/_run_save.html", {"root": {"run_id": run_id, "saved": saved}, "urls": urls})
    messages.success(request, "Saved." if saved else "No longer saved.")
    span_id = request.POST.get("span")
    return redirect(urls.page(span_id) if span_id else urls.page())


@login_required
@require_GET
def compare(request, run_id: str):
    """Two runs side by side with what differs between them (fields, then the shape of their trees)."""
    app = _app_or_404(request)
    a = _trace_or_404(app, run_id)
    other = (request.GET.get("with") or "").strip()
    urls = RunUrls(app, run_id)
    sides = [{"label": "A", "s": _summary(a, walk(a)), "url": urls.page()}]
    context: dict[str, Any] = {"app": app, "urls": urls, "root": a, "other": other, "sides": sides}
    status = 200
    b = load_trace(app, other) if other else None
    if other and b is None:
        context["error"] = f"There is no run {other!r} in this app."
        status = 404
    elif b is not None:
        sides.append({"label": "B", "s": _summary(b, walk(b)), "url": urls.page(run_id=b.run_id)})
        context["b"] = b
        context["diffs"] = [_difference(d) for d in differences(a, b)]
    return render(request, "web/_run_compare.html", context, status=status)


def _vary(response):
    """The same URL answers a fragment to htmx and a redirect otherwise: caches must tell them apart."""
    patch_vary_headers(response, ["HX-Request"])
    return response


# --- URLs ------------------------------------------------------------------------------------


class RunUrls:
    """The page's links, built once per page (reverse() per row would be a tenth of a 500-span page).

    A run id holding "/" cannot be in these URLs (urls.py uses the `str` converter): it gets
    no link (None), never a 500.
    """

    def __init__(self, app, root_id: str) -> None:
        self.app_id = str(app.public_id)
        self.root_id = root_id
        self.query = urlencode({"app": self.app_id})
        self._runs = reverse("run", args=["-"])[:-2]  # "/runs/"
        self._root = self._segment(root_id)

    @staticmethod
    def _segment(run_id: str | None) -> str | None:
        if not run_id or "/" in run_id:
            return None
        return quote(run_id, safe=URL_SAFE)

    def page(self, span_id: str | None = None, *, full: bool = False, run_id: str | None = None) -> str | None:
        segment = self._segment(run_id) if run_id is not None else self._root
        if segment is None:
            return None
        params = {"app": self.app_id}
        if span_id:
            params["span"] = span_id
        if full:
            params["full"] = "1"
        return f"{self._runs}{segment}/?{urlencode(params)}"

    def _sub(self, kind: str, span_id: str, extra: dict | None = None) -> str | None:
        segment = self._segment(span_id)
        if self._root is None or segment is None:
            return None
        query = f"{self.query}&{urlencode(extra)}" if extra else self.query
        return f"{self._runs}{self._root}/{kind}/{segment}/?{query}"

    def span(self, span_id: str, *, full: bool = False) -> str | None:
        return self._sub("span", span_id, {"full": "1"} if full else None)

    def subtree(self, span_id: str, **params) -> str | None:
        return self._sub("subtree", span_id, params)

    @property
    def save(self) -> str | None:
        return f"{self._runs}{self._root}/save/?{self.query}" if self._root else None

    @property
    def compare(self) -> str | None:
        return f"{self._runs}{self._root}/compare/" if self._root else None

    @property
    def calls(self) -> str:
        return f"{reverse('calls')}?{self.query}"


# --- the tree and its time axis --------------------------------------------------------------


@dataclass(slots=True)
class Axis:
    """The shared time axis of a waterfall: the trace's first start to its last end."""

    start: datetime
    end: datetime
    now: datetime

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.001)

    @classmethod
    def of(cls, nodes) -> Axis:
        now = timezone.now()
        nodes = list(nodes)
        start = min(n.started_at for n in nodes)
        end = max(_end_of(n, now) or n.started_at for n in nodes)
        return cls(start, max(end, start), now)

    @classmethod
    def given(cls, t0: str | None, t1: str | None) -> Axis | None:
        """The page's axis handed to `subtree` as epoch milliseconds; None when malformed."""
        try:
            start, end = float(t0 or ""), float(t1 or "")
        except ValueError:
            return None
        if not (math.isfinite(start) and math.isfinite(end)) or end < start or abs(start) > 1e14 or abs(end) > 1e14:
            return None
        return cls(_from_ms(start), _from_ms(end), timezone.now())

    @property
    def ticks(self) -> list[dict]:
        """Labels of the time axis at 0, 50 and 100 % (positions as numbers; grid lines every 25 %)."""
        return [{"left": pct, "label": _duration(self.seconds * pct / 100) if pct else "0"} for pct in (0, 50, 100)]

    @property
    def params(self) -> dict:
        return {"t0": _ms(self.start), "t1": _ms(self.end)}

    def bar(self, node: TraceNode) -> tuple[float, float, str]:
        """(left %, width %, kind): kind is "done", "running" (drawn to now) or "marker" (no end known)."""
        left = _pct((node.started_at - self.start).total_seconds() / self.seconds)
        end = _end_of(node, self.now)
        if end is None:
            return left, 0.0, "marker"
        width = _pct((end - node.started_at).total_seconds() / self.seconds)
        return left, min(width, round(100 - left, 3)), "done" if node.ended_at is not None else "running"


def _ms(value: datetime) -> str:
    return f"{value.timestamp() * 1000:.3f}"


def _from_ms(value: float) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=value)


def _pct(fraction: float) -> float:
    return round(min(max(fraction * 100, 0.0), 100.0), 3)


def _end_of(node: TraceNode, now: datetime) -> datetime | None:
    """When the run ended; `now` for one still running; None for one that will not end (timed out)."""
    if node.ended_at is not None:
        return node.ended_at
    if node.status == "started" and now - node.started_at <= TIMEOUT_AFTER:
        return now
    return None


def display_status(node: TraceNode, now: datetime | None = None) -> str:
    now = now or timezone.now()
    if node.status == "started" and now - node.started_at > TIMEOUT_AFTER:
        return "timed_out"
    return node.status


@dataclass(slots=True)
class Row:
    """One line of the tree: a span, or a "N more spans" placeholder for collapsed ones."""

    kind: str  # "span", "more", "empty"
    depth: int
    node: TraceNode | None = None
    status: str = ""
    error: str = ""
    duration: str = ""
    latency_class: str = ""
    tokens: str = ""
    cost: str = ""
    sub_tokens: str = ""
    sub_cost: str = ""
    left: str = "0"
    width: str = "0"
    bar: str = ""
    selected: bool = False
    page_url: str | None = None
    span_url: str | None = None
    more_count: str = ""
    more_url: str | None = None
    more_page: str | None = None

    @property
    def indent(self) -> int:
        return min(self.depth, MAX_INDENT)

    @property
    def status_label(self) -> str:
        return self.status.replace("_", " ")

    @property
    def deep(self) -> bool:
        return self.depth > MAX_INDENT


def _sizes(root: TraceNode) -> dict[int, int]:
    """Spans in each node's subtree (itself included), bottom-up."""
    sizes: dict[int, int] = {}
    for node in reversed(list(walk(root))):
        sizes[node.id] = 1 + sum(sizes.get(c.id, 0) for c in node.children)
    return sizes


def _path_to(by_id: dict[str, TraceNode], root: TraceNode, node: TraceNode | None) -> set[int]:
    """The ids from the root down to `node`, so that a selected span deep in the tree is shown."""
    path: set[int] = set()
    while node is not None and node.id not in path:
        path.add(node.id)
        if node is root:
            break
        node = by_id.get(node.parent_run_id)
    return path


def layout(
    root: TraceNode,
    urls: RunUrls,
    axis: Axis,
    *,
    include_root: bool,
    start: int = 0,
    stop: int | None = None,
    base_depth: int = 0,
    selected: str | None = None,
    forced: set[int] = frozenset(),
    budget: int = MAX_ROWS,
) -> list[Row]:
    """The rows of a tree in pre-order, at most `budget` spans (plus the path to the selected one).

    Spans are chosen breadth first, so the top levels of a big trace show and its deeper
    levels collapse; each run of hidden siblings becomes one "N more spans" row whose
    `subtree` URL renders exactly those siblings (and their subtrees, with the same budget).
    `include_root=False` renders only root.children[start:stop] (what `subtree` asked for).
    """
    sizes = _sizes(root)
    first = root.children[start:stop]
    visible = set(forced)
    if include_root:
        visible.add(root.id)
    queue = deque([root] if include_root else first)
    seen: set[int] = set()
    while queue and len(visible) < budget:
        node = queue.popleft()
        if node.id in seen:
            continue
        seen.add(node.id)
        visible.add(node.id)
        queue.extend(root.children[start:stop] if node is root else node.children)

    now, rows, emitted = axis.now, [], set()
    stack: list[tuple] = []

    def push_children(parent: TraceNode, kids: list[TraceNode], offset: int) -> None:
        entries, i = [], 0
        while i < len(kids):
            if kids[i].id in visible:
                entries.append(("span", kids[i]))
                i += 1
                continue
            j = i
            while j < len(kids) and kids[j].id not in visible:
                j += 1
            entries.append(("more", parent, offset + i, j - i, sum(sizes.get(k.id, 1) for k in kids[i:j])))
            i = j
        if parent.depth >= MAX_DEPTH and not kids:  # the trace query stops here: there may be more below
            entries.append(("more", parent, 0, 10**6, 0))
        stack.extend(reversed(entries))

    if include_root:
        stack.append(("span", root))
    else:
        push_children(root, first, start)
    while stack:
        entry = stack.pop()
        if entry[0] == "more":
            _, parent, skip, take, count = entry
            depth = base_depth + parent.depth + 1
            rows.append(
                Row(
                    kind="more",
                    depth=depth,
                    more_count=f"{count:,}" if count else "",
                    more_url=urls.subtree(parent.run_id, skip=skip, take=take, depth=depth - 1, **axis.params),
                    more_page=urls.page(run_id=parent.run_id),
                )
            )
            continue
        node = entry[1]
        if node.id in emitted:
            continue
        emitted.add(node.id)
        rows.append(_row(node, base_depth + node.depth, axis, urls, now, selected))
        push_children(node, node.children, 0)
    return rows


def _row(node: TraceNode, depth: int, axis: Axis, urls: RunUrls, now: datetime, selected: str | None) -> Row:
    left, width, bar = axis.bar(node)
    status = display_status(node, now)
    latency = _latency(node)
    has_children = bool(node.children)
    return Row(
        kind="span",
        depth=depth,
        node=node,
        status=status,
        error=_short(error_text(node.error), 160) if node.error is not None else "",
        duration=_duration(latency),
        latency_class=_latency_class(latency),
        tokens=_count(node.total_tokens),
        cost=_money_short(node.cost) if node.cost else "",
        sub_tokens=_count(node.subtree_tokens) if has_children and node.subtree_tokens else "",
        sub_cost=_money_short(node.subtree_cost) if has_children and node.subtree_cost else "",
        left=f"{left:.3f}",
        width=f"{width:.3f}",
        bar=bar,
        selected=node.run_id == selected,
        page_url=urls.page(node.run_id),
        span_url=urls.span(node.run_id),
    )


def _latency(node: TraceNode) -> float | None:
    if node.latency_s is not None:
        return node.latency_s
    if node.ended_at is not None:
        return max((node.ended_at - node.started_at).total_seconds(), 0.0)
    return None


def _summary(root: TraceNode, nodes) -> dict:
    """The headline numbers of a trace: its status, duration, spans, totals."""
    nodes = list(nodes)
    latency = _latency(root)
    return {
        "node": root,
        "status": display_status(root),
        "status_label": display_status(root).replace("_", " "),
        "duration": _duration(latency),
        "latency_class": _latency_class(latency),
        "spans": len(nodes),
        "errors": sum(1 for n in nodes if n.status == "error"),
        "tokens": _count(root.subtree_tokens) or "0",
        "cost": _money(root.subtree_cost),
        "started": root.started_at.isoformat(),
    }


# --- the selected span -------------------------------------------------------------------------


def _span_context(app, node: TraceNode, cost_rows: dict[int, ModelCost], urls: RunUrls, *, full: bool) -> dict:
    limit = None if full else CONTENT_LIMIT
    event_limit = None if full else EVENT_LIMIT
    latency = _latency(node)
    return {
        "span": node,
        "span_status": display_status(node),
        "span_status_label": display_status(node).replace("_", " "),
        "span_duration": _duration(latency),
        "span_latency_class": _latency_class(latency),
        "span_tokens": {
            "prompt": _count(node.prompt_tokens),
            "completion": _count(node.completion_tokens),
            "total": _count(node.total_tokens),
            "subtree": _count(node.subtree_tokens) if node.children else "",
        },
        "span_cost": _money(node.cost),
        "span_subtree_cost": _money(node.subtree_cost) if node.children else "",
        "span_error": error_parts(node.error),
        "span_input": show(node.input, limit),
        "span_output": show(node.output, limit),
        "span_metadata": [(str(key), show_short(value, limit)) for key, value in (node.metadata or {}).items()]
        if isinstance(node.metadata, dict)
        else [],
        "span_tags": [str(tag) for tag in node.tags] if isinstance(node.tags, list) else [],
        "span_events": [
            {"name": e.name, "timestamp": e.timestamp.isoformat(), "payload": show(e.payload, event_limit)}
            for e in node.events
        ],
        "span_feedback": node.feedback,
        "breakdown": cost_breakdown(app, node, cost_rows.get(node.cost_row_id)),
        "span_full": full,
        "span_page": urls.page(node.run_id),
        "span_full_page": urls.page(node.run_id, full=True),
        "span_full_partial": urls.span(node.run_id, full=True),
        "span_own_page": urls.page(run_id=node.run_id) if node.run_id != urls.root_id else None,
    }


def error_text(error: Any) -> str:
    """An error as one line: its message (and type), whatever shape the client sent."""
    if error is None:
        return ""
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        message = next((error[key] for key in ERROR_KEYS if isinstance(error.get(key), str)), None)
        kind = error.get("type") or error.get("name")
        if isinstance(message, str):
            return f"{kind}: {message}" if isinstance(kind, str) and kind else message
    return _dump(error)


def error_parts(error: Any) -> dict | None:
    """An error as its message (one line, red) and whatever else it carries (a stack, a code) as JSON."""
    if error is None:
        return None
    if isinstance(error, str):
        return {"message": _short(error, CONTENT_LIMIT), "rest": None}
    if isinstance(error, dict) and any(isinstance(error.get(key), str) for key in ERROR_KEYS):
        extra = {k: v for k, v in error.items() if k not in (*ERROR_KEYS, "type", "name")}
        return {"message": _short(error_text(error), CONTENT_LIMIT), "rest": show(extra) if extra else None}
    return {"message": "", "rest": show(error)}


def cost_breakdown(app, node: TraceNode, row: ModelCost | None) -> dict:
    """How the span's cost was computed: tokens × rate lines and the cost row, or why it is not priced."""
    result: dict[str, Any] = {"lines": [], "row": None, "reason": None, "note": None, "cost": _money(node.cost)}
    if node.type != "llm":
        result["reason"] = "Only LLM calls are priced."
        return result
    if not node.model:
        result["reason"] = "Not priced: the call reported no model."
        return result
    has_split = node.prompt_tokens is not None and node.completion_tokens is not None
    if row is None:
        if not has_split and node.total_tokens is None:
            result["reason"] = "Not priced: the call reported no token counts."
        else:
            day = node.started_at.date().isoformat()
            result["reason"] = f"Not priced: no row of the cost table matches the model {node.model!r} on {day}."
        return result
    result["row"] = {
        "pk": row.pk,
        "model": row.model,
        "is_pattern": row.is_pattern,
        "provider": row.provider,
        "valid_from": row.valid_from.isoformat() if row.valid_from else None,
    }
    if is_cache_hit(node.metadata):
        result["reason"] = "A cache hit (metadata.cache_hit): nothing was billed."
        return result
    computed = Decimal(0)
    if has_split:
        cached = min(node.cached_prompt_tokens or 0, node.prompt_tokens)
        cached_price = row.cached_prompt_price if row.cached_prompt_price is not None else row.prompt_price
        parts = [("prompt", node.prompt_tokens - cached, row.prompt_price)]
        if cached:
            parts.append(("cached prompt", cached, cached_price))
        parts.append(("completion", node.completion_tokens, row.completion_price))
    else:
        price = row.total_price if row.total_price is not None else row.prompt_price
        parts = [("total" if row.total_price is not None else "total (at the prompt rate)", node.total_tokens, price)]
    for label, tokens, rate in parts:
        amount = Decimal(tokens) * rate / THOUSAND
        computed += amount
        result["lines"].append(
            {"label": label, "tokens": _count(tokens), "rate": _plain(rate), "amount": _money(amount)}
        )
    computed = computed.quantize(TEN_DECIMALS, rounding=ROUND_HALF_UP)
    if computed != (node.cost or 0):
        result["note"] = (
            f"The row's rates give {_money(computed)}; the stored cost is from when the call was priced "
            "(a recalculation brings it up to date)."
        )
    return result


# --- showing untrusted values --------------------------------------------------------------------


@dataclass(slots=True)
class Piece:
    """A stretch of text, or (blob) the placeholder of base64 data that was not shown."""

    text: str
    blob: bool = False


@dataclass(slots=True)
class Part:
    kind: str  # "text", "image", "json"
    pieces: list[Piece]


@dataclass(slots=True)
class Message:
    role: str
    parts: list[Part]
    extra: list[Piece] = field(default_factory=list)  # other keys (tool_calls, name) as JSON


@dataclass(slots=True)
class Shown:
    """How a value shows: "none", "chat" (messages), "json" (pretty-printed) or "text"."""

    kind: str
    pieces: list[Piece] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    extra: list[Piece] = field(default_factory=list)  # a chat request's other keys
    cut: int = 0  # characters left out
    hidden_messages: int = 0

    @property
    def truncated(self) -> bool:
        return bool(self.cut or self.hidden_messages)

    @property
    def cut_text(self) -> str:
        return f"{self.cut:,}"


class _Budget:
    """What is left of a value's character limit (None: no limit)."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit
        self.cut = 0

    @property
    def spent(self) -> bool:
        return self.left is not None and self.left <= 0

    def take(self, pieces: list[Piece]) -> list[Piece]:
        if self.left is None:
            return pieces
        kept = []
        for piece in pieces:
            size = len(piece.text)
            if self.left <= 0:
                self.cut += size
            elif size <= self.left or piece.blob:
                kept.append(piece)
                self.left -= size
            else:
                kept.append(Piece(piece.text[: self.left]))
                self.cut += size - self.left
                self.left = 0
        return kept


BLOB = re.compile(
    r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w.+-]+=[^;,\s]*)*;base64,(?P<data>[A-Za-z0-9+/_-]*={0,2})"
    rf"|(?<![A-Za-z0-9+/_-])(?P<run>[A-Za-z0-9+/_-]{{{BASE64_RUN},}}={{0,2}})"
)
MAGIC = {"iVBORw0KGgo": "image/png", "/9j/": "image/jpeg", "R0lGOD": "image/gif", "UklGR": "image/webp",
         "JVBERi0": "application/pdf", "PD94bWwg": "text/xml", "SUkqAA": "image/tiff", "Qk": "image/bmp"}  # fmt: skip


def _size(chars: int) -> str:
    size = chars * 3 // 4
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{round(size / 1024)} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def _blob_label(match: re.Match) -> str:
    if match.group("run") is not None:
        data = match.group("run")
        mime = next((kind for magic, kind in MAGIC.items() if data.startswith(magic) and len(magic) > 2), "base64")
        return f"[{mime}, {_size(len(data.rstrip('=')))}]"
    data = match.group("data")
    return f"[{match.group('mime') or 'data'}, {_size(len(data.rstrip('=')))}]"


def pieces_of(text: str) -> list[Piece]:
    """The text with each data URL or long base64 run replaced by a placeholder piece."""
    if len(text) < BASE64_RUN and "base64," not in text:
        return [Piece(text)] if text else []
    pieces, at = [], 0
    for match in BLOB.finditer(text):
        if match.start() > at:
            pieces.append(Piece(text[at : match.start()]))
        pieces.append(Piece(_blob_label(match), blob=True))
        at = match.end()
    if at < len(text):
        pieces.append(Piece(text[at:]))
    return pieces


def _scrub(value: Any, depth: int = 0) -> Any:
    """The value with base64 data inside its strings replaced by placeholders (for pretty JSON)."""
    if isinstance(value, str):
        pieces = pieces_of(value)
        return value if not any(p.blob for p in pieces) else "".join(p.text for p in pieces)
    if depth > 100:
        return value
    if isinstance(value, dict):
        return {key: _scrub(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, depth + 1) for item in value]
    return value


def _dump(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        try:
            return json.dumps(value, indent=2, ensure_ascii=False, default=str)
        except (ValueError, RecursionError):
            return repr(value)


def _is_message(value: Any) -> bool:
    return (
        isinstance(value, dict) and isinstance(value.get("role"), str) and ("content" in value or "tool_calls" in value)
    )


def _chat_of(value: Any) -> tuple[list[dict], dict] | None:
    """(messages, other keys) when the value is a chat: a message list, one message, or {"messages": [...]}."""
    if isinstance(value, list) and value and all(_is_message(m) for m in value):
        return value, {}
    if _is_message(value):
        return [value], {}
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        found = _chat_of(value["messages"])
        if found and len(found[0]) == len(value["messages"]):
            return found[0], {k: v for k, v in value.items() if k != "messages"}
    return None


def show(value: Any, limit: int | None = CONTENT_LIMIT) -> Shown:
    """How a client's value is shown: chat messages, else pretty JSON, else text; within `limit` characters."""
    if value is None or value == "" or value == [] or value == {}:
        return Shown("none")
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
            try:
                parsed = orjson.loads(stripped)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict | list):
                return show(parsed, limit)
        budget = _Budget(limit)
        return Shown("text", pieces=budget.take(pieces_of(value)), cut=budget.cut)
    chat = _chat_of(value)
    if chat is not None:
        return _show_chat(*chat, limit)
    budget = _Budget(limit)
    return Shown("json", pieces=budget.take(pieces_of(_dump(_scrub(value)))), cut=budget.cut)


def show_short(value: Any, limit: int | None = CONTENT_LIMIT) -> Shown:
    """Like `show`, but a number, list or object that fits on a line stays on the line (metadata values)."""
    if value is not None and not isinstance(value, str) and _chat_of(value) is None:
        try:
            compact = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
        except (TypeError, orjson.JSONEncodeError):
            compact = None
        if compact is not None and len(compact) <= SHORT_JSON:
            return Shown("text", pieces=pieces_of(compact))
    return show(value, limit)


def _show_chat(items: list[dict], extra: dict, limit: int | None) -> Shown:
    budget = _Budget(limit)
    shown = Shown("chat")
    for index, item in enumerate(items):
        if budget.spent:
            shown.hidden_messages = len(items) - index
            break
        parts = [Part(kind, budget.take(pieces)) for kind, pieces in _parts(item.get("content"))]
        others = {k: v for k, v in item.items() if k not in ("role", "content")}
        message = Message(role=str(item["role"]), parts=parts)
        if others:
            message.extra = budget.take(pieces_of(_dump(_scrub(others))))
        shown.messages.append(message)
    if extra:
        shown.extra = budget.take(pieces_of(_dump(_scrub(extra))))
    shown.cut = budget.cut
    return shown


def _parts(content: Any) -> list[tuple[str, list[Piece]]]:
    """A message's content as (kind, pieces): a string, or a list of text / image_url parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [("text", pieces_of(content))]
    if not isinstance(content, list):
        return [("json", pieces_of(_dump(_scrub(content))))]
    parts = []
    for part in content:
        if isinstance(part, str):
            parts.append(("text", pieces_of(part)))
        elif isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            parts.append(("text", pieces_of(part["text"])))
        elif isinstance(part, dict) and part.get("type") in ("image_url", "input_image", "image"):
            parts.append(("image", _image(part)))
        else:
            parts.append(("json", pieces_of(_dump(_scrub(part)))))
    return parts


def _image(part: dict) -> list[Piece]:
    """An image part as a placeholder: a data URL's type and size, else its address as text (never loaded)."""
    url = part.get("image_url")
    if isinstance(url, dict):
        url = url.get("url")
    source = part.get("source")
    if url is None and isinstance(source, dict):  # Anthropic: {"type": "base64", "media_type", "data"}
        if isinstance(source.get("data"), str):
            kind = source.get("media_type") if isinstance(source.get("media_type"), str) else "image"
            return [Piece(f"[{kind}, {_size(len(source['data'].rstrip('=')))}]", blob=True)]
        url = source.get("url")
    if not isinstance(url, str):
        return [Piece("[image]", blob=True)]
    pieces = pieces_of(url)
    if any(p.blob for p in pieces):
        return pieces
    return [Piece("[image] ", blob=True), Piece(_short(url, 300))]


# --- comparing ---------------------------------------------------------------------------------


def _difference(diff: dict) -> dict:
    name, a, b = diff["field"], diff["a"], diff["b"]
    if name == "tree":
        return {"field": name, "kind": "tree", "tree": _shape_rows(a, b)}
    if name in ("input", "output"):
        return {"field": name, "kind": "content", "a": show(a), "b": show(b)}
    if name == "cost":
        a_text, b_text = _money(a), _money(b)
    elif name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        a_text, b_text = _count(a) or "—", _count(b) or "—"
    elif name == "latency_s":
        name, a_text, b_text = "duration", _duration(a) or "—", _duration(b) or "—"
    else:
        a_text, b_text = "—" if a is None else str(a), "—" if b is None else str(b)
    return {"field": name, "kind": "text", "a_text": a_text, "b_text": b_text}


def _shape_rows(a: list[str], b: list[str]) -> list[dict]:
    """The two tree shapes aligned line by line, with the lines that differ marked."""
    a, b = a[:SHAPE_LINES], b[:SHAPE_LINES]
    rows = []
    for op, i1, i2, j1, j2 in SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        left, right = a[i1:i2], b[j1:j2]
        for k in range(max(len(left), len(right))):
            rows.append({
                "a": left[k] if k < len(left) else "",
                "b": right[k] if k < len(right) else "",
                "changed": op != "equal",
            })  # fmt: skip
    return rows


# --- formatting ----------------------------------------------------------------------------------


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(value), low), high) if value not in (None, "") else default
    except ValueError:
        return default


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _plain(value: Decimal | None) -> str:
    """A decimal without exponent or trailing zeros: 0.00015, never 1.5E-4."""
    if value is None:
        return "—"
    text = format(value.normalize(), "f")
    return text


def _money(value: Decimal | float | None) -> str:
    if value is None:
        return "—"
    return f"${_plain(Decimal(str(value)))}"


def _money_short(value: Decimal) -> str:
    """A cost for a tree row: six decimals at most."""
    rounded = Decimal(value).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
    return "<$0.000001" if not rounded and value else f"${_plain(rounded)}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:.0f} s"


def _latency_class(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return "fine" if seconds < 4 else "warning" if seconds <= 8 else "danger"
