"""The cost recalculation: set-based, scoped, idempotent, safe during ingestion; thread totals follow."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import F
from django.utils import timezone

from apps.costs.models import ModelCost, Recalculation
from apps.threads.models import Thread
from apps.tracing.models import Run
from apps.tracing.repricing import recalculate_costs, request_recalculation
from tests.factories import AppFactory
from tests.helpers import ingest, uncommitted_batch


def call(run_id, model, *, at="2026-05-01T10:00:00Z", tokens=1000, **fields):
    return {"name": "llm_call", "run_id": run_id, "model": model, "timestamp": at, "prompt_tokens": tokens,
            "completion_tokens": 0, **fields}  # fmt: skip


@pytest.fixture
def priced_runs(acme_app):
    ModelCost.objects.create(model="a", prompt_price=Decimal("1"), completion_price=Decimal("1"))
    ModelCost.objects.create(model="b", prompt_price=Decimal("2"), completion_price=Decimal("2"))
    ingest(acme_app, call("a1", "a"), call("a2", "a", tokens=500), call("b1", "b"), call("c1", "c"))


def costs() -> dict[str, Decimal]:
    return dict(Run.objects.with_cost().values_list("run_id", "cost"))


def test_recalculating_one_model_leaves_the_others_untouched(priced_runs):
    ModelCost.objects.filter(model__in=["a", "b"]).update(prompt_price=Decimal("10"))
    summary = recalculate_costs(model="a")
    assert costs() == {"a1": 10, "a2": 5, "b1": 2, "c1": 0}
    assert (summary.total, summary.examined, summary.changed) == (2, 2, 2)
    assert (summary.cost_before, summary.cost_after) == (Decimal("1.5"), Decimal("15"))


def test_a_pattern_scope_covers_every_matching_model(priced_runs, acme_app):
    ModelCost.objects.create(model="[ab]", is_pattern=True, prompt_price=Decimal("7"), completion_price=0)
    ModelCost.objects.filter(model__in=["a", "b"]).delete()
    recalculate_costs(model="[ab]", is_pattern=True)
    assert costs() == {"a1": 7, "a2": Decimal("3.5"), "b1": 7, "c1": 0}


def test_runs_whose_model_lost_its_price_go_back_to_zero(priced_runs):
    ModelCost.objects.filter(model="b").delete()
    recalculate_costs()
    assert costs() == {"a1": 1, "a2": Decimal("0.5"), "b1": 0, "c1": 0}
    assert Run.objects.with_cost().get(run_id="b1").pricing.cost_row_id is None


def test_a_new_price_reaches_runs_that_had_none(priced_runs):
    row = ModelCost.objects.create(model="c", prompt_price=Decimal("3"), completion_price=0)
    recalculate_costs(model="c")
    repriced = Run.objects.with_cost().get(run_id="c1")
    assert (repriced.cost, repriced.pricing.cost_row_id) == (3, row.pk)


def test_it_is_idempotent(priced_runs):
    ModelCost.objects.filter(model="a").update(prompt_price=Decimal("4"))
    assert recalculate_costs().changed == 2
    before = costs()
    assert recalculate_costs().changed == 0
    assert costs() == before


def test_the_dry_run_changes_nothing(priced_runs):
    ModelCost.objects.filter(model="a").update(prompt_price=Decimal("4"))
    summary = recalculate_costs(dry_run=True)
    assert summary.changed == 2 and summary.cost_after == Decimal("8")
    assert costs() == {"a1": 1, "a2": Decimal("0.5"), "b1": 2, "c1": 0}


def test_scope_by_app_and_start_time(priced_runs, acme_app, acme):
    other = AppFactory(organization=acme, name="Other", slug="other")
    ingest(other, call("o1", "a"))
    ingest(acme_app, call("late", "a", at="2026-06-01T00:00:00Z"))
    ModelCost.objects.filter(model="a").update(prompt_price=Decimal("4"))
    recalculate_costs(app=acme_app, since=datetime(2026, 6, 1, tzinfo=UTC))
    assert Run.objects.with_cost().get(run_id="late").cost == 4
    assert Run.objects.with_cost().get(run_id="a1").cost == 1 and Run.objects.with_cost().get(run_id="o1").cost == 1


def test_thread_totals_follow(acme_app):
    ModelCost.objects.create(model="a", prompt_price=Decimal("1"), completion_price=Decimal("1"))
    ingest(
        acme_app,
        {"name": "agent_start", "run_id": "agent", "timestamp": "2026-05-01T10:00:00Z"},
        call("llm", "a", parent_run_id="agent"),
        {"name": "chat", "role": "assistant", "content": "hi", "run_id": "agent", "thread_id": "t"},
    )
    assert Thread.objects.get().total_cost == 1
    ModelCost.objects.filter(model="a").update(prompt_price=Decimal("6"))
    recalculate_costs(model="a")
    assert Thread.objects.get().total_cost == 6


def test_it_works_in_chunks_with_a_fixed_number_of_queries_each(acme_app, django_assert_max_num_queries, settings):
    ModelCost.objects.create(model="a", prompt_price=Decimal("1"), completion_price=Decimal("1"))
    ingest(acme_app, *[call(f"r{n}", "a") for n in range(250)])
    ModelCost.objects.filter(model="a").update(prompt_price=Decimal("2"))
    assert settings.OBSERVATORY_RECALC_CHUNK == 100_000
    settings.OBSERVATORY_RECALC_CHUNK = 100
    # scope totals, its models, the price book; then per range of 100 run ids: new totals, the
    # UPDATE, the threads to refresh, and the savepoint around them
    with django_assert_max_num_queries(3 + 3 * 5):
        summary = recalculate_costs()
    assert summary.changed == 250
    assert set(costs().values()) == {Decimal(2)}


@pytest.mark.django_db(transaction=True)
def test_recalculation_during_ingestion_loses_no_update(acme_app):
    """Another web process is writing end events for some runs when the job reaches them: the job
    waits for that transaction and reprices from the tokens it committed, never from older ones."""
    ModelCost.objects.create(model="a", prompt_price=Decimal("1"), completion_price=Decimal("1"))
    # Started runs that already carry a token count; some end events will bring the final one.
    ingest(acme_app, *[{**call(f"r{n}", "a", tokens=1000), "name": "llm_start"} for n in range(10)])
    ModelCost.objects.filter(model="a").update(prompt_price=Decimal("3"))
    ends = [{**call(f"r{n}", "a", tokens=2000), "name": "llm_end"} for n in range(5)]
    with uncommitted_batch(acme_app, *ends) as release:
        release()  # the job reaches its UPDATE and waits on these rows
        recalculate_costs()
    repriced = {(r.run_id, r.prompt_tokens, r.cost) for r in Run.objects.with_cost()}
    assert repriced == {(f"r{n}", 2000 if n < 5 else 1000, Decimal(6 if n < 5 else 3)) for n in range(10)}


def test_a_recorded_recalculation_runs_on_commit_and_records_its_summary(
    priced_runs, django_capture_on_commit_callbacks
):
    ModelCost.objects.filter(model="a").update(prompt_price=Decimal("4"))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = request_recalculation(model="a", reason="test")
        assert Recalculation.objects.get(pk=job.pk).state == Recalculation.State.QUEUED
    assert len(callbacks) == 1  # enqueued only once the transaction commits
    job.refresh_from_db()
    assert (job.state, job.total, job.examined, job.changed) == (Recalculation.State.DONE, 2, 2, 2)
    assert (job.cost_before, job.cost_after) == (Decimal("1.5"), Decimal("6"))
    assert job.started_at and job.finished_at and job.progress == "2/2"
    assert costs()["a1"] == 4


def test_a_redelivered_task_does_nothing(priced_runs):
    from apps.tracing.repricing import run_recalculation

    job = Recalculation.objects.create(model="a")
    assert run_recalculation(job.pk).state == Recalculation.State.DONE
    assert run_recalculation(job.pk) is None


class WorkerKilled(BaseException):
    """What SIGKILL looks like from inside: nothing after it runs, no `except Exception` sees it."""


@pytest.fixture
def chunked_job(acme_app, settings):
    """250 runs repriced from 1 to 2 per 1,000 tokens in chunks of 100 run ids: a job of three chunks."""
    settings.OBSERVATORY_RECALC_CHUNK = 100
    ModelCost.objects.create(model="a", prompt_price=Decimal("1"), completion_price=Decimal("1"))
    ingest(acme_app, *[call(f"r{n}", "a") for n in range(250)])
    ModelCost.objects.filter(model="a").update(prompt_price=Decimal("2"))
    return Recalculation.objects.create(model="a")


def die_at_chunk(monkeypatch, chunk: int, action=None) -> None:
    """The worker running the job dies (or `action` happens) as it starts its `chunk`-th chunk."""
    from apps.tracing.repricing import Repricing

    original, calls = Repricing.run, []

    def run(self, low, high, *, dry_run):
        calls.append(low)
        if len(calls) == chunk:
            if action is None:
                raise WorkerKilled
            action()
        return original(self, low, high, dry_run=dry_run)

    monkeypatch.setattr(Repricing, "run", run)


def test_a_job_whose_worker_died_resumes_where_it_stopped_and_counts_each_run_once(chunked_job, monkeypatch, settings):
    from apps.tracing.repricing import run_recalculation

    die_at_chunk(monkeypatch, 2)
    with pytest.raises(WorkerKilled):
        run_recalculation(chunked_job.pk)
    monkeypatch.undo()
    job = Recalculation.objects.get(pk=chunked_job.pk)
    assert (job.state, job.attempt, job.examined, job.changed) == (Recalculation.State.RUNNING, 1, 100, 100)
    assert sorted(costs().values()).count(Decimal(2)) == 100  # the first chunk committed, the second rolled back
    assert run_recalculation(job.pk) is None  # its heartbeat is fresh: presumed alive, left alone
    Recalculation.objects.filter(pk=job.pk).update(heartbeat_at=job.heartbeat_at - timedelta(seconds=301))
    job = run_recalculation(job.pk)  # the redelivered task, or the beat's sweep
    assert (job.state, job.attempt, job.total, job.examined, job.changed) == (
        Recalculation.State.DONE,
        2,
        250,
        250,
        250,
    )
    assert (job.cost_before, job.cost_after) == (Decimal(250), Decimal(500))
    assert set(costs().values()) == {Decimal(2)}


def test_a_worker_presumed_dead_that_wakes_up_writes_nothing(chunked_job, monkeypatch):
    from apps.tracing.repricing import run_recalculation

    def taken_over():  # another worker claims the job while this one works on its first chunk
        Recalculation.objects.filter(pk=chunked_job.pk).update(attempt=F("attempt") + 1)

    die_at_chunk(monkeypatch, 1, taken_over)
    assert run_recalculation(chunked_job.pk) is None
    # Its checkpoint failed, so its chunk was rolled back (and, here, the takeover with it, made in
    # the same connection; another worker's would have committed on its own).
    job = Recalculation.objects.get(pk=chunked_job.pk)
    assert (job.examined, job.changed, job.resume_from) == (0, 0, None)
    assert set(costs().values()) == {Decimal(1)}


def test_the_sweep_enqueues_only_the_stalled_jobs(acme_app, monkeypatch):
    from apps.tracing.repricing import resume_stalled_recalculations

    now = timezone.now()
    Running, Queued = Recalculation.State.RUNNING, Recalculation.State.QUEUED
    dead = Recalculation.objects.create(state=Running, heartbeat_at=now - timedelta(seconds=400))
    Recalculation.objects.create(state=Running, heartbeat_at=now - timedelta(seconds=10))  # alive
    lost = Recalculation.objects.create(state=Queued)
    Recalculation.objects.filter(pk=lost.pk).update(created_at=now - timedelta(minutes=2))
    Recalculation.objects.create(state=Queued)  # just queued: its message is on its way
    Recalculation.objects.create(state=Recalculation.State.DONE, heartbeat_at=now - timedelta(days=1))
    sent = []
    monkeypatch.setattr("apps.tracing.tasks.recalculate_costs_task.delay", sent.append)
    assert sorted(resume_stalled_recalculations()) == sorted(sent) == sorted([dead.pk, lost.pk])
    assert resume_stalled_recalculations() == [] and len(sent) == 2  # once per stale period, not every 10 s


@pytest.mark.django_db(transaction=True)
def test_runs_priced_before_a_price_change_and_committed_during_the_job_get_the_new_price(acme_app):
    """A batch reads the old price, the price changes and the job starts, and only then does the
    batch commit: the job waits for it instead of passing its runs by (found by bench/soak.py)."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite lets one writer in at a time: the price change waits for the batch")
    ModelCost.objects.create(model="a", prompt_price=Decimal("1"), completion_price=Decimal("1"))
    with uncommitted_batch(acme_app, *[call(f"r{n}", "a") for n in range(5)]) as release:  # priced at 1
        ModelCost.objects.filter(model="a").update(prompt_price=Decimal("3"))
        release()  # the job starts while the batch is still open
        summary = recalculate_costs()
    assert costs() == {f"r{n}": Decimal(3) for n in range(5)} and summary.changed == 5
