from decimal import Decimal

from apps.costs.default_prices import DEFAULT_PRICES, PRICES_TAKEN, load_default_prices
from apps.costs.models import ModelCost
from apps.costs.pricing import PriceBook
from apps.ingestion.management.commands.load_demo import DEMO_MODELS


def test_the_default_table_loads_once_with_its_price_date(db):
    assert load_default_prices(ModelCost) == len(DEFAULT_PRICES)
    assert load_default_prices(ModelCost) == 0
    assert set(ModelCost.objects.values_list("price_date", flat=True)) == {PRICES_TAKEN}
    providers = set(ModelCost.objects.values_list("provider", flat=True))
    assert {"OpenAI", "Anthropic", "Google", "Mistral", "Meta"} <= providers


def test_default_patterns_compile_and_price_dated_snapshots(db):
    load_default_prices(ModelCost)
    for row in ModelCost.objects.filter(is_pattern=True):
        row.full_clean()
    book = PriceBook.everything()
    assert book.row_for("gpt-4o-2024-08-06", None).model == r"gpt-4o-\d{4}-\d{2}-\d{2}"
    assert book.row_for("gpt-4o-mini-2024-07-18", None).prompt_price == Decimal("0.00015")
    assert book.row_for("claude-3-5-sonnet-20241022", None).completion_price == Decimal("0.015")
    assert all(book.row_for(model, None) for model in DEMO_MODELS)
