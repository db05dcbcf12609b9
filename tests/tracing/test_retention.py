"""Retention (SPEC §6, docs/RETENTION.md): what expires goes, saved traces and their messages stay."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.utils import timezone

from apps.costs.models import ModelCost
from apps.tenancy.models import App
from apps.threads.models import Thread, ThreadMessage
from apps.tracing.models import Event, Feedback, QueuedBatch, Run, RunCost, RunSearch
from apps.tracing.retention import PurgeResult, protected_run_ids, purge_expired
from apps.tracing.sql import try_advisory_lock
from apps.tracing.tasks import purge_expired_task
from observatory.celery import app as celery_app
from tests.factories import AppFactory
from tests.helpers import at_once, ingest

NOW = timezone.now().replace(microsecond=0)
ROOT = Path(__file__).resolve().parents[2]


def ago(days: float, seconds: float = 0) -> str:
    return (NOW - timedelta(days=days, seconds=seconds)).isoformat()


def llm(run_id: str, days: float, seconds: float = 0, **extra) -> dict:
    return {"name": "llm_call", "run_id": run_id, "timestamp": ago(days, seconds), "model": "m", "prompt_tokens": 100,
            "completion_tokens": 50, "input": f"question {run_id}", "output": f"answer {run_id}", **extra}  # fmt: skip


def span(kind: str, run_id: str, days: float, parent: str | None = None, **extra) -> list[dict]:
    start = {"name": f"{kind}_start", "run_id": run_id, "timestamp": ago(days), **extra}
    if parent:
        start["parent_run_id"] = parent
    return [start, {"name": f"{kind}_end", "run_id": run_id, "timestamp": ago(days, -1)}]


def chat(message_id: str, days: float, *, thread: str = "t", run_id: str | None = None, **extra) -> dict:
    event = {"name": "chat", "role": "assistant", "content": f"text {message_id}", "thread_id": thread,
             "message_id": message_id, "timestamp": ago(days), **extra}  # fmt: skip
    if run_id:
        event["run_id"] = run_id
    return event


def run_ids(app=None) -> set[str]:
    runs = Run.objects.all() if app is None else Run.objects.filter(app=app)
    return set(runs.values_list("run_id", flat=True))


def purge(app=None, **options) -> PurgeResult:
    results = purge_expired(app=app, now=NOW, **options)
    return results[0] if app is not None else results


def retention(app, days) -> App:
    App.objects.filter(pk=app.pk).update(retention_days=days)
    return app


@pytest.fixture
def priced(db):
    ModelCost.objects.create(model="m", prompt_price=Decimal("0.001"), completion_price=Decimal("0.002"))


# --- what expires ------------------------------------------------------------------------------------------


def test_the_boundary_day(acme_app):
    retention(acme_app, 30)
    ingest(acme_app, llm("just-expired", 30, seconds=1), llm("on-the-cutoff", 30), llm("just-kept", 30, seconds=-1),
           llm("old", 400), llm("new", 0))  # fmt: skip
    result = purge(acme_app)
    assert result.cutoff == NOW - timedelta(days=30)
    assert run_ids() == {"on-the-cutoff", "just-kept", "new"}  # older than the cutoff: strictly before it
    assert (result.runs, result.costs, result.searches, result.protected) == (2, 2, 2, 0)


@pytest.mark.parametrize("days", [None, 0])
def test_empty_or_zero_retention_keeps_forever(acme_app, days):
    retention(acme_app, days)
    ingest(acme_app, llm("ancient", 3000), chat("m1", 3000))
    result = purge(acme_app)
    assert (result.cutoff, result.runs, result.messages) == (None, 0, 0)
    assert run_ids() == {"ancient"} and ThreadMessage.objects.count() == 1


def test_each_app_has_its_own_window_and_keeps_the_others_runs(acme_app, globex_app):
    forever = AppFactory(organization=acme_app.organization, name="Archive", slug="archive", retention_days=None)
    retention(acme_app, 30)
    retention(globex_app, 60)
    for app in (acme_app, globex_app, forever):
        ingest(app, llm("r45", 45), llm("r90", 90), llm("r1", 1), chat("m45", 45, run_id="r45"))
    results = {r.app.slug: r for r in purge()}
    assert run_ids(acme_app) == {"r1"}
    assert run_ids(globex_app) == {"r45", "r1"}
    assert run_ids(forever) == {"r45", "r90", "r1"}
    assert {slug: r.runs for slug, r in results.items()} == {"support-bot": 2, "sales-bot": 1, "archive": 0}
    assert results["archive"].cutoff is None
    assert ThreadMessage.objects.filter(app=globex_app).count() == 1  # 45 days < 60
    assert ThreadMessage.objects.filter(app=acme_app).count() == 0


def test_one_app_only_leaves_the_others_alone(acme_app, globex_app):
    retention(acme_app, 30)
    retention(globex_app, 30)
    for app in (acme_app, globex_app):
        ingest(app, llm("old", 40))
    assert purge(acme_app).runs == 1
    assert run_ids(globex_app) == {"old"}


def test_a_deleted_runs_events_costs_search_rows_and_feedback_go_with_it(acme_app, priced):
    retention(acme_app, 30)
    ingest(
        acme_app,
        *span("agent", "gone", 40), llm("gone-llm", 40, parent_run_id="gone"),
        {"name": "feedback", "run_id": "gone", "rating": "positive", "timestamp": ago(40)},
        {"name": "tool_progress", "run_id": "gone", "timestamp": ago(40)},  # a custom event of the run
        *span("agent", "kept", 10), llm("kept-llm", 10, parent_run_id="kept"),
        {"name": "feedback", "run_id": "kept", "rating": "negative", "timestamp": ago(10)},
    )  # fmt: skip
    gone = set(Run.objects.filter(run_id__startswith="gone").values_list("pk", flat=True))
    result = purge(acme_app)
    assert run_ids() == {"kept", "kept-llm"}
    assert not RunCost.objects.filter(run__in=gone).exists() and not RunSearch.objects.filter(run__in=gone).exists()
    assert RunCost.objects.count() == RunSearch.objects.count() == 2
    assert set(Event.objects.values_list("run_id", flat=True)) == {"kept", "kept-llm"}
    assert set(Feedback.objects.values_list("run_id", flat=True)) == {"kept"}
    assert (result.runs, result.events, result.costs, result.searches, result.feedback) == (2, 5, 2, 2, 1)


def test_events_that_name_no_run_expire_by_their_own_time(acme_app):
    retention(acme_app, 30)
    ingest(acme_app, {"name": "deploy", "timestamp": ago(40)}, {"name": "deploy", "timestamp": ago(10)})
    result = purge(acme_app)
    assert list(Event.objects.values_list("name", "timestamp")) == [("deploy", NOW - timedelta(days=10))]
    assert result.events == 1


def test_runs_with_queued_events_are_left_for_the_next_purge(acme_app, settings):
    # Worker assembly: the run's newest events are queued; deleting under the workers would lose them.
    retention(acme_app, 30)
    ingest(acme_app, llm("queued", 40), llm("idle", 40))
    settings.OBSERVATORY_ASSEMBLY = "worker"
    ingest(acme_app, {**llm("queued", 40), "name": "llm_end", "id": "late"})
    other_app = AppFactory(organization=acme_app.organization)
    ingest(acme_app, {**llm("idle", 40), "app_id": str(other_app.public_id)})  # the same run id in another app
    result = purge(acme_app)
    assert run_ids() == {"queued"} and (result.runs, result.skipped) == (1, 1)
    QueuedBatch.objects.all().delete()
    assert purge(acme_app).runs == 1 and not run_ids()


# --- what is kept ---------------------------------------------------------------------------------------


def saved_trace(app) -> None:
    """root -> plan -> step -> deep (saved), root -> other -> leaf; a second trace with nothing saved."""
    ingest(
        app,
        *span("agent", "root", 40), *span("chain", "plan", 40, "root"), *span("chain", "step", 40, "plan"),
        llm("deep", 40, parent_run_id="step"),
        *span("chain", "other", 40, "root"), llm("leaf", 40, parent_run_id="other"),
        {"name": "saved", "run_id": "deep", "timestamp": ago(40)},
        *span("agent", "lost", 40), llm("lost-llm", 40, parent_run_id="lost"),
    )  # fmt: skip


TREE = {"root", "plan", "step", "deep", "other", "leaf"}


def test_a_saved_run_deep_in_a_trace_keeps_its_whole_tree(acme_app):
    retention(acme_app, 30)
    saved_trace(acme_app)
    assert Run.objects.get(run_id="deep").saved
    result = purge(acme_app)
    assert run_ids() == TREE
    assert (result.runs, result.protected) == (2, 6)
    assert set(Event.objects.values_list("run_id", flat=True)) == TREE
    assert RunCost.objects.count() == RunSearch.objects.count() == 6


def test_traces_split_across_protection_chunks_are_still_whole(acme_app, monkeypatch):
    monkeypatch.setattr("apps.tracing.retention.PROTECT_CHUNK", 2)  # PostgreSQL plans: see the module
    retention(acme_app, 30)
    saved_trace(acme_app)
    assert purge(acme_app, batch_size=3).runs == 2 and run_ids() == TREE


def test_a_saved_traces_messages_and_thread_stay_and_its_totals_follow(acme_app, priced):
    retention(acme_app, 30)
    saved_trace(acme_app)
    ingest(
        acme_app,
        chat("question", 40, role="user"),  # links no run: expires
        chat("answer", 40, run_id="root"),  # the saved trace's: stays
        chat("to-lost", 40, run_id="lost", thread="t2"),  # its run goes, its thread empties
        chat("recent", 1, thread="t3"), chat("old-in-t3", 40, thread="t3", run_id="lost-llm"),
    )  # fmt: skip
    before = Thread.objects.get(thread_id="t")
    assert before.message_count == 2
    result = purge(acme_app)
    kept = Thread.objects.get(thread_id="t")
    assert list(kept.messages.values_list("message_id", flat=True)) == ["answer"]
    # Totals: the trace under "root" (its 2 llm runs of 150 tokens).
    assert (kept.message_count, kept.total_tokens, kept.started_at) == (1, 300, NOW - timedelta(days=40))
    assert not Thread.objects.filter(thread_id="t2").exists()
    t3 = Thread.objects.get(thread_id="t3")
    assert (t3.message_count, t3.total_tokens, t3.started_at) == (1, 0, NOW - timedelta(days=1))
    assert (result.messages, result.threads_deleted, result.threads_refreshed) == (3, 1, 2)


def test_a_saved_event_before_its_run_protects_the_run_as_its_events_arrive(acme_app):
    retention(acme_app, 30)
    ingest(acme_app, {"name": "saved", "run_id": "child", "timestamp": ago(1)}, chat("m", 40, run_id="child"))
    purge(acme_app)  # nothing to delete yet but the message, which the save protects
    assert ThreadMessage.objects.count() == 1
    ingest(acme_app, *span("agent", "parent", 40))
    ingest(acme_app, llm("child", 40, parent_run_id="parent"), llm("sibling", 40, parent_run_id="parent"))
    assert Run.objects.get(run_id="child").saved
    result = purge(acme_app)
    assert run_ids() == {"parent", "child", "sibling"} and result.protected == 3
    assert ThreadMessage.objects.count() == 1 and Event.objects.filter(name="saved").count() == 1


def test_a_run_saved_by_an_event_then_unsaved_is_no_longer_kept(acme_app):
    from apps.tracing.services import set_saved

    retention(acme_app, 30)
    saved_trace(acme_app)
    for run in Run.objects.filter(saved=True):
        set_saved(acme_app, run.run_id, False)  # Unsave (run page, admin): its old `saved` event no longer counts
    purge(acme_app)
    assert run_ids() == set()


def test_protection_reaches_runs_kept_for_their_age_and_missing_parents(acme_app):
    retention(acme_app, 30)
    # The root is gone (an earlier purge, or never sent); the saved run is younger than the cutoff.
    ingest(
        acme_app, llm("old-child", 40, parent_run_id="missing-root"), llm("young", 10, parent_run_id="missing-root"),
        llm("old-other", 40, parent_run_id="other-root"),
    )  # fmt: skip
    Run.objects.filter(run_id="young").update(saved=True)
    asked = ["old-child", "old-other", "young", "no-such-run", None]
    assert protected_run_ids(acme_app, asked) == {"old-child", "young"}
    purge(acme_app)
    assert run_ids() == {"old-child", "young"}


def test_a_run_saved_while_it_waits_in_a_batch_is_kept(acme_app):
    retention(acme_app, 30)
    ingest(acme_app, llm("r", 40))
    # Between the batch's protection check and its DELETE: the DELETE checks `saved` again.
    from apps.tracing import retention as module

    real = module.protected_run_ids

    def save_then_check(app, ids):
        Run.objects.filter(run_id="r").update(saved=True)
        return real(app, set())

    module.protected_run_ids = save_then_check
    try:
        result = purge(acme_app)
    finally:
        module.protected_run_ids = real
    assert run_ids() == {"r"} and (result.runs, result.protected) == (0, 1)


# --- batches, re-reading, dry runs, twice ---------------------------------------------------------------


def test_small_batches_give_the_same_result_and_report_progress(acme_app):
    retention(acme_app, 30)
    saved_trace(acme_app)
    ingest(acme_app, *[llm(f"r{n}", 40 + n / 100) for n in range(25)], *[chat(f"m{n}", 40, thread=f"t{n}") for n in range(7)])  # fmt: skip  # noqa: E501
    seen = []
    result = purge(acme_app, batch_size=4, progress=lambda r: seen.append(r.runs))
    assert run_ids() == TREE
    assert (result.runs, result.protected, result.messages, result.threads_deleted) == (27, 6, 7, 7)
    assert len(seen) >= 9 and seen == sorted(seen)


def test_the_job_reads_retention_when_it_runs(acme_app):
    ingest(acme_app, llm("r40", 40), llm("r20", 20))
    scheduled = App.objects.get(pk=acme_app.pk)
    scheduled.retention_days = 30  # what it was when the job was scheduled, say
    retention(acme_app, 10)  # changed in Settings since
    result = purge(scheduled)
    assert (result.app.retention_days, result.cutoff, result.runs) == (10, NOW - timedelta(days=10), 2)
    ingest(acme_app, llm("r40", 40))
    scheduled.retention_days = 30
    retention(acme_app, None)  # and now keeps forever
    assert purge(scheduled).cutoff is None and run_ids() == {"r40"}


def test_the_dry_run_counts_what_the_purge_then_deletes_and_changes_nothing(acme_app, globex_app, priced):
    retention(acme_app, 30)
    saved_trace(acme_app)
    ingest(
        acme_app, chat("question", 40, role="user"), chat("answer", 40, run_id="root"),
        chat("to-lost", 40, run_id="lost", thread="t2"), chat("recent", 1, thread="t3"), chat("old", 40, thread="t3"),
        {"name": "feedback", "message_id": "question", "rating": "positive", "timestamp": ago(40)},
        {"name": "feedback", "run_id": "lost-llm", "rating": "negative", "timestamp": ago(40)},
        {"name": "deploy", "timestamp": ago(40)},
    )  # fmt: skip

    def snapshot():
        tables = (Run, RunCost, RunSearch, Event, Feedback, ThreadMessage)
        threads = list(Thread.objects.order_by("pk").values_list("message_count", "total_tokens", "started_at"))
        return [model.objects.count() for model in tables], threads

    before = snapshot()
    dry = purge(acme_app, dry_run=True)
    assert snapshot() == before
    real = purge(acme_app)
    assert dry.counts == real.counts
    assert (real.runs, real.feedback, real.messages, real.threads_deleted) == (2, 2, 3, 1)


def test_a_second_purge_finds_nothing(acme_app):
    retention(acme_app, 30)
    saved_trace(acme_app)
    ingest(acme_app, chat("m", 40))
    first = purge(acme_app)
    second = purge(acme_app)
    assert first.runs == 2 and second.counts == {**PurgeResult(acme_app, None).counts, "protected": 6}
    assert run_ids() == TREE


@pytest.mark.django_db(transaction=True)
def test_two_purges_at_once_delete_each_row_once(acme_app):
    retention(acme_app, 30)
    saved_trace(acme_app)
    ingest(acme_app, *[llm(f"r{n}", 40 + n / 100) for n in range(60)], *[chat(f"m{n}", 40, thread=f"t{n}") for n in range(20)])  # fmt: skip  # noqa: E501
    results = at_once(lambda: purge(acme_app, batch_size=5), 2)
    assert sum(r.runs for r in results) == 62 and sum(r.messages for r in results) == 20
    assert sum(r.threads_deleted for r in results) == 20
    assert run_ids() == TREE and not ThreadMessage.objects.exists()
    # Anything left (one left the app to the other part-way) is gone after one more.
    assert purge(acme_app).runs == 0


@contextlib.contextmanager
def held_elsewhere(*names: str):
    """Another connection holds these advisory locks (as a purge or an ingestion batch would) meanwhile."""
    held, release = threading.Event(), threading.Event()

    def holder():
        try:
            with transaction.atomic():
                assert not try_advisory_lock(names)
                held.set()
                release.wait(30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(30)
        yield
    finally:
        release.set()
        thread.join(30)


@pytest.mark.django_db(transaction=True)
def test_a_purge_leaves_an_app_another_purge_holds(acme_app):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL advisory locks; SQLite serialises the writers instead")
    retention(acme_app, 30)
    ingest(acme_app, llm("r", 40), chat("m", 40))
    with held_elsewhere(f"purge:{acme_app.pk}"):
        result = purge(acme_app)
    assert result.busy and (result.runs, result.messages) == (0, 0) and run_ids() == {"r"}
    assert purge(acme_app).runs == 1


@pytest.mark.django_db(transaction=True)
def test_what_an_ingestion_batch_is_writing_is_left_for_the_next_purge(acme_app):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL advisory locks; SQLite serialises the writers instead")
    retention(acme_app, 30)
    ingest(acme_app, llm("busy", 40), llm("idle", 40), chat("m1", 40, thread="a"), chat("m2", 40, thread="b"),
           chat("m3", 40, thread="c", run_id="linked"))  # fmt: skip
    # The locks tracing.services.run_lock_names and threads.services.chat_lock_names name.
    with held_elsewhere(f"run:{acme_app.pk}:busy", f"thread:{acme_app.pk}:a", f"run:{acme_app.pk}:linked"):
        result = purge(acme_app)
    assert run_ids() == {"busy"} and (result.runs, result.skipped) == (1, 1)
    assert set(Thread.objects.values_list("thread_id", flat=True)) == {"a", "c"}  # c: a run it links is written
    assert purge(acme_app).runs == 1 and not Thread.objects.exists()


# --- the command, the task, the schedule ---------------------------------------------------------------


def command(*args) -> str:
    out = StringIO()
    call_command("purge_expired", *args, stdout=out)
    return out.getvalue()


def test_the_command_prints_what_it_deletes_per_app(acme_app, globex_app):
    retention(acme_app, 30)
    retention(globex_app, None)
    saved_trace(acme_app)
    ingest(acme_app, chat("m", 40))
    dry = command("--dry-run")
    assert "acme/support-bot (retention 30 d, before " in dry
    assert "would delete 2 runs, 4 events, 2 cost rows, 2 search rows, 0 feedback, 1 message" in dry
    assert "1 thread would be deleted, 0 refreshed; 6 expired runs kept in saved traces" in dry
    assert "globex/sales-bot: keeps forever" in dry and dry.endswith("Would delete 2 runs in 2 apps.\n")
    assert len(run_ids()) == 8
    out = command("--app", "support-bot", "--org", "acme")
    assert "acme/support-bot" in out and "): deleted 2 runs, 4 events" in out and "sales-bot" not in out
    assert out.endswith("Deleted 2 runs in 1 app.\n")
    assert "globex/sales-bot: keeps forever" in command("--org", "globex")


def test_the_command_refuses_an_unknown_or_ambiguous_app(acme_app, globex_app):
    AppFactory(organization=globex_app.organization, name="Support Bot", slug="support-bot")
    with pytest.raises(CommandError, match="no app 'nope'$"):
        command("--app", "nope")
    with pytest.raises(CommandError, match="several organizations"):
        command("--app", "support-bot")
    with pytest.raises(CommandError, match="no organization 'nope'"):
        command("--org", "nope")


def test_the_task_runs_the_purge(acme_app):
    retention(acme_app, 30)
    ingest(acme_app, llm("r", 40), llm("s", 40))
    assert purge_expired_task.delay().get() == 2 and not run_ids()


def test_beat_runs_the_retention_job_daily_at_the_configured_hour(settings):
    entries = celery_app.conf.beat_schedule
    assert set(entries) == {"assemble-pending-events", "resume-stalled-recalculations", "purge-expired"}
    entry = entries["purge-expired"]
    assert entry["task"] == "apps.tracing.tasks.purge_expired_task" == purge_expired_task.name
    schedule = entry["schedule"]
    assert (schedule.hour, schedule.minute) == ({settings.OBSERVATORY_RETENTION_HOUR}, {0})
    assert settings.OBSERVATORY_RETENTION_HOUR == 3 or "OBSERVATORY_RETENTION_HOUR" in os.environ


HOURS = [("17", "{17} {0}"), ("24", "must be at most 23"), ("x", "not an integer")]


@pytest.mark.parametrize(("value", "expected"), HOURS)
def test_the_retention_hour_comes_from_the_environment(value, expected):
    code = "from observatory.celery import app; s = app.conf.beat_schedule['purge-expired']['schedule']; "
    code += "print(s.hour, s.minute)"
    env = {**os.environ, "OBSERVATORY_RETENTION_HOUR": value, "SECRET_KEY": "x"}
    env["DJANGO_SETTINGS_MODULE"] = "observatory.settings"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert expected in done.stdout + done.stderr
