"""RunCost carries a copy of what analytics reads of each run (tracing.models.ANALYTICS_COLUMNS):
every write path keeps it equal to the run, whatever the order the events arrive in."""

import importlib
import itertools
from types import SimpleNamespace

import pytest
from django.db import connection

from apps.tracing.models import Run, RunCost
from tests.helpers import report

COPIED = ["type", "model", "agent", "user_id", "status", "latency_s", "started_at", "prompt_tokens",
          "completion_tokens"]  # fmt: skip

AGENT_START = {"name": "agent_start", "run_id": "a", "timestamp": "2026-05-29T08:00:00Z",
               "metadata": {"agent": "support", "user_id": "u1"}}  # fmt: skip
LLM_START = {"name": "llm_start", "run_id": "l", "parent_run_id": "a", "timestamp": "2026-05-29T08:00:01Z",
             "model": "gpt-4o"}  # fmt: skip
LLM_END = {"name": "llm_end", "run_id": "l", "timestamp": "2026-05-29T08:00:03Z",
           "usage": {"prompt_tokens": 10, "completion_tokens": 5}}  # fmt: skip
TOOL_ERROR = {"name": "tool_error", "run_id": "t", "parent_run_id": "a", "timestamp": "2026-05-29T08:00:04Z",
              "error": {"message": "boom"}}  # fmt: skip
AGENT_END = {"name": "agent_end", "run_id": "a", "timestamp": "2026-05-29T08:00:05Z"}


def copies_and_runs() -> tuple[dict, dict]:
    runs = {r.pop("pk"): r for r in Run.objects.values("pk", "parent_run_id", *COPIED)}
    for values in runs.values():
        values["root"] = values.pop("parent_run_id") is None
    copies = {r.pop("run"): r for r in RunCost.objects.values("run", "root", *COPIED)}
    return copies, runs


TRACE = [AGENT_START, LLM_START, LLM_END, TOOL_ERROR, AGENT_END]


@pytest.mark.parametrize("order", list(itertools.permutations(TRACE)))
def test_the_copy_equals_the_run_after_events_in_any_order(acme_client, order):
    for event in order:  # one request each: children often come before their parent
        report(acme_client, event)
    copies, runs = copies_and_runs()
    assert len(runs) == 3
    assert copies == runs
    # The children inherited the agent's agent and user, in whichever batch it came.
    assert {(r["agent"], r["user_id"]) for r in runs.values()} == {("support", "u1")}


def test_a_parent_named_later_makes_the_run_a_child(acme_client):
    report(acme_client, {"name": "chain_start", "run_id": "c", "timestamp": "2026-05-29T08:00:01Z"})
    assert RunCost.objects.get().root is True
    report(acme_client, AGENT_START, {**AGENT_END, "run_id": "c", "parent_run_id": "a", "name": "chain_end"})
    copies, runs = copies_and_runs()
    assert copies == runs
    assert sorted(r["root"] for r in copies.values()) == [False, True]


def test_the_migration_copies_every_run(acme_client):
    report(acme_client, AGENT_START, LLM_START, LLM_END, TOOL_ERROR)
    RunCost.objects.update(agent=None, user_id=None, status="started", latency_s=None, root=True)
    migration = importlib.import_module("apps.tracing.migrations.0014_runcost_analytics")
    # The schema editor only executes the SQL (and SQLite's cannot be opened inside a test's transaction).
    with connection.cursor() as cursor:
        migration.copy_from_runs(None, SimpleNamespace(execute=cursor.execute))
    copies, runs = copies_and_runs()
    assert copies == runs
    assert {r["status"] for r in copies.values()} == {"started", "success", "error"}
