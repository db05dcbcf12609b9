"""SQL helpers of the ingestion write path: multi-row upserts and advisory locks.

Django's bulk_create splits SQLite inserts every 999 parameters (its conservative default)
and builds model instances; the batch path instead writes plain tuples in as few
statements as the database allows, with the same SQL on PostgreSQL and SQLite.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from django.db import connection, models

# Bound parameters one statement may carry (SQLite >= 3.32 and PostgreSQL's protocol limit).
MAX_PARAMS = {"sqlite": 32766, "postgresql": 65535}


def db_value(field: models.Field, value: Any) -> Any:
    """A Python value as the database driver wants it for `field` (JSON as text, datetimes adapted)."""
    if value is None:
        return None
    if isinstance(field, models.JSONField):
        return orjson.dumps(value).decode()
    return field.get_db_prep_save(value, connection)


def upsert(
    model: type[models.Model],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    conflict: Sequence[str],
    update: Sequence[str] = (),
    keep: Sequence[str] = (),
    returning: Sequence[str] = (),
) -> list[tuple]:
    """INSERT rows (already database values) into `model`; on a conflict update `update`, or do nothing.

    Columns in `keep` are updated only with a non-null value (COALESCE), so a concurrent
    writer's value survives a merge made from an older read.
    """
    if not rows:
        return []
    fields = [model._meta.get_field(name) for name in columns]
    jsonb = connection.vendor == "postgresql"
    placeholder = (
        "("
        + ", ".join("CAST(%s AS jsonb)" if jsonb and isinstance(f, models.JSONField) else "%s" for f in fields)
        + ")"
    )
    quote = connection.ops.quote_name
    head = f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) VALUES "
    target = ", ".join(quote(model._meta.get_field(name).column) for name in conflict)
    if update:
        table = quote(model._meta.db_table)
        sets = ", ".join(
            f"{quote(column)} = COALESCE(excluded.{quote(column)}, {table}.{quote(column)})"
            if name in keep
            else f"{quote(column)} = excluded.{quote(column)}"
            for name, column in ((n, model._meta.get_field(n).column) for n in update)
        )
        tail = f" ON CONFLICT ({target}) DO UPDATE SET {sets}"
    else:
        tail = f" ON CONFLICT ({target}) DO NOTHING"
    if returning:
        tail += f" RETURNING {', '.join(quote(column) for column in returning)}"
    per_statement = max(1, MAX_PARAMS.get(connection.vendor, 999) // len(columns))
    results: list[tuple] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            sql = head + ", ".join([placeholder] * len(chunk)) + tail
            cursor.execute(sql, [value for row in chunk for value in row])
            if returning:
                results += cursor.fetchall()
    return results


def advisory_lock(names: Iterable[str]) -> None:
    """Hold a lock on each name until the transaction ends (PostgreSQL; a no-op on SQLite).

    Batches merge rows in Python from what is stored, so two batches touching the same run
    or conversation at once must take turns. Transaction-scoped advisory locks, taken in
    sorted order so two batches cannot deadlock, also cover rows that do not exist yet,
    which row locks cannot. SQLite needs nothing: its IMMEDIATE transactions already let
    one writer in at a time.
    """
    if connection.vendor != "postgresql":
        return
    keys = sorted({_lock_key(name) for name in names})
    if keys:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k ORDER BY k", [keys])


def _lock_key(name: str) -> int:
    # A hash collision only makes two unrelated batches wait for each other.
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
