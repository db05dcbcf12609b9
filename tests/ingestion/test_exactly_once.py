"""Exactly-once effect: redelivery changes nothing; concurrent batches on one run both apply."""

import threading
from decimal import Decimal

import orjson
import pytest
from django.db import connection
from django.test import Client

from apps.costs.models import ModelCost
from apps.tracing.models import Event, Run
from tests.helpers import report

START = {"name": "llm_start", "run_id": "r", "timestamp": "2026-05-29T08:00:00Z", "model": "m", "input": "q"}
END = {
    "name": "llm_end",
    "run_id": "r",
    "timestamp": "2026-05-29T08:00:02Z",
    "prompt_tokens": 100,
    "completion_tokens": 50,
    "output": "a",
}
CUSTOM = {"name": "retry", "run_id": "r", "timestamp": "2026-05-29T08:00:01Z"}


def snapshot() -> tuple:
    runs = list(
        Run.objects.with_cost().order_by("run_id").values("run_id", "status", "total_tokens", "cost", "input", "output")
    )
    return Event.objects.count(), runs


@pytest.fixture
def priced(db):
    ModelCost.objects.create(model="m", prompt_price=Decimal("0.01"), completion_price=Decimal("0.02"))


def test_redelivering_a_whole_batch_changes_nothing(acme_client, priced):
    report(acme_client, START, END, CUSTOM)
    before = snapshot()
    response = report(acme_client, START, END, CUSTOM)
    assert response.json() == {"accepted": 3, "rejected": 0, "errors": []}
    assert snapshot() == before
    assert before[0] == 3 and before[1][0]["total_tokens"] == 150 and before[1][0]["cost"] == Decimal("0.002")


def test_redelivering_part_of_a_batch_changes_nothing(acme_client, priced):
    report(acme_client, START, END, CUSTOM)
    before = snapshot()
    report(acme_client, END)
    report(acme_client, CUSTOM, START)
    assert snapshot() == before


def test_the_same_event_twice_in_one_batch_is_stored_once(acme_client, priced):
    response = report(acme_client, START, START, END, END)
    assert response.json()["accepted"] == 4
    assert Event.objects.count() == 2
    assert Run.objects.get().total_tokens == 150


def test_client_event_ids_decide_duplicates(acme_client):
    report(acme_client, {**CUSTOM, "id": "e-1"}, {**CUSTOM, "id": "e-2"}, {**CUSTOM, "event_id": "e-1"})
    assert Event.objects.count() == 2


def test_events_without_timestamp_are_deduplicated_by_content(acme_client):
    report(acme_client, {"name": "note", "run_id": "r", "text": "a"}, {"name": "note", "run_id": "r", "text": "b"})
    report(acme_client, {"name": "note", "run_id": "r", "text": "a"})
    assert Event.objects.count() == 2


def test_chat_events_differing_only_in_content_are_distinct(acme_client):
    chat = {"name": "chat", "role": "user", "timestamp": "2026-05-29T08:00:00Z", "thread_id": "t"}
    report(acme_client, {**chat, "content": "hi"}, {**chat, "content": "hello"}, {**chat, "content": "hi"})
    assert Event.objects.count() == 2


def _post_concurrently(raw_key: str, bodies: list[list[dict]]) -> list[int]:
    barrier = threading.Barrier(len(bodies))
    statuses: list[int] = []

    def send(events):
        client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        barrier.wait()
        try:
            response = client.post("/api/report", orjson.dumps({"events": events}), content_type="application/json")
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(events,)) for events in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


@pytest.mark.django_db(transaction=True)
def test_concurrent_start_and_end_of_one_run_both_apply(acme_key):
    ModelCost.objects.create(model="m", prompt_price=Decimal("0.01"), completion_price=Decimal("0.02"))
    for attempt in range(10):
        run_id = f"race-{attempt}"
        statuses = _post_concurrently(acme_key, [[{**START, "run_id": run_id}], [{**END, "run_id": run_id}]])
        assert statuses == [200, 200]
        run = Run.objects.with_cost().get(run_id=run_id)
        assert (run.status, run.input, run.output, run.model, run.total_tokens, run.has_start, run.has_end) == (
            "success",
            "q",
            "a",
            "m",
            150,
            True,
            True,
        )
        assert run.latency_s == 2.0 and run.cost == Decimal("0.002")


@pytest.mark.django_db(transaction=True)
def test_the_same_batch_delivered_twice_at_once_is_stored_once(acme_key):
    batch = [START, END, CUSTOM]
    assert _post_concurrently(acme_key, [batch, batch, batch]) == [200, 200, 200]
    assert Event.objects.count() == 3
    assert Run.objects.get().total_tokens == 150


def test_the_number_of_queries_does_not_grow_with_the_batch(acme_client, priced, django_assert_num_queries):
    def batch(size: int, prefix: str) -> list[dict]:
        events = []
        for n in range(size // 2):
            start = {**START, "run_id": f"{prefix}{n}", "parent_run_id": f"{prefix}root", "metadata": {"agent": "a"}}
            events += [start, {**END, "run_id": f"{prefix}{n}"}]
        return events

    report(acme_client, CUSTOM)  # the key's last_used_at is written on this first request only
    # key lookup, savepoint (the test's transaction), parent ancestry, event insert, runs read
    # (with parents), prices, runs upsert, their costs, their search text, saved marks,
    # children lacking an inherited agent or user, the runs' ancestors (their threads' totals
    # change), messages linked to them, feedback on new runs, release savepoint; on PostgreSQL
    # the advisory lock too.
    expected = 15 + (connection.vendor == "postgresql")
    with django_assert_num_queries(expected):
        report(acme_client, *batch(10, "small"))
    with django_assert_num_queries(expected):
        report(acme_client, *batch(500, "big"))
    assert Run.objects.count() == 5 + 250
