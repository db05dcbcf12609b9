"""Pricing of LLM runs from the cost table (SPEC §4, docs/COSTS.md).

The same function prices a run when its events are written and when stored runs are
recalculated, so both always agree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext

from django.db.models import Q

from apps.costs.models import COST, ModelCost

ZERO = Decimal(0)
THOUSAND = Decimal(1000)
TEN_DECIMALS = Decimal("0.0000000001")


@dataclass(frozen=True, slots=True)
class Usage:
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    started_at: datetime | None
    cached_prompt_tokens: int | None = None
    cache_hit: bool = False


class PriceBook:
    """Cost rows in memory, and the choice of the row that prices a run.

    The row for a model: an exact-name row first; else the matching pattern with the most
    literal characters (the most specific). Among rows of that one name or pattern, the
    one with the latest `valid_from` not after the run's start day.
    """

    def __init__(self, rows: Iterable[ModelCost]) -> None:
        self.rows = list(rows)
        self._exact: dict[str, list[ModelCost]] = defaultdict(list)
        patterns: dict[str, list[ModelCost]] = defaultdict(list)
        for row in self.rows:
            (patterns if row.is_pattern else self._exact)[row.model].append(row)
        for group in (*self._exact.values(), *patterns.values()):
            group.sort(key=lambda r: r.valid_from or date.min, reverse=True)
        # Most specific first; equal specificity: the longer, then the alphabetically first pattern.
        self._patterns = sorted(patterns.values(), key=lambda g: (-g[0].specificity, -len(g[0].model), g[0].model))
        self._matches: dict[str, list[list[ModelCost]]] = {}

    @classmethod
    def for_models(cls, models: Iterable[str | None]) -> PriceBook:
        """The rows that can price these models: their exact rows and every pattern row (one query)."""
        names = {m for m in models if m}
        return cls(ModelCost.objects.filter(Q(model__in=names, is_pattern=False) | Q(is_pattern=True)) if names else [])

    @classmethod
    def everything(cls) -> PriceBook:
        return cls(ModelCost.objects.all())

    def row_for(self, model: str | None, at: datetime | None) -> ModelCost | None:
        if not model:
            return None
        day = at.date() if at else None
        for group in self._candidates(model):
            for row in group:
                if row.valid_from is None or day is None or row.valid_from <= day:
                    return row
        return None

    def _candidates(self, model: str) -> list[list[ModelCost]]:
        if model not in self._matches:
            exact = [self._exact[model]] if model in self._exact else []
            self._matches[model] = exact + [g for g in self._patterns if g[0].matches(model)]
        return self._matches[model]

    def price(self, usage: Usage) -> tuple[Decimal, ModelCost | None]:
        """(cost, row) for an llm run; (0, None) when the model, tokens or a row is missing."""
        # Exact to the cost column's 34 digits: the default 28 would fail to round the largest costs.
        with localcontext(prec=COST["max_digits"] + 6):
            return self._price(usage)

    def _price(self, usage: Usage) -> tuple[Decimal, ModelCost | None]:
        row = self.row_for(usage.model, usage.started_at)
        if row is None:
            return ZERO, None
        if usage.cache_hit:
            return ZERO, row  # the whole response came from the app's own cache: nothing was billed
        if usage.prompt_tokens is not None and usage.completion_tokens is not None:
            cached = min(usage.cached_prompt_tokens or 0, usage.prompt_tokens)
            cached_price = row.cached_prompt_price if row.cached_prompt_price is not None else row.prompt_price
            # Cached tokens are part of prompt_tokens (OpenAI's convention): priced once, at the cached price.
            cost = (
                (usage.prompt_tokens - cached) * row.prompt_price
                + cached * cached_price
                + usage.completion_tokens * row.completion_price
            ) / THOUSAND
        elif usage.total_tokens is not None:
            cost = (
                usage.total_tokens * (row.total_price if row.total_price is not None else row.prompt_price) / THOUSAND
            )
        else:
            return ZERO, None
        # Rounded as the cost column (and the recalculation's SQL ROUND) rounds: half away from zero.
        return cost.quantize(TEN_DECIMALS, rounding=ROUND_HALF_UP), row
