"""Thread aggregates stay right whatever the order and however often events are delivered."""

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.costs.models import ModelCost
from apps.threads.models import Thread
from tests.helpers import ingest, uncommitted_batch

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


@pytest.fixture
def priced(db):
    ModelCost.objects.create(model="m", prompt_price=Decimal("0.001"), completion_price=Decimal("0.002"))


MESSAGES = [
    {"name": "chat", "role": "user", "content": "hello", "thread_id": "t", "timestamp": at(0), "message_id": "m1"},
    {"name": "chat", "role": "assistant", "content": "hi! how can I help?", "thread_id": "t", "timestamp": at(1),
     "message_id": "m2", "run_id": "agent-1"},
    {"name": "chat", "role": "user", "content": "the weather?", "thread_id": "t", "timestamp": at(2),
     "message_id": "m3", "model": "m", "prompt_tokens": 1000, "completion_tokens": 0},
]  # fmt: skip
TRACE = [
    {"name": "agent_start", "run_id": "agent-1", "timestamp": at(0.5)},
    {"name": "llm_call", "run_id": "llm-1", "parent_run_id": "agent-1", "timestamp": at(0.9), "model": "m",
     "prompt_tokens": 1000, "completion_tokens": 500},
    {"name": "agent_end", "run_id": "agent-1", "timestamp": at(1)},
]  # fmt: skip


def summary() -> tuple:
    t = Thread.objects.get(thread_id="t")
    return t.message_count, t.started_at, t.ended_at, t.total_tokens, t.total_cost, t.preview


EXPECTED = (3, T0, T0 + timedelta(minutes=2), 2500, Decimal("0.003"), "the weather?")


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_aggregates_are_the_same_in_any_order(acme_app, priced, order):
    # Each message and the trace arrive in separate batches, in every order of the messages.
    for index in order:
        ingest(acme_app, MESSAGES[index])
    ingest(acme_app, *TRACE)
    # 1,500 tokens / $0.002 from the linked agent run's trace, 1,000 / $0.001 carried by m3.
    assert summary() == EXPECTED


def test_aggregates_follow_a_run_that_arrives_after_its_message(acme_app, priced):
    ingest(acme_app, *MESSAGES)
    assert summary()[3:5] == (1000, Decimal("0.001"))
    ingest(acme_app, *TRACE)
    assert summary() == EXPECTED


def test_redelivery_changes_no_aggregate(acme_app, priced):
    ingest(acme_app, *MESSAGES, *TRACE)
    ingest(acme_app, *MESSAGES, *TRACE)
    ingest(acme_app, MESSAGES[0], MESSAGES[0])
    assert summary() == EXPECTED


def test_a_run_linked_by_two_messages_is_counted_once(acme_app, priced):
    twice = [{**MESSAGES[1], "message_id": "again", "timestamp": at(1.5), "content": "and again"}]
    ingest(acme_app, *MESSAGES, *TRACE, *twice)
    assert summary()[3:5] == (2500, Decimal("0.003"))


def test_the_preview_is_the_last_message_cut_to_200_characters(acme_app):
    ingest(acme_app, {"name": "chat", "role": "assistant", "thread_id": "t", "content": {"text": "x" * 500}})
    preview = Thread.objects.get().preview
    assert len(preview) == 200 and preview.startswith('{"text":"xxx')


@pytest.mark.django_db(transaction=True)
def test_two_batches_adding_runs_to_one_thread_at_once_are_both_counted(acme_app):
    """Two workers apply runs of one linked trace at once: each refreshes the thread from what it
    sees, and the second must see the first's runs, not overwrite the totals with its older view."""
    ingest(
        acme_app,
        {"name": "agent_start", "run_id": "a", "timestamp": "2026-05-01T10:00:00Z"},
        {"name": "chat", "role": "user", "content": "hi", "thread_id": "t", "run_id": "a",
         "timestamp": "2026-05-01T10:00:01Z"},
    )  # fmt: skip
    child = {"name": "llm_call", "parent_run_id": "a", "model": "m", "timestamp": "2026-05-01T10:00:02Z"}
    with uncommitted_batch(acme_app, {**child, "run_id": "r1", "total_tokens": 100}) as release:
        release()  # the second batch runs into the first's thread meanwhile
        ingest(acme_app, {**child, "run_id": "r2", "total_tokens": 50})
    assert Thread.objects.get().total_tokens == 150
