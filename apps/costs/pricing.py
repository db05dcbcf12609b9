"""Pricing of LLM runs from the cost table (SPEC §4)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from apps.costs.models import ModelCost

ZERO = Decimal(0)
THOUSAND = Decimal(1000)


@dataclass(frozen=True, slots=True)
class Usage:
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    started_at: datetime | None


class PriceBook:
    """The cost rows for a set of models, loaded in one query, picking the row in force at a time."""

    def __init__(self, rows: Iterable[ModelCost]) -> None:
        self._rows: dict[str, list[ModelCost]] = defaultdict(list)
        for row in rows:
            self._rows[row.model].append(row)
        for candidates in self._rows.values():
            # Latest valid_from first; a row without valid_from applies from the beginning of time.
            candidates.sort(key=lambda r: r.valid_from or date.min, reverse=True)

    @classmethod
    def for_models(cls, models: Iterable[str]) -> PriceBook:
        names = {m for m in models if m}
        return cls(ModelCost.objects.filter(model__in=names) if names else [])

    def row_for(self, model: str | None, at: datetime | None) -> ModelCost | None:
        day = at.date() if at else None
        for row in self._rows.get(model or "", ()):
            if row.valid_from is None or day is None or row.valid_from <= day:
                return row
        return None

    def price(self, usage: Usage) -> tuple[Decimal, ModelCost | None]:
        """(cost, row) for an llm run; (0, None) when the model, tokens or a row is missing."""
        row = self.row_for(usage.model, usage.started_at)
        if row is None:
            return ZERO, None
        if usage.prompt_tokens is not None and usage.completion_tokens is not None:
            cost = (usage.prompt_tokens * row.prompt_price + usage.completion_tokens * row.completion_price) / THOUSAND
        elif usage.total_tokens is not None:
            cost = (
                usage.total_tokens * (row.total_price if row.total_price is not None else row.prompt_price) / THOUSAND
            )
        else:
            return ZERO, None
        return cost, row
