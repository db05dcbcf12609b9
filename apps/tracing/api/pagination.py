"""Keyset ("cursor") pagination over (sort column, id): stable while runs are inserted, no COUNT(*)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from decimal import Decimal

import orjson
from django.db.models import F, Q, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# How each sort column's values travel in a cursor.
DECODERS = {
    "started_at": datetime.fromisoformat,
    "latency_s": float,
    "cost": Decimal,
    "total_tokens": int,
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


def order_keyset(queryset: QuerySet, ordering: str) -> QuerySet:
    """ORDER BY the sort column then id, in one direction. NULL sorts as the smallest value
    (last when descending) on both databases, matching the indexes' order."""
    column, descending = ordering.lstrip("-"), ordering.startswith("-")
    if descending:
        return queryset.order_by(F(column).desc(nulls_last=True), F("id").desc())
    return queryset.order_by(F(column).asc(nulls_first=True), F("id").asc())


def after(ordering: str, value, last_id: int) -> Q:
    """Rows strictly after (value, last_id) in `ordering`."""
    column, descending = ordering.lstrip("-"), ordering.startswith("-")
    beyond, id_beyond = ("lt", "lt") if descending else ("gt", "gt")
    if value is None:
        same = Q(**{f"{column}__isnull": True, f"id__{id_beyond}": last_id})
        return same if descending else same | Q(**{f"{column}__isnull": False})
    # `column <= value AND (column < value OR id < last)` rather than a plain OR, so that
    # the database can start its index scan at the cursor instead of filtering from the top.
    bound = "lte" if descending else "gte"
    following = Q(**{f"{column}__{bound}": value}) & (
        Q(**{f"{column}__{beyond}": value}) | Q(**{column: value, f"id__{id_beyond}": last_id})
    )
    return (following | Q(**{f"{column}__isnull": True})) if descending else following


class KeysetPagination(BasePagination):
    """`limit` (1-500, default 50) and an opaque `cursor`; the response has `next` and `results`."""

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.ordering = getattr(view, "ordering", "-started_at")
        self.column = self.ordering.lstrip("-")
        self.limit = parse_limit(request.query_params.get("limit"))
        cursor = request.query_params.get("cursor")
        if cursor:
            value, last_id = self.decode(cursor)
            queryset = queryset.filter(after(self.ordering, value, last_id))
        rows = list(order_keyset(queryset, self.ordering)[: self.limit + 1])
        self.has_next = len(rows) > self.limit
        rows = rows[: self.limit]
        self.last = rows[-1] if rows else None
        return rows

    def encode(self, row) -> str:
        value = getattr(row, self.column)
        value = value.isoformat() if isinstance(value, datetime) else None if value is None else str(value)
        payload = orjson.dumps({"o": self.ordering, "v": value, "id": row.pk})
        return base64.urlsafe_b64encode(payload).decode().rstrip("=")

    def decode(self, cursor: str) -> tuple:
        try:
            payload = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            if payload["o"] != self.ordering:
                raise ValidationError({"cursor": ["This cursor was made for another ordering."]})
            value = payload["v"]
            return (None if value is None else DECODERS[self.column](value)), int(payload["id"])
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
