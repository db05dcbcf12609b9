"""Keyset ("cursor") pagination over (sort key, id) for every list of the API: stable while rows are
inserted, a deep page as cheap as the first, no COUNT(*). A list sorted on something other
than a plain column (the runs list) says so by overriding `sort_key`, `tie_key` and `order`."""

from __future__ import annotations

import base64
import binascii
import math
from datetime import UTC, datetime

import orjson
from django.db.models import BooleanField, Expression, F, QuerySet, Value
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
INT64 = range(-(2**63), 2**63)


def bigint(value) -> int:
    number = int(value)
    if number not in INT64:
        raise ValueError("out of the 64-bit range")
    return number


def moment(value: str) -> datetime:
    when = datetime.fromisoformat(value)
    # The database compares in UTC: an offset that moves it past year 1 or 9999 overflows here.
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def finite(value) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


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


class RowAfter(Expression):
    """`(sort_key, id) < (value, last_id)` (or `>` ascending): a row comparison.

    Both databases use it as one index range condition on (sort key, id), so a deep page
    costs the same as the first even inside a long run of equal sort keys (cost 0, say),
    where `key <= v AND (key < v OR id < last)` would scan the whole tie.
    """

    output_field = BooleanField()

    def __init__(self, key, tie, value, last_id: int, *, descending: bool) -> None:
        super().__init__()
        self.key, self.tie, self.value, self.last_id, self.descending = key, tie, value, last_id, descending

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
    """`limit` (1-500, default 50) and an opaque `cursor`; the response has `next` and `results`.

    The view's `ordering` ("-ended_at", ...) names the sort column, one of `decoders`: how
    its values travel in a cursor, each raising ValueError (or OverflowError, ArithmeticError)
    for a value the database could not compare with.
    """

    decoders = {"started_at": moment, "ended_at": moment}

    def sort_key(self, column: str):
        return F(column)

    def tie_key(self, column: str):
        return F("id")

    def order(self, queryset: QuerySet, ordering: str) -> QuerySet:
        """ORDER BY the sort key then the tie key, both in the same direction; rows carry `.sort_key`."""
        column, descending = ordering.lstrip("-"), ordering.startswith("-")
        queryset = queryset.annotate(sort_key=self.sort_key(column), tie_key=self.tie_key(column))
        if descending:
            return queryset.order_by(F("sort_key").desc(), F("tie_key").desc())
        return queryset.order_by(F("sort_key").asc(), F("tie_key").asc())

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.ordering = view.ordering
        self.column = self.ordering.lstrip("-")
        self.limit = parse_limit(request.query_params.get("limit"))
        queryset = self.order(queryset, self.ordering)
        cursor = request.query_params.get("cursor")
        if cursor:
            value, last_id = self.decode(cursor)
            key, tie = self.sort_key(self.column), self.tie_key(self.column)
            queryset = queryset.filter(RowAfter(key, tie, value, last_id, descending=self.ordering.startswith("-")))
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
            return self.decoders[self.column](payload["v"]), bigint(payload["id"])
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
