"""How the selectors run: work_mem raised for their transaction, and the page's reads at once on PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction
from django.http import QueryDict

from apps.analytics.selectors import agent_stats, analytics_filter, answer, answer_all, model_stats, top_errors, usage
from tests.analytics.conftest import WINDOW

SELECTORS = (usage, model_stats, agent_stats, top_errors)


def work_mem(query) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW work_mem")
        return cursor.fetchone()[0]


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has no work_mem, and answer_all runs its reads in turn there")


@pytest.mark.django_db(transaction=True)
def test_a_selector_runs_with_the_analytics_work_mem(postgres_only, dataset, settings):
    settings.OBSERVATORY_ANALYTICS_WORK_MEM_MB = 48
    query = analytics_filter(dataset, QueryDict(WINDOW))
    with transaction.atomic():
        assert answer(query, work_mem) == "48MB"
        assert work_mem(query) == "48MB"  # until the end of the transaction...
    assert work_mem(query) != "48MB"  # ...and not after it


@pytest.mark.django_db(transaction=True)
def test_the_pages_reads_run_at_once_and_answer_as_in_turn(postgres_only, dataset):
    query = analytics_filter(dataset, QueryDict(WINDOW))
    threads = set()

    def noting_the_thread(selector):
        def run(query):
            threads.add(threading.current_thread().name)
            return selector(query), work_mem(query)

        return run

    together = answer_all(query, *(noting_the_thread(selector) for selector in SELECTORS))
    assert threads and all(name.startswith("analytics") for name in threads)  # not this thread
    assert [mem for _, mem in together] == ["64MB"] * len(SELECTORS)
    with transaction.atomic():  # inside a transaction: in turn, on this thread's connection
        in_turn = answer_all(query, *SELECTORS)
    assert [figures for figures, _ in together] == in_turn
    assert in_turn[0] and in_turn[1] and in_turn[2] and in_turn[3]  # the data set has figures for each
