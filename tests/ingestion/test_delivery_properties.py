"""Any delivery of a trace's events gives what one clean, in-order delivery gives (SPEC §2).

Hypothesis draws the order of the events, how they are cut into batches, how many times each
batch is delivered (1–3), the assembly mode, and in worker mode when the worker runs. Every
example is compared, table by table, with the clean delivery in the same mode and database.
"""

import random
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import F
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from apps.costs.models import ModelCost
from apps.ingestion.assembly import assemble_pending
from apps.threads.models import Thread, ThreadMessage
from apps.tracing.models import Event, Feedback, Run, RunCost, RunSearch
from tests.helpers import at_once, ingest

USER = {"agent": "support", "user_id": "u1", "user_email": "u1@example.com", "thread_id": "t1"}


def at(second: int) -> str:
    return f"2026-05-29T08:00:{second:02d}Z"


# One trace: agent -> chain -> (llm, tool that fails, one-shot llm), a conversation in thread
# t1 linked to its runs, feedback on a run and on a message, and a `saved` event.
TRACE = [
    {"name": "agent_start", "run_id": "a", "timestamp": at(0), "input": {"q": "where is parcel 4242?"},
     "metadata": USER, "tags": ["prod"]},
    {"name": "chat", "role": "user", "content": "where is parcel 4242?", "thread_id": "t1", "run_id": "a",
     "message_id": "m1", "timestamp": at(1)},
    {"name": "chain_start", "run_id": "c", "parent_run_id": "a", "timestamp": at(2), "input": "plan"},
    {"name": "llm_start", "run_id": "l", "parent_run_id": "c", "timestamp": at(3), "model": "m",
     "input": [{"role": "user", "content": "where is parcel 4242?"}]},
    {"name": "llm_end", "run_id": "l", "timestamp": at(5), "prompt_tokens": 120, "completion_tokens": 30,
     "output": {"role": "assistant", "content": "In Paris."}},
    {"name": "tool_start", "run_id": "t", "parent_run_id": "c", "timestamp": at(6), "input": {"id": 4242}},
    {"name": "tool_error", "run_id": "t", "timestamp": at(7), "error": {"message": "timeout"}},
    {"name": "llm_call", "run_id": "x", "parent_run_id": "c", "timestamp": at(8), "model": "m",
     "total_tokens": 40, "output": "done", "tags": ["retry"]},
    {"name": "chain_end", "run_id": "c", "timestamp": at(9), "output": "In Paris."},
    {"name": "chat", "role": "assistant", "content": "In Paris.", "thread_id": "t1", "run_id": "l",
     "message_id": "m2", "timestamp": at(10)},
    {"name": "agent_end", "run_id": "a", "timestamp": at(11), "output": {"answer": "In Paris."}},
    {"name": "feedback", "run_id": "l", "rating": "positive", "timestamp": at(12)},
    {"name": "feedback", "message_id": "m2", "rating": "negative", "comment": "wrong city", "timestamp": at(13)},
    {"name": "saved", "run_id": "c", "timestamp": at(14)},
]  # fmt: skip
TRACE = [{**event, "id": f"e{n}"} for n, event in enumerate(TRACE)]


def rows(queryset, drop: set[str], key: str) -> list[dict]:
    """The rows as dicts, without the columns in `drop` (write times, surrogate keys), sorted by `key`."""
    values = [{k: v for k, v in row.items() if k not in drop} for row in queryset.values()]
    return sorted(values, key=lambda row: str(row[key]))


def state() -> dict:
    """Everything a delivery leaves: runs, their costs and search rows, threads, messages, feedback.

    Surrogate keys and write times are left out: they differ between any two deliveries."""
    return {
        "events": Event.objects.count(),
        "runs": rows(Run.objects.all(), {"id", "app_id", "created_at", "updated_at", "saved_at"}, "run_id"),
        "saved": sorted(Run.objects.filter(saved=True, saved_at__isnull=False).values_list("run_id", flat=True)),
        "costs": rows(RunCost.objects.annotate(key=F("run__run_id")), {"run_id", "app_id"}, "key"),
        "search": sorted(RunSearch.objects.values_list("run__run_id", "text", "full_text")),
        "threads": rows(Thread.objects.all(), {"id", "app_id", "created_at"}, "thread_id"),
        "messages": rows(
            ThreadMessage.objects.annotate(thread_key=F("thread__thread_id")),
            {"id", "app_id", "thread_id"},
            "message_id",
        ),
        "feedback": rows(Feedback.objects.all(), {"id", "app_id"}, "dedup_key"),
    }


def differences(found: dict, clean: dict) -> list[str]:
    """What differs, table by table and column by column, for the failure's message."""
    lines = []
    for table, rows_found in found.items():
        if rows_found == clean[table]:
            continue
        if not isinstance(rows_found, list) or len(rows_found) != len(clean[table]):
            lines.append(f"{table}: {rows_found!r} != {clean[table]!r}")
            continue
        for row, expected in zip(rows_found, clean[table], strict=True):
            if isinstance(row, dict):
                wrong = [col for col in row if row[col] != expected.get(col)]
                lines += [f"{table} {col}: {row[col]!r} != {expected.get(col)!r}" for col in wrong]
            elif row != expected:
                lines.append(f"{table}: {row!r} != {expected!r}")
    return lines


def deliver(app, batches: list[list[dict]], *, worker: bool, applied_after: list[bool]) -> dict:
    """Deliver `batches` in a transaction that is rolled back; returns the state it left."""
    with transaction.atomic():
        for batch, apply_now in zip(batches, applied_after, strict=True):
            ingest(app, *batch)
            if worker and apply_now:
                assemble_pending(limit=4)  # small claims: batch boundaries inside the worker too
        if worker:
            assemble_pending(limit=4)
        found = state()
        transaction.set_rollback(True)
    return found


@st.composite
def deliveries(draw):
    """(batches as delivered, whether the worker runs after each) for some order and cutting of TRACE."""
    order = draw(st.permutations(TRACE))
    cuts = draw(st.lists(st.booleans(), min_size=len(order) - 1, max_size=len(order) - 1))
    batches, current = [], [order[0]]
    for event, cut in zip(order[1:], cuts, strict=True):
        if cut:
            batches.append(current)
            current = []
        current.append(event)
    batches.append(current)
    delivered = []
    for batch in batches:
        delivered += [batch] * draw(st.integers(min_value=1, max_value=3))
    applied_after = draw(st.lists(st.booleans(), min_size=len(delivered), max_size=len(delivered)))
    return delivered, applied_after


@pytest.fixture
def priced(db):
    ModelCost.objects.create(model="m", prompt_price=Decimal("0.01"), completion_price=Decimal("0.02"))


@pytest.mark.parametrize("mode", ["inline", "worker"])
@examples(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(delivery=deliveries())
def test_any_order_batching_and_redelivery_gives_the_clean_delivery(acme_app, priced, settings, mode, delivery):
    settings.OBSERVATORY_ASSEMBLY = mode
    worker = mode == "worker"
    clean = deliver(acme_app, [TRACE], worker=worker, applied_after=[True])
    assert clean["events"] == len(TRACE) and len(clean["runs"]) == 5 and clean["saved"] == ["c"]
    batches, applied_after = delivery
    found = deliver(acme_app, batches, worker=worker, applied_after=applied_after)
    assert found == clean, differences(found, clean)


def test_both_modes_give_the_same_clean_delivery(acme_app, priced, settings):
    found = {}
    for mode in ("inline", "worker"):
        settings.OBSERVATORY_ASSEMBLY = mode
        found[mode] = deliver(acme_app, [TRACE], worker=mode == "worker", applied_after=[True])
    assert found["inline"] == found["worker"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("seed", range(4))
def test_concurrent_workers_give_the_clean_delivery(acme_app, priced, settings, seed):
    """Each event queued alone, in a shuffled order, and three workers applying the queue at once,
    one event per transaction: the same runs, costs, threads, messages and feedback as the clean
    delivery. (The race of two refreshes of one thread is pinned down deterministically in
    tests/threads/test_aggregates.py; here the interleavings are whatever the threads make.)"""
    settings.OBSERVATORY_ASSEMBLY = "worker"
    clean = deliver(acme_app, [TRACE], worker=True, applied_after=[True])
    for event in random.Random(seed).sample(TRACE, len(TRACE)):
        ingest(acme_app, event)
    at_once(lambda: assemble_pending(limit=1), 3)
    assemble_pending()  # events a worker left because another held their run
    found = state()
    assert found == clean, differences(found, clean)
