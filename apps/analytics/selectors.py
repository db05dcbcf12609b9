"""Analytics over an app's runs (docs/ANALYTICS.md): usage per interval, per-model and per-agent
stats with latency percentiles, and the most frequent errors.

The API (analytics.api) and the Analytics page read here. `analytics_filter` validates a query
once; every other function answers it with a fixed number of aggregate queries, whatever the
number of runs: GROUP BY in the database, never a row per run in Python, except the exact
percentiles on SQLite and the error messages (which SQL cannot normalise portably).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from itertools import groupby
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import (
    Aggregate,
    CharField,
    Count,
    ExpressionWrapper,
    FloatField,
    Func,
    Q,
    QuerySet,
    Sum,
    TextField,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce, Substr, TruncDate, TruncHour
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from apps.analytics.filters import GROUPS, AnalyticsFilterSet
from apps.tenancy.models import App
from apps.tracing.models import RunCost, Status

WINDOW = timedelta(days=7)  # without `from`: the last 7 days up to `to` (default: now)
# `from` and `to` must lie in these years: outside them the window's arithmetic overflows Python's
# dates (`to=0001-01-01` less the 7-day default was a 500, found by the schema fuzzing).
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)
HOURLY_UP_TO = timedelta(days=2)  # the default interval: hour for windows up to this long, else day
MAX_INTERVALS = 5000  # a window may hold at most this many intervals (about 7 months of hours)
ERROR_SAMPLE = 50_000  # top_errors groups the newest this many error runs of the window
MESSAGE_SCAN = 2000  # the first this many characters of an error message are read
MESSAGE_CHARS = 500  # a normalised error message is cut to this length
PERCENTILES = {"latency_p50_s": 0.5, "latency_p95_s": 0.95, "latency_p99_s": 0.99}
STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# Rows are counted by a non-null column of RunCost's covering index (never its primary key, which the
# index lacks), so that PostgreSQL answers from the index alone.
ROWS = "started_at"


@dataclass(frozen=True, slots=True)
class AnalyticsQuery:
    """A validated analytics query: the app's runs that match the filters and lie in [start, end]
    (as RunCost rows: each run's cost and the columns analytics reads, see tracing.models), the zone
    of the day buckets, the interval and what usage groups by. `run_type` is the `type` filter, if
    any (model_stats reads LLM runs unless it says otherwise)."""

    app: App
    runs: QuerySet
    start: datetime
    end: datetime
    tz: ZoneInfo
    interval: str
    group_by: str
    run_type: str | None = None


def analytics_filter(app, params) -> AnalyticsQuery:
    """The query that `params` (a QueryDict) asks of `app`'s runs, or the runs API's ValidationError.

    The filters are RunFilterSet's (analytics.filters.RUN_FILTERS: same fields, same messages), so
    a bad value is the 400 `{"error": "param: message"}` that GET /api/run/ answers. No query.
    """
    filterset = AnalyticsFilterSet(params, queryset=RunCost.objects.for_app(app), app=app)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    data = filterset.form.cleaned_data
    for name in ("from", "to"):
        if data.get(name) and not EARLIEST <= data[name] < LATEST:
            raise ValidationError({name: [f"Must be from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d}."]})
    end = data.get("to") or timezone.now()
    start = data.get("from") or end - WINDOW
    if start > end:
        raise ValidationError({"from": ["Must not be after `to` (default: now)."]})
    interval = data.get("interval") or ("hour" if end - start <= HOURLY_UP_TO else "day")
    if (end - start) / STEP[interval] >= MAX_INTERVALS:
        raise ValidationError({"interval": [f"At most {MAX_INTERVALS} intervals: choose a shorter window or day."]})
    return AnalyticsQuery(
        app=app,
        runs=filterset.qs.filter(started_at__gte=start, started_at__lte=end),
        start=start,
        end=end,
        tz=data.get("tz") or ZoneInfo("UTC"),
        interval=interval,
        group_by=data.get("group_by") or "model",
        run_type=data.get("type") or None,
    )


# --- running the selectors ---------------------------------------------------------------------------


@contextmanager
def tuned(using: str = DEFAULT_DB_ALIAS):
    """A transaction (or the current one) whose PostgreSQL work_mem is OBSERVATORY_ANALYTICS_WORK_MEM_MB:
    the default 4 MB spills a month's sorts and hash tables to disk. One query; nothing elsewhere."""
    connection = connections[using]
    megabytes = settings.OBSERVATORY_ANALYTICS_WORK_MEM_MB
    if connection.vendor != "postgresql" or not megabytes:
        yield
        return
    with transaction.atomic(using, savepoint=False), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('work_mem', %s, true)", [f"{megabytes}MB"])  # true: this transaction
        yield


def answer(query: AnalyticsQuery, selector: Callable[[AnalyticsQuery], Any]) -> Any:
    """One selector's answer, `tuned`."""
    with tuned(query.runs.db):
        return selector(query)


def answer_all(query: AnalyticsQuery, *selectors: Callable[[AnalyticsQuery], Any]) -> list:
    """Each selector's answer to `query` (the Analytics page's four reads).

    On PostgreSQL they run at once, each in a thread with its own connection: the reads are
    independent, so the page takes as long as the slowest, not their sum (docs/PERFORMANCE.md).
    One after the other on SQLite, and inside a transaction (a test's), whose rows the other
    connections would not see.
    """
    connection = connections[query.runs.db]
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        with tuned(query.runs.db):
            return [selector(query) for selector in selectors]
    with ThreadPoolExecutor(max_workers=len(selectors), thread_name_prefix="analytics") as pool:
        return list(pool.map(lambda selector: _answer_in_thread(query, selector), selectors))


def _answer_in_thread(query: AnalyticsQuery, selector) -> Any:
    try:
        return answer(query, selector)
    finally:
        connections.close_all()  # this thread's own connections: the thread ends here


# --- usage: one row per interval and key ----------------------------------------------------------


def usage(q: AnalyticsQuery) -> list[dict]:
    """Runs, cost, tokens and errors per interval and per key (model, agent or user id; "" for none).

    Every interval of the window is present for every key that occurs (zeros where nothing ran);
    with no runs at all, one zero bucket per interval under the key "". Hours are hours of UTC
    (each exactly 60 minutes, also on the day clocks go back), shown in `tz`; days start at local
    midnight in `tz` (so a day is 23 or 25 hours long when the clocks change). One query.
    """
    column = GROUPS[q.group_by]
    hourly = q.interval == "hour"
    bucket = TruncHour("started_at", tzinfo=UTC) if hourly else TruncDate("started_at", tzinfo=q.tz)
    # As the database returns it (see _found_by): Django would convert it on every row.
    bucket = ExpressionWrapper(bucket, output_field=CharField())
    totals = {
        "n_runs": Count(ROWS),
        "total_cost": Sum("cost"),
        "prompt": Sum("prompt_tokens"),
        "completion": Sum("completion_tokens"),
        "n_errors": Count(ROWS, filter=Q(status=Status.ERROR)),
    }
    rows = q.runs.order_by().annotate(bucket=bucket).values("bucket", column).annotate(**totals)
    seen: dict = {}
    found = {
        (seen.get(raw) or seen.setdefault(raw, _found_by(raw, hourly)), key or ""): {
            "runs": runs,
            "cost": cost or Decimal(0),
            "prompt_tokens": prompt or 0,
            "completion_tokens": completion or 0,
            "errors": errors,
        }
        for raw, key, runs, cost, prompt, completion, errors in rows.values_list("bucket", column, *totals)
    }
    keys = sorted({key for _, key in found}) or [""]
    zero = {"runs": 0, "cost": Decimal(0), "prompt_tokens": 0, "completion_tokens": 0, "errors": 0}
    return [
        {"start": local, "key": key, **found.get((by, key), zero)}
        for start in interval_starts(q.start, q.end, q.tz, q.interval)
        # once per interval, not per key (thousands of users)
        for local, by in [
            (start.astimezone(q.tz), start.astimezone(UTC).replace(tzinfo=None) if hourly else start.date())
        ]
        for key in keys
    ]


def _found_by(bucket: datetime | date | str, hourly: bool) -> datetime | date:
    """A bucket as the database returns it (text on SQLite) as the selectors find it: a naive UTC
    hour, or a local date. Not an aware datetime: hashing one asks its zone for the offset, and
    there may be tens of thousands of groups (a day per user)."""
    if isinstance(bucket, str):
        return datetime.fromisoformat(bucket) if hourly else date.fromisoformat(bucket)
    return bucket


def interval_starts(start: datetime, end: datetime, tz: ZoneInfo, interval: str) -> list[datetime]:
    """The starts of the intervals that [start, end] touches, as the database truncates them:
    UTC hours, or local midnights in `tz` (built by zoneinfo from the local date, so DST-correct)."""
    if interval == "hour":
        first = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return [first + n * STEP["hour"] for n in range(int((end - first) / STEP["hour"]) + 1)]
    first, last = start.astimezone(tz).date(), end.astimezone(tz).date()
    return [datetime.combine(first + timedelta(days=n), time(), tzinfo=tz) for n in range((last - first).days + 1)]


# --- per model and per agent -------------------------------------------------------------------------


class PercentileCont(Aggregate):
    """PostgreSQL's `percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)`: the value at
    `fraction` of the sorted non-null values, interpolated linearly between the two nearest."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)r) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, fraction: float, **extra):
        super().__init__(expression, fraction=float(fraction), **extra)


def percentile_cont(values: list[float], fraction: float) -> float | None:
    """percentile_cont over sorted `values`, with PostgreSQL's arithmetic (float8_lerp): the same float."""
    if not values:
        return None
    position = fraction * (len(values) - 1)
    low, high = math.floor(position), math.ceil(position)
    return values[low] + (values[high] - values[low]) * (position - low)


def model_stats(q: AnalyticsQuery) -> list[dict]:
    """One row per model over the LLM calls (runs of type "llm"; with a `type` filter, the runs of
    that type instead), most expensive first. A call is a run; an error one with status "error";
    users are distinct user ids. One query on PostgreSQL, two on SQLite (the percentiles)."""
    calls = q.runs if q.run_type else q.runs.filter(type="llm")
    totals = _stats_totals(calls, "model", None)
    rows = [_stats_row(key, "model", "calls", values) for key, values in totals.items()]
    return sorted(rows, key=lambda row: (-row["cost"], row["model"]))


def agent_stats(q: AnalyticsQuery) -> list[dict]:
    """One row per agent over its root runs (no parent) in the window, most expensive first.

    `runs`, `errors`, `error_rate`, the latencies and `users` are of the root runs. `cost`,
    `avg_cost`, the tokens and `avg_llm_calls` are of every run carrying the agent: a run inherits
    its parent's agent unless it names its own (tracing.merge.INHERITED), and only LLM calls are
    priced, so this is the cost of the agent's traces (a root's own cost is usually 0). Per root
    run, these are exact when each trace has one agent and lies inside the window; LLM calls of a
    nested agent that names itself count for that agent. Agents without a root run in the window
    are left out. Two queries on PostgreSQL, three on SQLite.
    """
    totals = _stats_totals(q.runs.filter(agent__isnull=False), "agent", Q(root=True))
    rows = [_stats_row(key, "agent", "runs", values) for key, values in totals.items() if values["n"]]
    return sorted(rows, key=lambda row: (-row["cost"], row["agent"]))


def _stats_totals(runs: QuerySet, column: str, counted: Q | None) -> dict[str, dict]:
    """{key: totals} grouped by `column`: n, errors, users and latency percentiles over the runs
    matching `counted` (all of them when None); cost, tokens and LLM calls over all of them.

    With `counted`, two queries: the sums are hashed over every run, the counts and percentiles
    (which sort) over the counted runs only, instead of sorting every run of the window."""
    postgres = connections[runs.db].vendor == "postgresql"
    per_run = {
        "n": Count(ROWS),
        "n_errors": Count(ROWS, filter=Q(status=Status.ERROR)),
        "n_users": Count("user_id", distinct=True),
    }
    if postgres:
        per_run |= {name: PercentileCont("latency_s", f) for name, f in PERCENTILES.items()}
    summed = {
        "total_cost": Sum("cost"),
        "prompt": Sum("prompt_tokens"),
        "completion": Sum("completion_tokens"),
        "llm_calls": Count(ROWS, filter=Q(type="llm")),
    }
    runs = runs.order_by()
    measured = runs if counted is None else runs.filter(counted)
    if counted is None:
        totals = {row[column] or "": row for row in runs.values(column).annotate(**per_run, **summed)}
    else:
        totals = {row[column] or "": row for row in measured.values(column).annotate(**per_run)}
        for row in runs.values(column).annotate(**summed):
            totals.setdefault(row[column] or "", {"n": 0, "n_errors": 0, "n_users": 0}).update(row)
    if not postgres:
        for key, values in _latency_percentiles(measured.filter(latency_s__isnull=False), column).items():
            totals[key].update(values)
    return totals


def _latency_percentiles(runs: QuerySet, column: str) -> dict[str, dict]:
    """The exact percentiles where the database has no percentile_cont (SQLite): every latency,
    sorted by the database, interpolated in Python (one query)."""
    latencies = runs.order_by(column, "latency_s").values_list(column, "latency_s")
    return {
        key or "": {name: percentile_cont(values, f) for name, f in PERCENTILES.items()}
        for key, group in groupby(latencies.iterator(), key=lambda row: row[0])
        for values in [[latency for _, latency in group]]
    }


def _stats_row(key: str, column: str, count_name: str, values: dict) -> dict:
    n, cost = values["n"], values["total_cost"] or Decimal(0)
    row = {
        column: key,
        count_name: n,
        "errors": values["n_errors"],
        "error_rate": values["n_errors"] / n if n else 0.0,
        **{name: values.get(name) for name in PERCENTILES},
        "cost": cost,
        "avg_cost": cost / n if n else Decimal(0),
        "prompt_tokens": values["prompt"] or 0,
        "completion_tokens": values["completion"] or 0,
        "users": values["n_users"],
    }
    if column == "agent":
        row["avg_llm_calls"] = values["llm_calls"] / n if n else 0.0
    return row


# --- the most frequent errors --------------------------------------------------------------------


class JsonStringText(Func):
    """The text of a JSON string value (a run's error may be a plain string); NULL for other JSON."""

    output_field = TextField()

    def as_postgresql(self, compiler, connection, **extra):
        template = "CASE WHEN jsonb_typeof(%(expressions)s) = 'string' THEN %(expressions)s #>> '{}' END"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler, connection, **extra):
        template = "CASE WHEN json_type(%(expressions)s) = 'text' THEN json_extract(%(expressions)s, '$') END"
        return self.as_sql(compiler, connection, template=template, **extra)


# Applied in order. A number is masked only standing alone (not glued to a letter, digit, `-`, `.`
# or `_`), so model names keep theirs (gpt-4o, claude-3.5-sonnet, gpt-4o-2024-08-06).
MASKS = [
    (
        re.compile(
            r"(?<![0-9A-Za-z])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![0-9A-Za-z])"
        ),
        "<uuid>",
    ),  # noqa: E501
    (re.compile(r"(?<![0-9A-Za-z])0[xX][0-9a-fA-F]+(?![0-9A-Za-z])"), "<hex>"),
    # 6+ letters and digits with at least one letter and two digits: abc123, req8f3k2j9, 3f9a0c7e12.
    (re.compile(r"(?<![0-9A-Za-z])(?=[0-9]*[A-Za-z])(?=(?:[A-Za-z]*[0-9]){2})[0-9A-Za-z]{6,}(?![0-9A-Za-z])"), "<id>"),
    (re.compile(r"(?<![\w.-])\d+(?:\.\d+)?(?!\w|\.\d)"), "<n>"),
]
WHITESPACE = re.compile(r"\s+")


@lru_cache(maxsize=10_000)
def normalise(message: str | None) -> str:
    """An error message with its ids and numbers masked, whitespace collapsed, cut to MESSAGE_CHARS."""
    text = WHITESPACE.sub(" ", message or "").strip()
    for pattern, mask in MASKS:
        text = pattern.sub(mask, text)
    return text[:MESSAGE_CHARS] or "(no message)"


def top_errors(q: AnalyticsQuery, limit: int = 20) -> list[dict]:
    """The `limit` most frequent normalised messages among the newest ERROR_SAMPLE error runs of the
    window (status "error"), most frequent first: count, first and last seen, the most common model
    and agent, and the newest run as an example. The message is error["message"] (else its
    "type"), or the error itself when it is a plain string. One query (the messages joined from the
    runs); grouped in Python."""
    error = "run__error"
    message = Coalesce(KeyTextTransform("message", error), KeyTextTransform("type", error), JsonStringText(error))
    message = Substr(message, 1, MESSAGE_SCAN)
    rows = (
        q.runs.filter(status=Status.ERROR)
        .annotate(message=message)
        .order_by("-started_at", "-run")
        .values_list("message", "model", "agent", "run__run_id", "started_at")[:ERROR_SAMPLE]
    )
    groups: dict[str, dict] = {}
    for text, model, agent, run_id, started_at in rows:  # newest first
        key = normalise(text)
        group = groups.get(key)
        if group is None:
            group = groups[key] = {"message": key, "count": 0, "first_seen": started_at, "last_seen": started_at,
                                   "models": Counter(), "agents": Counter(), "example_run_id": run_id}  # fmt: skip
        group["count"] += 1
        group["first_seen"] = started_at
        group["models"][model] += 1
        group["agents"][agent] += 1
    ranked = sorted(groups.values(), key=lambda g: (-g["count"], -g["last_seen"].timestamp(), g["message"]))
    return [_error_row(group) for group in ranked[:limit]]


def _error_row(group: dict) -> dict:
    models, agents = group.pop("models"), group.pop("agents")
    return {**group, "model": _most_common(models), "agent": _most_common(agents)}


def _most_common(counts: Counter) -> str | None:
    """The most frequent non-empty value (the newest among equals), else None."""
    counts.pop(None, None)
    return counts.most_common(1)[0][0] if counts else None
