"""Exact figures on the known data set (conftest.py): costs per day per model, percentiles, error
rates, normalised errors, day buckets across a time-zone boundary and DST changes, zero-filled intervals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.http import QueryDict

from apps.analytics.selectors import (
    agent_stats,
    analytics_filter,
    interval_starts,
    model_stats,
    normalise,
    percentile_cont,
    top_errors,
    usage,
)
from apps.tracing.models import Run
from tests.analytics.conftest import WINDOW, llm
from tests.helpers import ingest

NEW_YORK = ZoneInfo("America/New_York")


def query(app, params: str = WINDOW):
    return analytics_filter(app, QueryDict(params))


def costs(buckets) -> dict:
    return {(b["start"].isoformat(), b["key"]): b["cost"] for b in buckets if b["runs"]}


def test_costs_per_day_per_model(dataset):
    buckets = usage(query(dataset, WINDOW + "&interval=day"))
    assert [(b["start"].isoformat()[:10], b["key"]) for b in buckets] == [
        (day, key) for day in ("2026-05-01", "2026-05-02", "2026-05-03") for key in ("", "claude", "gpt-4o")
    ]
    assert costs(buckets) == {
        ("2026-05-01T00:00:00+00:00", ""): Decimal(0),
        ("2026-05-01T00:00:00+00:00", "gpt-4o"): Decimal("0.03"),
        ("2026-05-02T00:00:00+00:00", ""): Decimal(0),
        ("2026-05-02T00:00:00+00:00", "claude"): Decimal("0.05"),
        ("2026-05-02T00:00:00+00:00", "gpt-4o"): Decimal("0.002"),
        ("2026-05-03T00:00:00+00:00", "claude"): Decimal("0.2"),
    }
    assert buckets[2] == {"start": datetime(2026, 5, 1, tzinfo=UTC), "key": "gpt-4o", "runs": 2, "errors": 1,
                          "cost": Decimal("0.03"), "prompt_tokens": 1500, "completion_tokens": 1500}  # fmt: skip
    assert buckets[8] == {"start": datetime(2026, 5, 3, tzinfo=UTC), "key": "gpt-4o", "runs": 0,
                          "cost": Decimal(0), "prompt_tokens": 0, "completion_tokens": 0, "errors": 0}  # fmt: skip


def test_usage_groups_by_agent_and_user(dataset):
    by_agent = usage(query(dataset, WINDOW + "&group_by=agent"))
    assert {b["key"] for b in by_agent} == {"", "support"}
    assert sum(b["runs"] for b in by_agent if b["key"] == "support") == 5
    by_user = usage(query(dataset, WINDOW + "&group_by=user"))
    assert {key: sum(b["runs"] for b in by_user if b["key"] == key) for key in ("u1", "u2", "u3")} == {
        "u1": 4, "u2": 2, "u3": 1,
    }  # fmt: skip


def test_a_run_at_0330_utc_is_on_the_previous_day_in_new_york(dataset):
    window = "from=2026-05-01T04:00:00Z&to=2026-05-04T03:59:59Z&tz=America/New_York&interval=day"
    buckets = usage(query(dataset, window))
    assert costs(buckets)[("2026-05-01T00:00:00-04:00", "gpt-4o")] == Decimal("0.032")  # l1, l2 and l4 (23:30)
    assert ("2026-05-02T00:00:00-04:00", "gpt-4o") not in costs(buckets)
    assert all(b["start"].tzinfo == NEW_YORK for b in buckets)


def hours(a: datetime, b: datetime) -> float:
    return (b.astimezone(UTC) - a.astimezone(UTC)) / timedelta(hours=1)  # same-zone subtraction is wall-clock


def test_day_buckets_are_23_and_25_hours_on_dst_changes(acme_app):
    ingest(acme_app, llm("m8", "2026-03-09T03:30:00Z", 0, "x", 1, 1), llm("m9", "2026-03-09T04:30:00Z", 0, "x", 1, 1))
    window = "from=2026-03-07T12:00:00Z&to=2026-03-10T12:00:00Z&tz=America/New_York&interval=day"
    spring = usage(query(acme_app, window))
    assert [b["start"].isoformat() for b in spring] == [
        "2026-03-07T00:00:00-05:00", "2026-03-08T00:00:00-05:00",
        "2026-03-09T00:00:00-04:00", "2026-03-10T00:00:00-04:00",
    ]  # fmt: skip
    assert hours(spring[1]["start"], spring[2]["start"]) == 23
    assert [b["runs"] for b in spring] == [0, 1, 1, 0]  # 23:30 EDT on the 8th, 00:30 EDT on the 9th
    start, end = datetime(2026, 10, 31, 12, tzinfo=UTC), datetime(2026, 11, 2, 12, tzinfo=UTC)
    autumn = interval_starts(start, end, NEW_YORK, "day")
    assert hours(autumn[1], autumn[2]) == 25


def test_hour_buckets_are_real_hours_also_when_clocks_go_back():
    start, end = datetime(2026, 11, 1, 4, 30, tzinfo=UTC), datetime(2026, 11, 1, 7, tzinfo=UTC)
    assert [s.astimezone(NEW_YORK).isoformat() for s in interval_starts(start, end, NEW_YORK, "hour")] == [
        "2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00",
    ]  # fmt: skip


def test_every_interval_is_present_with_zeros(dataset):
    buckets = usage(query(dataset, "from=2026-05-01T08:30:00Z&to=2026-05-01T12:10:00Z"))  # 3h40: hourly
    assert [(b["start"].hour, b["key"], b["runs"]) for b in buckets] == [
        (hour, key, runs)
        for hour in (8, 9, 10, 11, 12)
        for key, runs in (("", 1 if hour == 10 else 0), ("gpt-4o", 2 if hour == 10 else 0))
    ]


def test_a_window_without_runs_has_one_zero_bucket_per_interval(acme_app):
    buckets = usage(query(acme_app, "from=2026-05-01T00:00:00Z&to=2026-05-02T00:00:00Z&interval=hour"))
    assert len(buckets) == 25 and {(b["key"], b["runs"], b["cost"]) for b in buckets} == {("", 0, Decimal(0))}


def test_the_default_window_is_the_last_7_days_by_day(acme_app):
    q = query(acme_app, "")
    assert q.interval == "day" and q.end - q.start == timedelta(days=7) and str(q.tz) == "UTC"
    assert len(usage(q)) == 8
    assert query(acme_app, "from=2026-05-01T00:00:00Z&to=2026-05-03T00:00:00Z").interval == "hour"


def test_model_stats(dataset):
    claude, gpt = model_stats(query(dataset))  # most expensive first
    assert gpt == {
        "model": "gpt-4o", "calls": 3, "errors": 2, "error_rate": pytest.approx(2 / 3),
        "latency_p50_s": 2.0, "latency_p95_s": pytest.approx(3.8), "latency_p99_s": pytest.approx(3.96),
        "cost": Decimal("0.032"), "avg_cost": pytest.approx(Decimal("0.032") / 3), "prompt_tokens": 1600,
        "completion_tokens": 1600, "users": 2,
    }  # fmt: skip
    assert (claude["model"], claude["calls"], claude["error_rate"]) == ("claude", 2, 0.5)
    assert claude["cost"] == Decimal("0.25")
    assert (claude["latency_p50_s"], claude["latency_p95_s"]) == (4.0, pytest.approx(4.9))


def test_model_stats_read_the_runs_of_the_type_filter_instead_of_llm_calls(dataset):
    assert model_stats(query(dataset, WINDOW + "&type=agent")) == [
        {"model": "", "calls": 2, "errors": 0, "error_rate": 0.0, "latency_p50_s": 7.0,
         "latency_p95_s": pytest.approx(9.7), "latency_p99_s": pytest.approx(9.94), "cost": Decimal(0),
         "avg_cost": Decimal(0), "prompt_tokens": 0, "completion_tokens": 0, "users": 2}
    ]  # fmt: skip


def test_agent_stats_over_root_runs(dataset):
    assert agent_stats(query(dataset)) == [
        {"agent": "support", "runs": 2, "errors": 0, "error_rate": 0.0, "latency_p50_s": 7.0,
         "latency_p95_s": pytest.approx(9.7), "latency_p99_s": pytest.approx(9.94), "cost": Decimal("0.08"),
         "avg_cost": Decimal("0.04"), "prompt_tokens": 2500, "completion_tokens": 1500, "users": 2,
         "avg_llm_calls": 1.5}
    ]  # fmt: skip


def test_top_errors_are_normalised_and_counted(dataset):
    assert top_errors(query(dataset)) == [
        {"message": "Rate limit reached for gpt-4o in org-<id> on <n>", "count": 2,
         "first_seen": datetime(2026, 5, 1, 10, 0, 2, tzinfo=UTC), "last_seen": datetime(2026, 5, 2, 3, 30, tzinfo=UTC),
         "model": "gpt-4o", "agent": "support", "example_run_id": "l4"},
        {"message": "Timeout after <n> seconds", "count": 1, "first_seen": datetime(2026, 5, 3, 12, tzinfo=UTC),
         "last_seen": datetime(2026, 5, 3, 12, tzinfo=UTC), "model": "claude", "agent": None, "example_run_id": "l5"},
    ]  # fmt: skip
    assert len(top_errors(query(dataset), limit=1)) == 1


@pytest.mark.parametrize(
    "raw,normalised",
    [
        ("Rate limit reached for gpt-4o in org-abc123 on 429", "Rate limit reached for gpt-4o in org-<id> on <n>"),
        ("Run 550e8400-e29b-41d4-a716-446655440000 failed", "Run <uuid> failed"),
        ("segfault at 0x7ffd4a2b", "segfault at <hex>"),
        ("request req_8f3k2j9x failed (status=500)", "request req_<id> failed (status=<n>)"),
        ("claude-3.5-sonnet and gpt-4o-2024-08-06 took 12.5 s.", "claude-3.5-sonnet and gpt-4o-2024-08-06 took <n> s."),
        ("  too   many\n tokens: 130000 > 128000 ", "too many tokens: <n> > <n>"),
        ("", "(no message)"),
        (None, "(no message)"),
    ],
)
def test_normalise(raw, normalised):
    assert normalise(raw) == normalised


LATENCIES = [[1.0], [3.0, 1.0], [0.1, 0.2, 0.7, 1.3, 2.9, 11.0, 0.3], [0.0001 * n**1.5 for n in range(1, 101)]]


@pytest.mark.parametrize("values", LATENCIES)
def test_percentiles_are_the_same_in_the_database_and_in_python(acme_app, values):
    """On PostgreSQL, percentile_cont in SQL against percentile_cont in Python; on SQLite the
    fallback against the same expectations, to the last bit of the float."""
    ingest(acme_app, *[llm(f"p{n}", "2026-05-01T12:00:00Z", v, "m", 1, 1) for n, v in enumerate(values)])
    stored = sorted(Run.objects.values_list("latency_s", flat=True))
    (row,) = model_stats(query(acme_app, "from=2026-05-01T00:00:00Z&to=2026-05-02T00:00:00Z"))
    expected = {name: percentile_cont(stored, f) for name, f in (("latency_p50_s", 0.5), ("latency_p95_s", 0.95),
                                                                  ("latency_p99_s", 0.99))}  # fmt: skip
    assert {name: row[name] for name in expected} == expected, connection.vendor


def test_percentile_cont_interpolates_like_postgresql():
    assert percentile_cont([1.0, 2.0, 4.0], 0.5) == 2.0
    assert percentile_cont([1.0, 2.0, 4.0], 0.95) == pytest.approx(3.8)
    assert percentile_cont([5.0], 0.99) == 5.0
    assert percentile_cont([], 0.5) is None
