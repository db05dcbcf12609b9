"""Which cost row prices a run, and how: through the real ingestion path (docs/COSTS.md)."""

from datetime import date
from decimal import Decimal

import pytest

from apps.costs.models import ModelCost
from tests.helpers import ingest, run


def price(model: str, prompt: str, *, valid_from=None, pattern=False, cached=None, completion=None) -> ModelCost:
    return ModelCost.objects.create(
        model=model, prompt_price=Decimal(prompt), completion_price=Decimal(completion or prompt),
        valid_from=valid_from, is_pattern=pattern, cached_prompt_price=Decimal(cached) if cached else None,
    )  # fmt: skip


def cost_of(app, model: str, *, at="2026-05-01T10:00:00Z", **tokens) -> tuple[Decimal, ModelCost | None]:
    """The cost of a new llm run of `model`, and the row that priced it."""
    tokens = tokens or {"prompt_tokens": 1000, "completion_tokens": 0}
    run_id = f"{model}-{at}-{sorted(tokens.items())}"
    ingest(app, {"name": "llm_call", "run_id": run_id[:128], "timestamp": at, "model": model, **tokens})
    priced = run(run_id[:128])
    return priced.cost, ModelCost.objects.filter(pk=priced.pricing.cost_row_id).first()


def test_an_exact_row_beats_a_matching_pattern(acme_app):
    exact = price("gpt-4o", "1")
    price(r"gpt-4o.*", "2", pattern=True)
    assert cost_of(acme_app, "gpt-4o") == (Decimal(1), exact)


def test_a_pattern_prices_dated_snapshots(acme_app):
    snapshots = price(r"gpt-4o-\d{4}-\d{2}-\d{2}", "2", pattern=True)
    price("gpt-4o", "1")
    assert cost_of(acme_app, "gpt-4o-2024-08-06") == (Decimal(2), snapshots)
    assert cost_of(acme_app, "gpt-4o-2024-08-06-extra")[1] is None  # the whole name must match


def test_the_more_specific_pattern_beats_the_looser_one(acme_app):
    price(r"gpt-4o.*", "1", pattern=True)
    mini = price(r"gpt-4o-mini.*", "3", pattern=True)
    assert cost_of(acme_app, "gpt-4o-mini-2024-07-18") == (Decimal(3), mini)
    assert cost_of(acme_app, "gpt-4o-2024-08-06")[0] == Decimal(1)


def test_among_rows_of_one_model_the_latest_valid_from_not_after_the_start_wins(acme_app):
    price("m", "1")
    may = price("m", "2", valid_from=date(2026, 5, 1))
    price("m", "3", valid_from=date(2026, 6, 1))
    assert cost_of(acme_app, "m", at="2026-04-30T23:59:59Z")[0] == Decimal(1)
    assert cost_of(acme_app, "m", at="2026-05-01T00:00:00Z") == (Decimal(2), may)
    assert cost_of(acme_app, "m", at="2026-05-31T23:59:59Z")[0] == Decimal(2)
    assert cost_of(acme_app, "m", at="2026-06-01T00:00:00Z")[0] == Decimal(3)


def test_an_exact_row_not_yet_in_force_falls_back_to_a_pattern(acme_app):
    price("m-1", "5", valid_from=date(2026, 6, 1))
    price(r"m-\d", "1", pattern=True)
    assert cost_of(acme_app, "m-1", at="2026-05-15T00:00:00Z")[0] == Decimal(1)
    assert cost_of(acme_app, "m-1", at="2026-06-15T00:00:00Z")[0] == Decimal(5)


def test_pattern_rows_have_valid_from_too(acme_app):
    price(r"p-.*", "1", pattern=True)
    price(r"p-.*", "2", pattern=True, valid_from=date(2026, 5, 2))
    assert cost_of(acme_app, "p-x", at="2026-05-01T00:00:00Z")[0] == Decimal(1)
    assert cost_of(acme_app, "p-x", at="2026-05-02T00:00:00Z")[0] == Decimal(2)


@pytest.mark.parametrize(
    "tokens,expected",
    [
        # 1000 prompt tokens of which 400 cached, 100 completion: 600 * 0.01 + 400 * 0.001 + 100 * 0.02 (per 1K)
        ({"prompt_tokens": 1000, "completion_tokens": 100, "cached_prompt_tokens": 400}, Decimal("0.0084")),
        ({"prompt_tokens": 1000, "completion_tokens": 100, "metadata": {"cached_prompt_tokens": 400}},
         Decimal("0.0084")),
        ({"usage": {"prompt_tokens": 1000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 400}}},
         Decimal("0.0084")),
        ({"prompt_tokens": 1000, "completion_tokens": 100}, Decimal("0.012")),
        ({"prompt_tokens": 1000, "completion_tokens": 100, "cached_prompt_tokens": 1000}, Decimal("0.003")),
    ],
    ids=["top-level", "metadata", "openai-usage", "no-cache", "all-cached"],
)  # fmt: skip
def test_cached_prompt_tokens_are_priced_once_at_the_cached_price(acme_app, tokens, expected):
    price("m", "0.01", completion="0.02", cached="0.001")
    assert cost_of(acme_app, "m", **tokens)[0] == expected


def test_without_a_cached_price_cached_tokens_cost_the_prompt_price_not_twice(acme_app):
    price("m", "0.01", completion="0.02")
    assert cost_of(acme_app, "m", prompt_tokens=1000, completion_tokens=0, cached_prompt_tokens=500)[0] == Decimal(
        "0.01"
    )


def test_cached_tokens_above_prompt_tokens_are_rejected(acme_client):
    from tests.helpers import report

    response = report(
        acme_client,
        {"name": "llm_call", "run_id": "x", "model": "m", "prompt_tokens": 10, "cached_prompt_tokens": 11},
        expect=207,
    )
    assert response.json()["errors"][0]["error"].startswith("cached_prompt_tokens: ")


def test_a_cache_hit_costs_nothing(acme_app):
    price("m", "1")
    assert cost_of(acme_app, "m", prompt_tokens=1000, completion_tokens=10, metadata={"cache_hit": True})[0] == 0
    assert cost_of(acme_app, "m", prompt_tokens=1000, completion_tokens=10, metadata={"cache_hit": "yes"})[0] > 0


def test_total_only_events(acme_app):
    row = price("m", "0.01")
    assert cost_of(acme_app, "m", total_tokens=1000)[0] == Decimal("0.01")
    row.total_price = Decimal("0.005")
    row.save()
    assert cost_of(acme_app, "m", total_tokens=2000)[0] == Decimal("0.01")
