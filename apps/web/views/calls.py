"""LLM Calls (`/`): the runs of the current app, through the runs API's own FilterSet and keyset pages.

The query string is the page's whole state, so any view can be shared or bookmarked: the
parameters of GET /api/run/ plus `app` (an app's public id), `range` (a preset that sets
`from`) and `live` (poll the first page every 5 s). Without `type` the page lists LLM calls;
`type=` (present, empty) lists every type.

htmx: the filter form, the sort headers, the presets and the pager swap #calls-table only
(the `table` partial). A request from a link also carries the refreshed form out of band, so
the form never holds a stale ordering or time range; the form's own requests and the live
poll leave the form alone (the user may be typing in it).

With `saved=true` the table offers the dataset export of what it lists (GET
/api/datasets/export, docs/DATASETS.md): links built from the same filters, no query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from decimal import ROUND_HALF_UP, Context, Decimal
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.dateparse import parse_datetime
from django_htmx.http import push_url
from rest_framework.exceptions import ValidationError

from apps.tenancy.api.exceptions import error_lines
from apps.tracing.filters import DEFAULT_ORDERING, ORDERINGS
from apps.tracing.models import Run
from apps.tracing.selectors import RunChoices, page_of_runs, run_choices, runs_of
from apps.web.scoping import page_app
from apps.web.views.common import RANGES, empty_state, seconds, state_url

FORM_ID, TABLE_ID = "calls-filters", "calls-table"
DEFAULT_TYPE = "llm"
# Every parameter the page keeps in its URL, in the order its links write them.
PARAMS = [
    "app", "search", "status", "type", "agent", "model", "tags", "user_email", "user_id", "name",
    "min_latency_s", "max_latency_s", "min_cost", "max_cost", "feedback", "has_feedback", "saved",
    "root", "thread_id", "parent_run_id", "range", "from", "to", "ordering", "limit", "live", "cursor",
]  # fmt: skip
# Parameters the form has no control for: carried along as hidden inputs so a submit keeps them.
HIDDEN = ["name", "has_feedback", "root", "parent_run_id", "range", "ordering", "limit"]
# The controls under "More filters" (open when one is set).
MORE = ["from", "to", "user_email", "user_id", "min_latency_s", "max_latency_s", "min_cost", "max_cost", "feedback",
        "thread_id"]  # fmt: skip
SORTABLE = [("started_at", "Started"), ("latency_s", "Duration"), ("total_tokens", "Tokens"), ("cost", "Cost")]
STATUSES = [("", "Any status"), ("success", "Success"), ("error", "Error"), ("started", "Started"),
            ("timed_out", "Timed out")]  # fmt: skip
FEEDBACK = [("", "Any feedback"), ("positive", "👍 Positive"), ("negative", "👎 Negative")]
# What the page's URL holds that is not a filter of the dataset export (GET /api/datasets/export).
NOT_EXPORT_FILTERS = {"app", "range", "live", "cursor", "limit", "ordering", "saved"}
MICRO_DOLLAR = Decimal("0.000001")
WIDE = Context(prec=60)  # costs reach 10^24: quantizing to 6 decimals needs more than the default 28 digits


@login_required
def llm_calls(request):
    app = page_app(request)
    if app is None:
        return render(request, "web/calls.html", empty_state(request, None, "No apps yet"))
    state = read_state(request.GET, app)
    partial = bool(request.htmx) and not request.htmx.history_restore_request
    poll = partial and request.htmx.trigger == TABLE_ID
    oob = partial and request.htmx.trigger not in (FORM_ID, TABLE_ID)
    context = {"oob": oob, **listing(app, state)}
    if not partial or oob:
        context.update(filter_bar(state, run_choices(app)))
        context["has_runs"] = bool(context["choices"].types)  # no types: the app has no runs at all
    elif not context["rows"] and not context["errors"]:
        context["has_runs"] = runs_of(app).exists()
    if not context["has_runs"]:
        context.update(empty_state(request, app, "No runs yet"))
    status = 400 if context["errors"] else 200
    response = render(request, "web/calls.html#table" if partial else "web/calls.html", context, status=status)
    if partial and not poll:
        push_url(response, page_url(state))  # the tidy URL, not the form's string of empty fields
    patch_vary_headers(response, ["HX-Request"])
    return response


def read_state(query, app) -> dict[str, list[str]]:
    """The page's parameters from the query string, without empty values (except `type=`, which
    means every type), naming the current app."""
    state = {}
    for name in PARAMS:
        values = [value for value in query.getlist(name) if value != ""]
        if name == "type" and name in query and not values:
            values = [""]
        if values:
            state[name] = values
    state["app"] = [str(app.public_id)]
    return state


def page_url(state: dict[str, list[str]], **changes) -> str:
    """The page's URL for `state` with `changes` (None drops a parameter)."""
    return state_url("calls", PARAMS, state, changes)


def param(state, name: str, default: str = "") -> str:
    """A parameter's value as the FilterSet reads it: the last one given."""
    return state.get(name, [default])[-1]


def listing(app, state) -> dict:
    """The table's context: one page of runs (or the errors of the query) and the links around it."""
    errors, page, data = [], None, filter_data(state)
    span = param(state, "range")
    if span and span not in RANGES:
        errors = [f"range: Must be one of {', '.join(RANGES)}."]
    else:
        try:
            page = page_of_runs(app, data)
        except ValidationError as exc:
            errors = error_lines(exc.detail)
    ordering = page.ordering if page else param(state, "ordering", DEFAULT_ORDERING)
    ordering = ordering if ordering in ORDERINGS else DEFAULT_ORDERING
    rows = [Row.of(run) for run in page.rows] if page else []
    live = param(state, "live") == "1"
    default_view = set(state) - {"app", "live"} <= {"type"} and param(state, "type", DEFAULT_TYPE) == DEFAULT_TYPE
    return {
        "rows": rows,
        "errors": errors,
        "has_runs": True,
        "all_types": not data.get("type"),
        "sorts": sort_links(state, ordering),
        "next_url": page_url(state, cursor=page.next_cursor) if page and page.next_cursor else None,
        "first_url": page_url(state, cursor=None) if "cursor" in state else None,
        "poll_url": page_url(state) if live and "cursor" not in state else None,
        "live": live,
        "default_view": default_view,
        # Matching nothing: back to the default view, or from the default view to every type.
        "clear_url": page_url(
            {name: state[name] for name in ("app", "live") if name in state}, type="" if default_view else None
        ),
        "export_urls": export_urls(state, data) if param(state, "saved") in ("true", "1") and not errors else None,
    }


def export_urls(state, data) -> dict[str, str]:
    """The dataset export of the saved runs the page lists, by format: the page's filters as the
    FilterSet reads them (`data`: the default type, `range` as `from`), `app` as `app_id`."""
    filters = [(name, value) for name in PARAMS if name not in NOT_EXPORT_FILTERS for value in data.getlist(name)]
    query = [("app_id", param(state, "app")), *filters]
    base = reverse("dataset-export")
    return {fmt: f"{base}?{urlencode([*query, ('format', fmt)])}" for fmt in ("jsonl", "openai")}


def filter_data(state) -> dict:
    """What RunFilterSet and the paginator read: the state with the default type and `range` as `from`."""
    data = QueryDict(mutable=True)
    for name, values in state.items():
        data.setlist(name, values)
    if "type" not in state:
        data["type"] = DEFAULT_TYPE
    span = param(state, "range")
    if span in RANGES and "from" not in state:
        data["from"] = (timezone.now() - RANGES[span]).isoformat()
    return data


def sort_links(state, ordering: str) -> dict[str, dict]:
    """The sortable headers by column: a click sorts descending, a second click ascending; the cursor is dropped."""
    links = {}
    for column, label in SORTABLE:
        target = column if ordering == f"-{column}" else f"-{column}"
        active = ordering.lstrip("-") == column
        links[column] = {
            "label": label,
            "url": page_url(state, ordering=None if target == DEFAULT_ORDERING else target, cursor=None),
            "direction": ("ascending" if ordering == column else "descending") if active else None,
        }
    return links


@dataclass(slots=True)
class Row:
    """A run as the table shows it: the badge, the coloured duration, plain-decimal cost."""

    run: Run
    status: str
    duration: str
    speed: str
    tokens: str
    cost: str
    user: str

    @classmethod
    def of(cls, run: Run) -> Row:
        latency = run.latency_s
        return cls(
            run=run,
            status=run.display_status,
            duration=seconds(latency),
            speed="" if latency is None else "fine" if latency < 4 else "warning" if latency <= 8 else "danger",
            tokens="—" if run.total_tokens is None else f"{run.total_tokens:,}",
            cost=dollars(run.cost, priced=run.total_tokens is not None),
            user=run.user_email or run.user_id or "",
        )


def dollars(cost, *, priced: bool) -> str:
    """$ with 6 decimals (a column of them lines up), never an exponent; "$0" when free, "—" when
    there was nothing to price."""
    if cost is None or (not cost and not priced):
        return "—"
    cost = Decimal(str(cost))
    if not cost:
        return "$0"
    rounded = cost.quantize(MICRO_DOLLAR, rounding=ROUND_HALF_UP, context=WIDE)
    return "<$0.000001" if not rounded and cost > 0 else f"${rounded:f}"


def option_list(values: list[str], current: str, empty: str) -> list[tuple[str, str, bool]]:
    """(value, label, selected) for a select of the app's values, with the current value even if absent."""
    options = [("", empty), *((value, value) for value in values)]
    if current and current not in values:
        options.append((current, current))
    return [(value, label, value == current) for value, label in options]


def filter_bar(state, choices: RunChoices) -> dict:
    """The form's context: every control's current value and options, the presets, the hidden inputs."""
    span, explicit_from = param(state, "range"), "from" in state
    presets = [{"label": "All", "url": page_url(state, range=None, **{"from": None, "to": None, "cursor": None}),
                "active": not span and not explicit_from and "to" not in state}]  # fmt: skip
    for key in RANGES:
        url = page_url(state, range=key, **{"from": None, "to": None, "cursor": None})
        presets.append({"label": key.upper(), "url": url, "active": span == key and not explicit_from})
    return {
        "choices": choices,
        "form": {name: param(state, name) for name in ["search", *MORE]},
        "statuses": [(v, label, v == param(state, "status")) for v, label in STATUSES],
        "feedbacks": [(v, label, v == param(state, "feedback")) for v, label in FEEDBACK],
        "types": option_list(choices.types, param(state, "type", DEFAULT_TYPE), "All types"),
        "agents": option_list(choices.agents, param(state, "agent"), "Any agent"),
        "models": option_list(choices.models, param(state, "model"), "Any model"),
        "tags": option_list(choices.tags, ",".join(state.get("tags", [])), "Any tag"),
        "from_value": local_input(param(state, "from")),
        "to_value": local_input(param(state, "to")),
        "saved": param(state, "saved") in ("true", "1"),
        "hidden": [(name, value) for name in HIDDEN for value in state.get(name, [])],
        "more_count": sum(name in state for name in MORE),
        "presets": presets,
    }


def local_input(raw: str) -> str:
    """An ISO date and time as a datetime-local input's value, in UTC (the filter reads no zone as UTC)."""
    try:
        when = parse_datetime(raw) if raw else None
        when = when.astimezone(UTC) if when is not None and when.tzinfo else when
    except (ValueError, OverflowError):
        return ""  # the error box names it
    return when.strftime("%Y-%m-%dT%H:%M:%S" if when.second else "%Y-%m-%dT%H:%M") if when else ""
