"""The runs list's keyset pagination: its sort keys are expressions, and cost lives in RunCost."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import F, QuerySet, Value
from django.db.models.functions import Coalesce

from apps.costs.models import COST
from apps.tenancy.api.pagination import KeysetPagination, bigint, finite

MAX_COST = Decimal(10) ** (COST["max_digits"] - COST["decimal_places"])  # the cost columns' range


def cost(value) -> Decimal:
    number = Decimal(value)
    if not number.is_finite() or abs(number) >= MAX_COST:
        raise ValueError("not a cost")
    return number


def sort_key(column: str):
    """The expression a list is sorted on. NULL latency and tokens (unfinished and non-LLM runs)
    sort as -1, below every real value: a NOT NULL key needs no NULLS FIRST/LAST clause, so
    one plain expression index (Run.Meta) serves both directions and every cursor. Cost lives
    in RunCost, sorted by that table's own (app, cost, run) index."""
    if column in ("latency_s", "total_tokens"):
        return Coalesce(F(column), Value(-1.0 if column == "latency_s" else -1))
    if column == "cost":
        return F("pricing__cost")
    return F(column)


def tie_key(column: str):
    """The unique second sort key: the run's id, taken from the same table as the sort key so that
    one index holds both (for cost, RunCost's `run`, which is the run's id)."""
    return F("pricing__run") if column == "cost" else F("id")


class RunPagination(KeysetPagination):
    decoders = {
        **KeysetPagination.decoders,
        "latency_s": finite,  # the sort key: -1 for no latency
        "cost": cost,
        "total_tokens": bigint,
    }

    def sort_key(self, column: str):
        return sort_key(column)

    def tie_key(self, column: str):
        return tie_key(column)

    def order(self, queryset: QuerySet, ordering: str) -> QuerySet:
        if ordering.lstrip("-") == "cost":
            # An inner join constrained on RunCost's own app column lets the database walk its index.
            queryset = queryset.filter(pricing__app=F("app"))
        return super().order(queryset, ordering)


def order_keyset(queryset: QuerySet, ordering: str) -> QuerySet:
    """The runs in `ordering` as the runs list pages them (rows carry `.sort_key`, `.tie_key`)."""
    return RunPagination().order(queryset, ordering)
