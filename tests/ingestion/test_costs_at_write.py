"""Cost at write time for llm runs (SPEC §2 and §4)."""

from datetime import date
from decimal import Decimal

import pytest

from apps.costs.models import ModelCost
from tests.helpers import report, run

LLM = {
    "name": "llm_call",
    "run_id": "l",
    "timestamp": "2026-05-29T08:00:00Z",
    "model": "acme-gpt",
    "prompt_tokens": 2000,
    "completion_tokens": 500,
}


@pytest.fixture
def gpt4o(db):
    return ModelCost.objects.create(
        model="acme-gpt", prompt_price=Decimal("0.0025"), completion_price=Decimal("0.01"), total_price=Decimal("0.004")
    )


def test_an_llm_run_with_model_tokens_and_a_row_is_priced(acme_client, gpt4o):
    report(acme_client, LLM)
    llm = run("l")
    assert llm.cost == Decimal("0.01")  # 2 * 0.0025 + 0.5 * 0.01
    assert llm.pricing.cost_row_id == gpt4o.pk


def test_tokens_and_model_can_come_from_metadata(acme_client, gpt4o):
    meta = {"model": "acme-gpt", "prompt_tokens": 2000, "completion_tokens": 500}
    report(acme_client, {"name": "llm_call", "run_id": "l", "timestamp": "2026-05-29T08:00:00Z", "metadata": meta})
    assert run("l").cost == Decimal("0.01")


def test_total_only_events_use_the_blended_price(acme_client, gpt4o):
    report(acme_client, {**LLM, "prompt_tokens": None, "completion_tokens": None, "total_tokens": 1000})
    assert run("l").cost == Decimal("0.004")


def test_total_only_events_fall_back_to_the_prompt_price(acme_client, gpt4o):
    gpt4o.total_price = None
    gpt4o.save()
    report(acme_client, {**LLM, "prompt_tokens": None, "completion_tokens": None, "total_tokens": 1000})
    assert run("l").cost == Decimal("0.0025")


@pytest.mark.parametrize(
    "change",
    [
        {"model": None},
        {"model": "unknown-model"},
        {"prompt_tokens": None, "completion_tokens": None},
        {"completion_tokens": None},
        {"name": "tool_call", "type": "tool"},
    ],
    ids=["no-model", "no-cost-row", "no-tokens", "prompt-only", "not-llm"],
)
def test_anything_missing_means_cost_zero_and_the_run_still_shows(acme_client, gpt4o, change):
    report(acme_client, {**LLM, **change})
    llm = run("l")
    assert llm.cost == 0 and llm.pricing.cost_row_id is None


def test_the_price_in_force_at_the_runs_start_applies(acme_client):
    ModelCost.objects.create(model="m", prompt_price=Decimal("1"), completion_price=Decimal("1"))
    ModelCost.objects.create(
        model="m", prompt_price=Decimal("2"), completion_price=Decimal("2"), valid_from=date(2026, 5, 1)
    )
    ModelCost.objects.create(
        model="m", prompt_price=Decimal("3"), completion_price=Decimal("3"), valid_from=date(2026, 6, 1)
    )
    base = {**LLM, "model": "m", "prompt_tokens": 1000, "completion_tokens": 0}
    report(
        acme_client,
        {**base, "run_id": "april", "timestamp": "2026-04-30T23:59:59Z"},
        {**base, "run_id": "may-first", "timestamp": "2026-05-01T00:00:00Z"},
        {**base, "run_id": "may-last", "timestamp": "2026-05-31T23:59:59Z"},
        {**base, "run_id": "june", "timestamp": "2026-06-01T00:00:00Z"},
    )
    assert [run(r).cost for r in ("april", "may-first", "may-last", "june")] == [1, 2, 2, 3]


def test_the_cost_follows_the_start_when_it_arrives_after_the_end(acme_client):
    ModelCost.objects.create(model="m", prompt_price=Decimal("1"), completion_price=Decimal("1"))
    ModelCost.objects.create(
        model="m", prompt_price=Decimal("2"), completion_price=Decimal("2"), valid_from=date(2026, 6, 1)
    )
    report(
        acme_client,
        {
            "name": "llm_end",
            "run_id": "x",
            "timestamp": "2026-06-01T00:00:05Z",
            "model": "m",
            "prompt_tokens": 1000,
            "completion_tokens": 0,
        },
    )
    assert run("x").cost == 2
    report(acme_client, {"name": "llm_start", "run_id": "x", "timestamp": "2026-05-31T23:59:58Z"})
    assert run("x").cost == 1


def test_the_largest_token_counts_at_the_highest_price_are_stored_and_listed(acme_client, db):
    # 2^53 - 1 tokens at the highest price the cost table holds: the largest cost a run can have.
    ModelCost.objects.create(
        model="dear", prompt_price=Decimal("999999.99999999"), completion_price=Decimal("999999.99999999")
    )
    biggest = 2**53 - 1
    report(acme_client, {**LLM, "model": "dear", "prompt_tokens": biggest, "completion_tokens": biggest})
    listed = acme_client.get("/api/run/").json()["results"][0]
    assert listed["cost"] == pytest.approx(2 * biggest * 999999.99999999 / 1000)
