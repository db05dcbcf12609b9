"""Keyset ("cursor") pagination over (sort column, id): stable while runs are inserted, no COUNT(*)."""

from __future__ import annotations

import base64
import binascii
import math
from datetime import UTC, datetime
from decimal import Decimal

import orjson
from django.db.models import BooleanField, Expression, F, QuerySet, Value
from django.db.models.functions import Coalesce
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from apps.costs.models import COST

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
INT64 = range(-(2**63), 2**63)
MAX_COST = Decimal(10) ** (COST["max_digits"] - COST["decimal_places"])  # the cost columns' range


def _bigint(value) -> int:
    number = int(value)
    if number not in INT64:
        raise ValueError("out of the 64-bit range")
    return number


def _when(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    # The database compares in UTC: an offset that moves it past year 1 or 9999 overflows here.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _latency(value) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def _cost(value) -> Decimal:
    number = Decimal(value)
    if not number.is_finite() or abs(number) >= MAX_COST:
        raise ValueError("not a cost")
    return number


# How each sort column's values travel in a cursor; each raises ValueError (or
# OverflowError, ArithmeticError) for a value the database could not compare with.
DECODERS = {
    "started_at": _when,
    "ended_at": _when,
    "latency_s": _latency,  # the sort key: -1 for no latency
    "cost": _cost,
    "total_tokens": _bigint,
}


def parse_limit(raw: str | None) -> int:
    if raw in (None, ""):
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise ValidationError({"limit": ["Must be an integer."]}) from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError({"limit": [f"Must be between 1 and {MAX_LIMIT}."]})
    return limit


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


def order_keyset(queryset: QuerySet, ordering: str) -> QuerySet:
    """ORDER BY the sort key then the tie key, both in the same direction; rows carry `.sort_key`."""
    column, descending = ordering.lstrip("-"), ordering.startswith("-")
    queryset = queryset.annotate(sort_key=sort_key(column), tie_key=tie_key(column))
    if column == "cost":
        # An inner join constrained on RunCost's own app column lets the database walk its index.
        queryset = queryset.filter(pricing__app=F("app"))
    if descending:
        return queryset.order_by(F("sort_key").desc(), F("tie_key").desc())
    return queryset.order_by(F("sort_key").asc(), F("tie_key").asc())


class RowAfter(Expression):
    """`(sort_key, id) < (value, last_id)` (or `>` ascending): a row comparison.

    Both databases use it as one index range condition on (sort key, id), so a deep page
    costs the same as the first even inside a long run of equal sort keys (cost 0, say),
    where `key <= v AND (key < v OR id < last)` would scan the whole tie.
    """

    output_field = BooleanField()

    def __init__(self, column: str, value, last_id: int, *, descending: bool) -> None:
        super().__init__()
        self.key, self.tie, self.value, self.last_id, self.descending = (
            sort_key(column), tie_key(column), value, last_id, descending
        )  # fmt: skip

    def resolve_expression(self, query=None, allow_joins=True, reuse=None, summarize=False, for_save=False):
        clone = self.copy()
        clone.key = self.key.resolve_expression(query, allow_joins, reuse, summarize, for_save)
        clone.row_id = self.tie.resolve_expression(query, allow_joins, reuse, summarize, for_save)
        clone.bound = Value(self.value, output_field=clone.key.output_field)
        return clone

    def as_sql(self, compiler, connection):
        key_sql, key_params = compiler.compile(self.key)
        id_sql, id_params = compiler.compile(self.row_id)
        value_sql, value_params = compiler.compile(self.bound)
        op = "<" if self.descending else ">"
        return f"({key_sql}, {id_sql}) {op} ({value_sql}, %s)", [*key_params, *id_params, *value_params, self.last_id]


class KeysetPagination(BasePagination):
    """`limit` (1-500, default 50) and an opaque `cursor`; the response has `next` and `results`."""

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.ordering = getattr(view, "ordering", "-started_at")
        self.column = self.ordering.lstrip("-")
        self.limit = parse_limit(request.query_params.get("limit"))
        queryset = order_keyset(queryset, self.ordering)
        cursor = request.query_params.get("cursor")
        if cursor:
            value, last_id = self.decode(cursor)
            after = RowAfter(self.column, value, last_id, descending=self.ordering.startswith("-"))
            queryset = queryset.filter(after)
        rows = list(queryset[: self.limit + 1])
        self.has_next = len(rows) > self.limit
        rows = rows[: self.limit]
        self.last = rows[-1] if rows else None
        return rows

    def encode(self, row) -> str:
        value = row.sort_key
        value = value.isoformat() if isinstance(value, datetime) else str(value)
        payload = orjson.dumps({"o": self.ordering, "v": value, "id": row.pk})
        return base64.urlsafe_b64encode(payload).decode().rstrip("=")

    def decode(self, cursor: str) -> tuple:
        try:
            payload = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            if payload["o"] != self.ordering:
                raise ValidationError({"cursor": ["This cursor was made for another ordering."]})
            return DECODERS[self.column](payload["v"]), _bigint(payload["id"])
        except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError, ArithmeticError):
            raise ValidationError({"cursor": ["Invalid cursor."]}) from None

    def next_link(self) -> str | None:
        if not self.has_next or self.last is None:
            return None
        return replace_query_param(self.request.build_absolute_uri(), "cursor", self.encode(self.last))

    def get_paginated_response(self, data):
        return Response({"next": self.next_link(), "results": data})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results"],
            "properties": {"next": {"type": "string", "nullable": True, "format": "uri"}, "results": schema},
        }

    def get_schema_operation_parameters(self, view):
        return [
            {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "default": 50},
             "description": f"Page size, 1 to {MAX_LIMIT}."},
            {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "The `next` link's cursor."},
        ]  # fmt: skip
