"""Analytics (`/analytics/`): where the money and the time go, for the current app and a window.

Every figure comes from `analytics.selectors` (the same queries as GET /api/analytics/*), read with
the same parameters: `from`, `to`, `agent`, `model`, `type`, `status`, `tags`, `user_email`,
`user_id`, `tz`, `interval` and `group_by`, validated by `analytics_filter` (an invalid value
answers 400 with the API's own message). Plus `app` and `range`, the time presets of LLM Calls
(without a window: the last 7 days, the selectors' default).

The charts are drawn by static/js/analytics.js (uPlot, vendored) from JSON embedded with
`json_script`; the tables and the latency bars need no JavaScript. Every table row, and every
chart point, links to LLM Calls with the matching filters (its parameter names are the runs
API's: `calls.page_url` writes the link).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial

from django.contrib.auth.decorators import login_required
from django.http import QueryDict
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from rest_framework.exceptions import ValidationError

from apps.analytics.selectors import agent_stats, analytics_filter, answer_all, model_stats, top_errors, usage
from apps.tenancy.api.exceptions import error_lines
from apps.tracing.selectors import run_choices
from apps.web.scoping import page_app
from apps.web.views.calls import STATUSES, local_input, option_list, param
from apps.web.views.calls import page_url as calls_url
from apps.web.views.common import RANGES, empty_state, seconds, state_url, usd, with_range

# Every parameter the page keeps in its URL, in the order its links write them.
PARAMS = ["app", "group_by", "interval", "range", "from", "to", "tz", "agent", "model", "type", "status", "tags",
          "user_email", "user_id"]  # fmt: skip
# What LLM Calls reads of them (its own names): the page's filters, carried into every link.
FILTERS = ["agent", "model", "type", "status", "tags", "user_email", "user_id"]
DEFAULT_RANGE = "7d"  # what the selectors read without `from`/`to`
GROUPS = [("model", "Model"), ("agent", "Agent"), ("user", "User")]
INTERVALS = [("", "Auto"), ("hour", "Hour"), ("day", "Day")]
MAX_SERIES = 8  # keys drawn on their own in the cost chart; the rest are summed as "Other"
TOP_ERRORS = 20
TICK = timedelta(microseconds=1)  # LLM Calls' `to` is inclusive: a bucket's link ends just before the next


@login_required
def analytics_page(request):
    app = page_app(request)
    if app is None:
        return render(request, "web/analytics.html", empty_state(request, None, "No apps yet"))
    state = read_state(request.GET, app)
    choices = run_choices(app)
    context = {"has_runs": bool(choices.types), **filter_bar(state, choices)}
    if not context["has_runs"]:  # no types: the app has no runs at all
        context.update(empty_state(request, app, "No runs yet"))
        return render(request, "web/analytics.html", context)
    try:
        query = analytics_filter(app, selector_params(state))
    except ValidationError as exc:
        context["errors"] = error_lines(exc.detail)
        return render(request, "web/analytics.html", context, status=400)
    context.update(figures(query, state))
    context["group_by"], context["interval_used"] = query.group_by, query.interval
    return render(request, "web/analytics.html", context)


def read_state(query: QueryDict, app) -> dict[str, list[str]]:
    """The page's parameters without empty values (a GET form sends every field), naming the current
    app, and without `range` when `from` or `to` overrides it (a custom window wins)."""
    state = {name: [v for v in query.getlist(name) if v != ""] for name in PARAMS}
    state = {name: values for name, values in state.items() if values}
    if "from" in state or "to" in state:
        state.pop("range", None)
    state["app"] = [str(app.public_id)]
    return state


def page_url(state, **changes) -> str:
    """This page's URL for `state` with `changes` (None drops a parameter)."""
    return state_url("analytics", PARAMS, state, changes)


def selector_params(state) -> QueryDict:
    """What `analytics_filter` reads: the state without `app`, `range` as `from` (LLM Calls' presets)."""
    data = QueryDict(mutable=True)
    for name, values in state.items():
        if name != "app":
            data.setlist(name, values)
    return with_range(data)


def filter_bar(state, choices) -> dict:
    """The form's context: every control's value and options, the presets."""
    span = param(state, "range") or ("" if "from" in state or "to" in state else DEFAULT_RANGE)
    presets = [
        {"label": key.upper(), "url": page_url(state, range=key, **{"from": None, "to": None}), "active": key == span}
        for key in RANGES
    ]
    return {
        "errors": [],
        "presets": presets,
        "range": param(state, "range"),
        "groups": [(v, label, v == param(state, "group_by", "model")) for v, label in GROUPS],
        "intervals": [(v, label, v == param(state, "interval")) for v, label in INTERVALS],
        "statuses": [(v, label, v == param(state, "status")) for v, label in STATUSES],
        "type_options": option_list(choices.types, param(state, "type"), "Any type"),
        "agent_options": option_list(choices.agents, param(state, "agent"), "Any agent"),
        "model_options": option_list(choices.models, param(state, "model"), "Any model"),
        "tag_options": option_list(choices.tags, ",".join(state.get("tags", [])), "Any tag"),
        "form": {name: param(state, name) for name in ("user_email", "user_id", "tz")},
        "from_value": local_input(param(state, "from")),
        "to_value": local_input(param(state, "to")),
        "more_count": sum(name in state for name in ("from", "to", "user_email", "user_id", "tz")),
    }


def figures(query, state) -> dict:
    """The charts' data, the latency bars, the model, agent and error tables, each row with its link."""
    links = Links(state, query.start, query.end)
    errors_of = partial(top_errors, limit=TOP_ERRORS)
    buckets, models, agents, errors = answer_all(query, usage, model_stats, agent_stats, errors_of)
    total_runs = sum(b["runs"] for b in buckets)
    latency_group = "agent" if query.group_by == "agent" else "model"  # no percentiles per user
    return {
        "window": {"start": query.start, "end": query.end, "tz": str(query.tz)},
        "has_data": bool(total_runs or models or agents),
        "totals": totals(buckets),
        "chart": chart_data(buckets, query, links),
        "latency": latency_bars(agents if latency_group == "agent" else models, latency_group, links),
        "latency_group": latency_group,
        "models": [stat_row(row, "model", links) for row in models],
        "agents": [stat_row(row, "agent", links) for row in agents],
        "top_errors": [error_row(row, links) for row in errors],
        "calls_window_url": links.calls(),
        "wider_url": page_url(state, range="6m", **{"from": None, "to": None}),
    }


@dataclass(frozen=True, slots=True)
class Links:
    """Links to LLM Calls: the page's filters, a window (the page's by default), and the row's own.

    Analytics counts runs of every type unless `type` is given, so a link without one says `type=`
    (every type): LLM Calls would otherwise list LLM calls only, and its count would not match."""

    state: dict
    start: datetime
    end: datetime

    def filters(self) -> dict[str, list[str]]:
        kept = {name: self.state[name] for name in FILTERS if name in self.state}
        kept.setdefault("type", [""])
        return kept

    def calls(self, *, start: datetime | None = None, end: datetime | None = None, **filters) -> str:
        window = {"from": iso(start or self.start), "to": iso(end or self.end)}
        return calls_url(self.filters(), app=param(self.state, "app"), **window, **filters)

    def row(self, group: str, key: str | None, **filters) -> str:
        """LLM Calls for one model (the LLM calls model_stats reads: LLM Calls' own default type,
        unless the page filters a type), the root runs of one agent (what agent_stats counts), or one
        user; a row without a key (no model, say) gets the window and the page's filters only."""
        if group == "model":
            filters.update({"model": key} if key else {})
            if "type" not in self.state:
                filters["type"] = None
        elif group == "agent" and key:
            filters.update(agent=key, root="true")
        elif group == "user" and key:
            filters["user_id"] = key
        return self.calls(**filters)

    def base(self) -> str:
        """The chart's links without their window: analytics.js adds `from`, `to` and the key."""
        return calls_url(self.filters(), app=param(self.state, "app"))


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


def chart_data(buckets: list[dict], query, links: Links) -> dict:
    """What analytics.js draws: bucket starts (epoch seconds), the link window of each bucket, cost
    by key (the biggest keys first, the rest summed as "Other"), tokens, runs and errors."""
    starts = sorted({b["start"] for b in buckets})
    index = {start: i for i, start in enumerate(starts)}
    by_key: dict[str, list[float]] = {}
    prompt, completion = [0] * len(starts), [0] * len(starts)
    runs, errors = [0] * len(starts), [0] * len(starts)
    for bucket in buckets:
        i = index[bucket["start"]]
        by_key.setdefault(bucket["key"] or "", [0.0] * len(starts))[i] += float(bucket["cost"] or 0)
        prompt[i] += bucket["prompt_tokens"] or 0
        completion[i] += bucket["completion_tokens"] or 0
        runs[i] += bucket["runs"]
        errors[i] += bucket["errors"]
    # Keys that cost nothing (runs without a model, unpriced models) would be flat lines at $0.
    ranked = sorted((key for key in by_key if any(by_key[key])), key=lambda key: (-sum(by_key[key]), key))
    series = [{"label": key or "(none)", "key": key or None, "values": by_key[key]} for key in ranked[: MAX_SERIES - 1]]
    rest = ranked[MAX_SERIES - 1 :]
    if len(rest) == 1:
        series.append({"label": rest[0] or "(none)", "key": rest[0] or None, "values": by_key[rest[0]]})
    elif rest:
        summed = [sum(by_key[key][i] for key in rest) for i in range(len(starts))]
        series.append({"label": f"{len(rest)} others", "key": None, "values": summed})
    ends = [*(start - TICK for start in starts[1:]), query.end]
    return {
        "x": [int(start.timestamp()) for start in starts],
        "from": [iso(max(start, query.start)) for start in starts],
        "to": [iso(min(end, query.end)) for end in ends],
        "tz": str(query.tz),
        "interval": query.interval,
        "group_by": query.group_by,
        "cost": series,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "runs": runs,
        "errors": errors,
        "calls_url": links.base(),
    }


def totals(buckets: list[dict]) -> dict:
    runs = sum(b["runs"] for b in buckets)
    errors = sum(b["errors"] for b in buckets)
    return {
        "runs": f"{runs:,}",
        "cost": usd(sum((Decimal(b["cost"] or 0) for b in buckets), Decimal(0))),
        "tokens": f"{sum((b['prompt_tokens'] or 0) + (b['completion_tokens'] or 0) for b in buckets):,}",
        "errors": f"{errors:,}",
        "error_rate": percent(errors / runs) if runs else "—",
    }


def latency_bars(stats: list[dict], group: str, links: Links, limit: int = 8) -> list[dict]:
    """p50 and p95 of the busiest models (or agents), as bar widths on one scale (the largest p95)."""
    count = "calls" if group == "model" else "runs"
    rows = sorted((r for r in stats if r.get("latency_p50_s") is not None), key=lambda r: -r[count])[:limit]
    scale = max((r["latency_p95_s"] or r["latency_p50_s"] for r in rows), default=0) or 1
    return [
        {
            "name": row[group] or "(none)",
            "url": links.row(group, row[group]),
            "p50": seconds(row["latency_p50_s"]),
            "p95": seconds(row["latency_p95_s"]),
            "p50_width": width(row["latency_p50_s"], scale),
            "p95_width": width(row["latency_p95_s"], scale),
        }
        for row in rows
    ]


def stat_row(row: dict, group: str, links: Links) -> dict:
    return {
        "name": row[group] or "(none)",
        "url": links.row(group, row[group]),
        "count": f"{row['calls' if group == 'model' else 'runs']:,}",
        "errors": f"{row['errors']:,}",
        "error_rate": percent(row["error_rate"]),
        "errors_url": links.row(group, row[group], status="error") if row["errors"] else None,
        "p50": seconds(row["latency_p50_s"], ""),  # the column's header says seconds
        "p95": seconds(row["latency_p95_s"], ""),
        "p99": seconds(row["latency_p99_s"], ""),
        "cost": usd(row["cost"]),
        "avg_cost": usd(row["avg_cost"]),
        "prompt_tokens": f"{row['prompt_tokens'] or 0:,}",
        "completion_tokens": f"{row['completion_tokens'] or 0:,}",
        "users": f"{row['users'] or 0:,}",
        "avg_llm_calls": f"{row['avg_llm_calls']:.1f}" if row.get("avg_llm_calls") is not None else "—",
    }


def error_row(row: dict, links: Links) -> dict:
    filters = {"status": "error"}
    filters.update({name: row[name] for name in ("model", "agent") if row.get(name)})
    example = row.get("example_run_id")
    try:
        example_url = f"{reverse('run', args=[example])}?app={param(links.state, 'app')}" if example else None
    except NoReverseMatch:  # a run id with a "/" has no run page URL
        example_url = None
    return {**row, "url": links.calls(**filters), "example_url": example_url, "count": f"{row['count']:,}"}


def percent(rate) -> str:
    if rate is None:
        return "—"
    rate = float(rate) * 100
    return "0%" if not rate else f"{rate:.1f}%" if rate >= 0.1 else "<0.1%"


def width(value, scale: float) -> float:
    return 0 if value is None else round(min(value / scale, 1) * 100, 1)
