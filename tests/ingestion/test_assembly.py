"""OBSERVATORY_ASSEMBLY=worker: /api/report stores and queues events; workers apply them, exactly once."""

from unittest import mock

import orjson
import pytest
from django.db import connection
from django.utils import timezone

from apps.ingestion.assembly import assemble_pending, pending_count
from apps.threads.models import ThreadMessage
from apps.tracing.models import Event, QueuedBatch, Run
from tests.helpers import at_once, ingest, report

TRACE = [
    {"name": "agent_start", "run_id": "a", "timestamp": "2026-05-01T10:00:00Z", "metadata": {"agent": "bot"}},
    {"name": "llm_call", "run_id": "l", "parent_run_id": "a", "timestamp": "2026-05-01T10:00:02Z", "model": "m",
     "total_tokens": 10},
    {"name": "chat", "role": "assistant", "content": "hi", "thread_id": "t", "run_id": "a",
     "timestamp": "2026-05-01T10:00:03Z"},
    {"name": "agent_end", "run_id": "a", "timestamp": "2026-05-01T10:00:04Z", "output": "done"},
]  # fmt: skip


@pytest.fixture
def worker_mode(settings):
    settings.OBSERVATORY_ASSEMBLY = "worker"


def test_the_request_queues_and_a_worker_stores_and_applies(acme_client, worker_mode):
    assert report(acme_client, *TRACE).json() == {"accepted": 4, "rejected": 0, "errors": []}
    assert pending_count() == 4 and QueuedBatch.objects.count() == 1  # the request writes one row
    assert not Run.objects.exists() and not Event.objects.exists()
    assert assemble_pending() == 4
    assert pending_count() == 0 and Event.objects.count() == 4
    agent = Run.objects.get(run_id="a")
    assert (agent.status, agent.output, Run.objects.get(run_id="l").agent) == ("success", "done", "bot")
    assert ThreadMessage.objects.count() == 1
    assert assemble_pending() == 0


def test_redelivery_before_assembly_applies_nothing_twice(acme_client, worker_mode):
    report(acme_client, *TRACE)
    report(acme_client, *TRACE, TRACE[2])
    assert pending_count() == 4 + 4  # de-duplicated by the workers, not the requests (the repeat within one is dropped)
    assemble_pending(limit=1)  # one request's row per transaction: order and batching must not matter
    assert ThreadMessage.objects.count() == 1 and Event.objects.count() == 4


def test_redelivery_within_one_claim_applies_nothing_twice(acme_client, worker_mode):
    report(acme_client, *TRACE)
    report(acme_client, *TRACE)
    assert assemble_pending() == 8 and ThreadMessage.objects.count() == 1 and Event.objects.count() == 4
    report(acme_client, *TRACE)  # after it was applied
    assert assemble_pending() == 4 and ThreadMessage.objects.count() == 1 and Event.objects.count() == 4


def test_invalid_events_are_still_refused_at_once(acme_client, worker_mode):
    response = report(acme_client, TRACE[0], {"name": "chain_start"}, expect=207)
    assert response.json()["errors"][0]["error"] == "run_id: required for run events"
    assert pending_count() == 1


def test_a_failed_batch_is_rolled_back_and_applied_later(acme_client, worker_mode, monkeypatch):
    from apps.ingestion import assembly

    report(acme_client, *TRACE)
    real_apply = assembly.apply

    def crash(events, new_keys):
        real_apply(events, new_keys)
        raise RuntimeError("worker killed")

    monkeypatch.setattr(assembly, "apply", crash)
    with pytest.raises(RuntimeError):
        assemble_pending()
    assert pending_count() == 4 and not Run.objects.exists()
    monkeypatch.setattr(assembly, "apply", real_apply)
    assert assemble_pending() == 4 and Run.objects.count() == 2


def test_the_request_wakes_a_worker_once_it_commits(acme_client, worker_mode, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        report(acme_client, *TRACE)
    assert len(callbacks) == 1  # tasks run in-process in tests: the run is there now
    assert pending_count() == 0 and Run.objects.filter(run_id="a", status="success").exists()


def test_a_batch_takes_a_fixed_number_of_queries(acme_app, worker_mode, django_assert_max_num_queries):
    ingest(acme_app, *[{**TRACE[1], "run_id": f"l{n}", "parent_run_id": None} for n in range(300)])
    with django_assert_max_num_queries(25):
        assert assemble_pending(limit=1000) == 300


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_apply_each_event_once(acme_app, settings):
    settings.OBSERVATORY_ASSEMBLY = "worker"
    chats = [{"name": "chat", "role": "user", "content": f"m{n}", "thread_id": f"t{n % 7}",
              "timestamp": f"2026-05-01T10:{n // 60:02d}:{n % 60:02d}Z"} for n in range(240)]  # fmt: skip
    calls = [{**TRACE[1], "run_id": f"l{n}", "parent_run_id": None} for n in range(240)]
    with mock.patch("apps.ingestion.tasks.schedule_assembly"):  # nothing applies on commit
        ingest(acme_app, *chats, *calls)
    assert pending_count() == 480
    done = at_once(lambda: assemble_pending(limit=25), 3)
    assert sum(done) == 480 and pending_count() == 0
    assert ThreadMessage.objects.count() == 240 and Run.objects.count() == 240


def test_the_task_applies_everything_queued(acme_app, worker_mode):
    from apps.ingestion.tasks import assemble_pending_task

    ingest(acme_app, *TRACE)
    assert assemble_pending_task() == 4 and pending_count() == 0
    assert assemble_pending_task() == 0


def test_a_cycle_within_the_batch_is_refused_at_once(acme_client, worker_mode):
    cycle = [{"name": "chain_start", "run_id": "a", "parent_run_id": "b"},
             {"name": "chain_start", "run_id": "b", "parent_run_id": "a"}]  # fmt: skip
    assert [e["index"] for e in report(acme_client, *cycle, expect=207).json()["errors"]] == [1]
    assemble_pending()
    assert dict(Run.objects.values_list("run_id", "parent_run_id")) == {"a": "b"}


def test_a_cycle_through_stored_runs_is_dropped_by_the_worker(acme_client, worker_mode, caplog):
    report(acme_client, {"name": "chain_start", "run_id": "a", "parent_run_id": "b"})
    assemble_pending()
    # Accepted without a look at the stored runs; the worker ignores the parent that closes the cycle.
    report(acme_client, {"name": "chain_start", "run_id": "b", "parent_run_id": "a"})
    assemble_pending()
    assert dict(Run.objects.values_list("run_id", "parent_run_id")) == {"a": "b", "b": None}
    assert "its parent is ignored" in caplog.text


def test_requests_share_a_wake_up_until_a_worker_starts(acme_client, worker_mode, django_capture_on_commit_callbacks):
    from apps.ingestion.tasks import assemble_pending_task

    def report_and_commit(event):
        with django_capture_on_commit_callbacks(execute=True):
            report(acme_client, event)

    with mock.patch.object(assemble_pending_task, "delay") as delay:
        report_and_commit(TRACE[0])
        report_and_commit(TRACE[1])
        assert delay.call_count == 1  # the first task has not started: it will apply both
        assert assemble_pending_task() == 2
        report_and_commit(TRACE[3])
        assert delay.call_count == 2


@pytest.mark.django_db(transaction=True)
def test_a_worker_leaves_queued_the_runs_another_is_applying(acme_app, settings):
    if connection.vendor != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's; SQLite lets one writer in at a time")
    from django.db import connections

    from apps.tracing.sql import advisory_lock

    settings.OBSERVATORY_ASSEMBLY = "worker"
    with mock.patch("apps.ingestion.tasks.schedule_assembly"):
        ingest(acme_app, *TRACE)
    other = connections.create_connection("default")  # another worker, in the middle of run "a"
    try:
        with other.cursor() as cursor:
            cursor.execute("BEGIN")
            with mock.patch("apps.tracing.sql.connection", other):
                advisory_lock([f"run:{acme_app.pk}:a"])
            assert assemble_pending() == 2  # the llm call and the chat; run "a"'s two events stay queued
            assert pending_count() == 2 and list(Run.objects.values_list("run_id", flat=True)) == ["l"]
            cursor.execute("COMMIT")
    finally:
        other.close()
    assert assemble_pending() == 2 and pending_count() == 0
    assert Run.objects.get(run_id="a").status == "success" and ThreadMessage.objects.count() == 1


def test_an_event_that_no_longer_validates_is_stored_and_not_applied(acme_app, worker_mode, caplog):
    # Accepted under older rules and queued; the rules changed before a worker took it.
    body = orjson.dumps([[acme_app.pk, "k1", {"name": "llm_call", "run_id": "x" * 200}], [acme_app.pk, "k2", TRACE[1]]])
    QueuedBatch.objects.create(received_at=timezone.now(), size=2, body=body)
    assert assemble_pending() == 2 and pending_count() == 0
    assert list(Run.objects.values_list("run_id", flat=True)) == ["l"]
    assert set(Event.objects.values_list("dedup_key", "run_id")) == {("k1", "x" * 128), ("k2", "l")}
    assert "no longer validates" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_events_queued_before_the_upgrade_take_effect_once_after_it(acme_app, settings):
    """Migration 0017 moves the old queue (an event row and a queue row each) into QueuedBatch."""
    from django.db.migrations.executor import MigrationExecutor

    from apps.ingestion import services

    executor = MigrationExecutor(connection)
    before = [("tracing", "0016_runsearch_words")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    errors: dict = {}
    received = timezone.now()
    events = services._resolve_apps(services._validate(TRACE, False, received, errors), acme_app, errors)
    for event in events:  # what the old request wrote
        stored = old.get_model("tracing", "Event").objects.create(
            app_id=acme_app.pk, run_id=event.run_id, name=event.name, timestamp=event.timestamp,
            received_at=received, dedup_key=event.dedup_key, payload=event.raw,
        )  # fmt: skip
        old.get_model("tracing", "PendingEvent").objects.create(event_id=stored.pk)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert pending_count() == 4 and QueuedBatch.objects.get().stored
    settings.OBSERVATORY_ASSEMBLY = "worker"
    assert assemble_pending() == 4
    assert Event.objects.count() == 4 and ThreadMessage.objects.count() == 1  # stored once, and applied as new
    assert Run.objects.get(run_id="a").status == "success"


def test_search_finds_a_run_as_soon_as_the_worker_applied_it(acme_client, worker_mode):
    # Its search row is written in the transaction that applies it: there is no later indexing step.
    report(acme_client, {**TRACE[1], "input": "Where is parcel 4242?"})
    assert acme_client.get("/api/run/", {"search": "parcel 4242"}).json()["results"] == []
    assemble_pending()
    found = acme_client.get("/api/run/", {"search": "parcel 4242"}).json()["results"]
    assert [run["run_id"] for run in found] == ["l"]


def test_a_task_applies_for_its_time_then_hands_the_rest_to_a_new_task(acme_app, worker_mode, settings):
    from apps.ingestion.tasks import assemble_pending_task

    with mock.patch("apps.ingestion.tasks.schedule_assembly"):
        for event in TRACE:  # one queued row each
            ingest(acme_app, event)
    assert assemble_pending(limit=1, seconds=0) == 1 and pending_count() == len(TRACE) - 1
    settings.OBSERVATORY_ASSEMBLY_TASK_SECONDS = 0
    with mock.patch("apps.ingestion.tasks.schedule_assembly") as wake:
        assemble_pending_task()  # its time is up after the first transaction: it wakes another worker
    wake.assert_called_once()
    settings.OBSERVATORY_ASSEMBLY_TASK_SECONDS = 30
    with mock.patch("apps.ingestion.tasks.schedule_assembly") as wake:
        assemble_pending_task()  # the queue emptied within its time: nobody else to wake
    wake.assert_not_called()
    assert pending_count() == 0 and Run.objects.count() == 2
