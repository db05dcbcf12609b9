"""The default cost table: list prices of common models, USD per 1,000 tokens.

Loaded once by migration costs.0003 on a new installation; every row is an ordinary,
editable cost row afterwards. `PRICES_TAKEN` is the date the list prices were read from
the providers' pricing pages: check them against your invoices and edit in the admin
(`/admin/costs/modelcost/`) or with `manage.py set_model_cost`.

Columns: model, provider, prompt, completion, cached prompt (None: not offered / same as
prompt), and whether `model` is a pattern (a regular expression matched against the
whole model name, used here for dated snapshots).
"""

from datetime import date

PRICES_TAKEN = date(2025, 11, 1)

# fmt: off
DEFAULT_PRICES = [
    # OpenAI
    ("gpt-5", "OpenAI", "0.00125", "0.01", "0.000125", False),
    ("gpt-5-mini", "OpenAI", "0.00025", "0.002", "0.000025", False),
    ("gpt-5-nano", "OpenAI", "0.00005", "0.0004", "0.000005", False),
    ("gpt-4.1", "OpenAI", "0.002", "0.008", "0.0005", False),
    ("gpt-4.1-mini", "OpenAI", "0.0004", "0.0016", "0.0001", False),
    ("gpt-4.1-nano", "OpenAI", "0.0001", "0.0004", "0.000025", False),
    ("gpt-4o", "OpenAI", "0.0025", "0.01", "0.00125", False),
    (r"gpt-4o-\d{4}-\d{2}-\d{2}", "OpenAI", "0.0025", "0.01", "0.00125", True),
    ("gpt-4o-mini", "OpenAI", "0.00015", "0.0006", "0.000075", False),
    (r"gpt-4o-mini-\d{4}-\d{2}-\d{2}", "OpenAI", "0.00015", "0.0006", "0.000075", True),
    ("o1", "OpenAI", "0.015", "0.06", "0.0075", False),
    ("o3", "OpenAI", "0.002", "0.008", "0.0005", False),
    ("o3-mini", "OpenAI", "0.0011", "0.0044", "0.00055", False),
    ("o4-mini", "OpenAI", "0.0011", "0.0044", "0.000275", False),
    ("gpt-4-turbo", "OpenAI", "0.01", "0.03", None, False),
    ("gpt-4", "OpenAI", "0.03", "0.06", None, False),
    ("gpt-3.5-turbo", "OpenAI", "0.0005", "0.0015", None, False),
    ("text-embedding-3-small", "OpenAI", "0.00002", "0", None, False),
    ("text-embedding-3-large", "OpenAI", "0.00013", "0", None, False),
    # Anthropic (cached: cache reads)
    ("claude-opus-4-5", "Anthropic", "0.005", "0.025", "0.0005", False),
    (r"claude-opus-4-5-\d{8}", "Anthropic", "0.005", "0.025", "0.0005", True),
    ("claude-opus-4-1", "Anthropic", "0.015", "0.075", "0.0015", False),
    (r"claude-opus-4-1-\d{8}", "Anthropic", "0.015", "0.075", "0.0015", True),
    (r"claude-opus-4-\d{8}", "Anthropic", "0.015", "0.075", "0.0015", True),
    ("claude-sonnet-4-5", "Anthropic", "0.003", "0.015", "0.0003", False),
    (r"claude-sonnet-4-5-\d{8}", "Anthropic", "0.003", "0.015", "0.0003", True),
    (r"claude-sonnet-4-\d{8}", "Anthropic", "0.003", "0.015", "0.0003", True),
    ("claude-haiku-4-5", "Anthropic", "0.001", "0.005", "0.0001", False),
    (r"claude-haiku-4-5-\d{8}", "Anthropic", "0.001", "0.005", "0.0001", True),
    (r"claude-3-7-sonnet-\d{8}", "Anthropic", "0.003", "0.015", "0.0003", True),
    (r"claude-3-5-sonnet-\d{8}", "Anthropic", "0.003", "0.015", "0.0003", True),
    (r"claude-3-5-haiku-\d{8}", "Anthropic", "0.0008", "0.004", "0.00008", True),
    (r"claude-3-opus-\d{8}", "Anthropic", "0.015", "0.075", "0.0015", True),
    (r"claude-3-haiku-\d{8}", "Anthropic", "0.00025", "0.00125", "0.00003", True),
    # Google (prompts up to 128K / 200K tokens)
    ("gemini-2.5-pro", "Google", "0.00125", "0.01", "0.000125", False),
    ("gemini-2.5-flash", "Google", "0.0003", "0.0025", "0.00003", False),
    ("gemini-2.5-flash-lite", "Google", "0.0001", "0.0004", "0.00001", False),
    ("gemini-2.0-flash", "Google", "0.0001", "0.0004", "0.000025", False),
    ("gemini-1.5-pro", "Google", "0.00125", "0.005", None, False),
    ("gemini-1.5-flash", "Google", "0.000075", "0.0003", None, False),
    # Mistral
    ("mistral-large-latest", "Mistral", "0.002", "0.006", None, False),
    ("mistral-medium-latest", "Mistral", "0.0004", "0.002", None, False),
    ("mistral-small-latest", "Mistral", "0.0001", "0.0003", None, False),
    ("codestral-latest", "Mistral", "0.0003", "0.0009", None, False),
    ("open-mistral-nemo", "Mistral", "0.00015", "0.00015", None, False),
    # Meta Llama (typical hosted price; providers differ)
    ("llama-3.3-70b-instruct", "Meta", "0.00088", "0.00088", None, False),
    ("llama-3.1-405b-instruct", "Meta", "0.0035", "0.0035", None, False),
    ("llama-3.1-70b-instruct", "Meta", "0.00088", "0.00088", None, False),
    ("llama-3.1-8b-instruct", "Meta", "0.00018", "0.00018", None, False),
    ("llama-4-maverick", "Meta", "0.00027", "0.00085", None, False),
    ("llama-4-scout", "Meta", "0.00018", "0.00059", None, False),
]
# fmt: on


def load_default_prices(model_cost) -> int:
    """Create the default rows that are missing (by model, price always in force); returns how many."""
    from decimal import Decimal

    existing = set(model_cost.objects.filter(valid_from__isnull=True).values_list("model", flat=True))
    rows = [
        model_cost(
            model=model, provider=provider, prompt_price=Decimal(prompt), completion_price=Decimal(completion),
            cached_prompt_price=Decimal(cached) if cached else None, is_pattern=is_pattern, price_date=PRICES_TAKEN,
        )
        for model, provider, prompt, completion, cached, is_pattern in DEFAULT_PRICES
        if model not in existing
    ]  # fmt: skip
    model_cost.objects.bulk_create(rows)
    return len(rows)
