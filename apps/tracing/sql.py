"""SQL helpers of the ingestion write path: set-based upserts and updates, advisory locks.

A batch is written with one statement per table whatever its size. On PostgreSQL the rows
travel as one array per column, unnested by the server (`INSERT ... SELECT * FROM
unnest(...)`): the SQL text stays short and constant, and psycopg sends the values in
binary instead of quoting thousands of them into the statement. SQLite gets a multi-row
VALUES list (split only past its 32,766-parameter limit).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from django.db import connection, models

SQLITE_MAX_PARAMS = 32766


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _prepare(fields: list[models.Field], rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows of Python values as the driver takes them: JSON as text; on SQLite, Django's adaptation."""
    postgres = connection.vendor == "postgresql"
    converters = [
        _json
        if isinstance(f, models.JSONField)
        else None
        if postgres
        else (lambda value, f=f: None if value is None else f.get_db_prep_save(value, connection))
        for f in fields
    ]
    return [[convert(value) if convert else value for convert, value in zip(converters, row, strict=True)]
            for row in rows]  # fmt: skip


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
    """INSERT rows of Python values into `model`; on a conflict update `update`, or do nothing.

    Columns in `keep` are updated only with a non-null value (COALESCE), so a concurrent
    writer's value survives a merge made from an older read.
    """
    if not rows:
        return []
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    fields = [model._meta.get_field(name) for name in columns]
    names = ", ".join(quote(f.column) for f in fields)
    target = ", ".join(quote(model._meta.get_field(name).column) for name in conflict)
    tail = f" ON CONFLICT ({target}) DO NOTHING"
    if update:
        sets = ", ".join(
            f"{quote(column)} = COALESCE(excluded.{quote(column)}, {table}.{quote(column)})"
            if name in keep
            else f"{quote(column)} = excluded.{quote(column)}"
            for name, column in ((n, model._meta.get_field(n).column) for n in update)
        )
        tail = f" ON CONFLICT ({target}) DO UPDATE SET {sets}"
    if returning:
        tail += f" RETURNING {', '.join(quote(column) for column in returning)}"
    values = _prepare(fields, rows)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            arrays = ", ".join(f"%b::{_array_type(f)}" for f in fields)  # %b: binary arrays, no escaping
            columns_of_values = [list(column) for column in zip(*values, strict=True)]
            cursor.execute(f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}){tail}", columns_of_values)
            return cursor.fetchall() if returning else []
        results: list[tuple] = []
        per_statement = max(1, SQLITE_MAX_PARAMS // len(columns))
        placeholder = "(" + ", ".join(["%s"] * len(columns)) + ")"
        for start in range(0, len(values), per_statement):
            chunk = values[start : start + per_statement]
            sql = f"INSERT INTO {table} ({names}) VALUES {', '.join([placeholder] * len(chunk))}{tail}"
            cursor.execute(sql, [value for row in chunk for value in row])
            if returning:
                results += cursor.fetchall()
        return results


def update_rows(model: type[models.Model], columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """UPDATE rows of `model` by primary key: each row is (pk, *values of `columns`), one statement.

    What `bulk_update` does, without its CASE WHEN per row and column, whose building in
    Python cost ten times the statement (50 ms for 55 threads, docs/PERFORMANCE.md).
    """
    if not rows:
        return
    quote = connection.ops.quote_name
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    fields = [model._meta.pk, *(model._meta.get_field(name) for name in columns)]
    values = _prepare(fields, rows)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            names = ", ".join(quote(f.column) for f in fields)
            sets = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in fields[1:])
            arrays = ", ".join(f"%b::{_array_type(f)}" for f in fields)
            cursor.execute(
                f"UPDATE {table} SET {sets} FROM unnest({arrays}) AS v({names}) WHERE {table}.{pk} = v.{pk}",
                [list(column) for column in zip(*values, strict=True)],
            )
            return
        sets = ", ".join(f"{quote(f.column)} = v.column{i}" for i, f in enumerate(fields[1:], start=2))
        placeholder = "(" + ", ".join(["%s"] * len(fields)) + ")"
        per_statement = max(1, SQLITE_MAX_PARAMS // len(fields))
        for start in range(0, len(values), per_statement):
            chunk = values[start : start + per_statement]
            cursor.execute(
                f"UPDATE {table} SET {sets} FROM (VALUES {', '.join([placeholder] * len(chunk))}) AS v "
                f"WHERE {table}.{pk} = v.column1",
                [value for row in chunk for value in row],
            )


def _array_type(field: models.Field) -> str:
    # JSON travels as text and is parsed by the cast; every other type as itself (a foreign key
    # as its target's type).
    return "jsonb[]" if isinstance(field, models.JSONField) else f"{field.db_type(connection)}[]"


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


def try_advisory_lock(names: Iterable[str]) -> set[str]:
    """Like `advisory_lock` without waiting: takes the free locks, returns the names held by others.

    Nothing is ever waited for, so no order is needed. On SQLite every name is free.
    """
    if connection.vendor != "postgresql":
        return set()
    by_key: dict[int, list[str]] = {}
    for name in names:
        by_key.setdefault(_lock_key(name), []).append(name)
    if not by_key:
        return set()
    with connection.cursor() as cursor:
        cursor.execute("SELECT k FROM unnest(%s::bigint[]) AS k WHERE NOT pg_try_advisory_xact_lock(k)", [list(by_key)])
        return {name for (key,) in cursor.fetchall() for name in by_key[key]}


def _lock_key(name: str) -> int:
    # A hash collision only makes two unrelated batches wait for each other.
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def run_tree(name: str, seed: str, *, carry: Sequence[str] = (), up: bool = False, max_depth: int | None = None) -> str:
    """`WITH RECURSIVE name(*carry, app_id, run_id, parent_run_id[, depth]) AS (...)`: the runs the
    `seed` query selects, then all their descendants (with `up`, their ancestors) in the same app.

    The one shape of every recursive trace query (a trace, subtree totals, a thread's runs, the
    ancestry that cycle checks read). `seed` selects the same columns, plain SQL for both
    databases, with `0` as depth when `max_depth` bounds the walk; `carry` columns (a root, a
    thread) are copied from the seed row to every row it reaches. UNION drops repeated rows,
    so without a depth column the walk also ends on a cycle.
    """
    from apps.tracing.models import Run

    table = connection.ops.quote_name(Run._meta.db_table)
    depth = ["depth"] if max_depth is not None else []
    columns = ", ".join([*carry, "app_id", "run_id", "parent_run_id", *depth])
    step = ", ".join(
        [*(f"t.{c}" for c in carry), "r.app_id", "r.run_id", "r.parent_run_id", *(["t.depth + 1"] if depth else [])]
    )
    link = "r.run_id = t.parent_run_id" if up else "r.parent_run_id = t.run_id"
    bound = f" WHERE t.depth < {int(max_depth)}" if depth else ""
    return (
        f"WITH RECURSIVE {name}({columns}) AS ({seed} UNION "
        f"SELECT {step} FROM {table} r JOIN {name} t ON r.app_id = t.app_id AND {link}{bound})"
    )


def wait_for_older_transactions(timeout: float = 60.0) -> bool:
    """Wait until every other transaction that had written anything when this was called has
    ended (PostgreSQL; SQLite lets one writer in at a time, so none is ever in flight). False if
    some still ran after `timeout` seconds.
    """
    if connection.vendor != "postgresql":
        return True
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT array_agg(x::text::bigint) FROM pg_snapshot_xip(pg_current_snapshot()) AS x"
            " WHERE x IS DISTINCT FROM pg_current_xact_id_if_assigned()"
        )
        running = cursor.fetchone()[0] or []
        while running:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
            cursor.execute(
                "SELECT array_agg(x) FROM unnest(%s::bigint[]) AS x"
                " WHERE pg_xact_status(x::text::xid8) = 'in progress'",
                [running],
            )
            running = cursor.fetchone()[0] or []
    return True
