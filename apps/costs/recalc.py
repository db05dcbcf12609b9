"""Repricing stored LLM runs after the cost table changes (SPEC §4, docs/COSTS.md).

Set-based and batched: runs are read in id order, CHUNK at a time, priced in memory by
the same PriceBook the write path uses, and only the runs whose cost changes are written,
with one UPDATE per chunk. Idempotent: a second pass changes nothing. Safe while events
stream in: a run is updated only if it has not been rewritten since it was read (its
`updated_at`); one that was has just been priced by the write path with the current table.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.fields.json import KT
from django.utils import timezone

from apps.costs.models import Recalculation
from apps.costs.pricing import PriceBook, Usage
from apps.threads.services import refresh_threads_of_runs
from apps.tracing.models import Run

logger = logging.getLogger(__name__)

CHUNK = 5000
CENT_FRACTION = Decimal("0.0000000001")  # the cost column's 10 decimal places
COLUMNS = ["id", "model", "prompt_tokens", "completion_tokens", "total_tokens", "cached_prompt_tokens",
           "started_at", "cost", "cost_row_id", "updated_at"]  # fmt: skip


@dataclass
class Summary:
    total: int = 0
    examined: int = 0
    changed: int = 0
    cost_before: Decimal = Decimal(0)
    cost_after: Decimal = Decimal(0)
    changed_ids: list[int] = field(default_factory=list, repr=False)


def runs_in_scope(*, model: str = "", is_pattern: bool = False, app=None, since: datetime | None = None) -> QuerySet:
    runs = Run.objects.filter(type="llm")
    if app is not None:
        runs = runs.filter(app=app)
    if since is not None:
        runs = runs.filter(started_at__gte=since)
    if model and is_pattern:
        # Match in Python, with the same regex engine the pricing uses, over the few distinct names.
        names = runs.order_by().values_list("model", flat=True).distinct()
        runs = runs.filter(model__in=[name for name in names if name and re.fullmatch(model, name)])
    elif model:
        runs = runs.filter(model=model)
    return runs


def recalculate_costs(
    *,
    model: str = "",
    is_pattern: bool = False,
    app=None,
    since: datetime | None = None,
    dry_run: bool = False,
    progress: Callable[[Summary], None] | None = None,
) -> Summary:
    """Reprice the llm runs in scope (all, one model or pattern, one app, since a time); thread totals follow."""
    runs = runs_in_scope(model=model, is_pattern=is_pattern, app=app, since=since)
    summary = Summary(total=runs.count())
    prices = PriceBook.everything()
    rows = runs.annotate(cache_hit=KT("metadata__cache_hit")).order_by("id").values_list(*COLUMNS, "cache_hit")
    last_id = 0
    while chunk := list(rows.filter(id__gt=last_id)[:CHUNK]):
        last_id = chunk[-1][0]
        changes = _reprice(chunk, prices, summary)
        if changes and not dry_run:
            with transaction.atomic():
                updated = _write(changes)
                refresh_threads_of_runs(updated)
            summary.changed += len(updated)
        elif dry_run:
            summary.changed += len(changes)
        if progress:
            progress(summary)
    return summary


def _reprice(chunk: list[tuple], prices: PriceBook, summary: Summary) -> list[tuple]:
    """(id, cost, cost_row_id, updated_at) of the runs of `chunk` whose price differs."""
    changes = []
    for pk, model, prompt, completion, total, cached, started_at, cost, row_id, updated_at, cache_hit in chunk:
        usage = Usage(model, prompt, completion, total, started_at, cached, cache_hit in (True, 1, "true"))
        new_cost, row = prices.price(usage)
        new_cost = Decimal(new_cost).quantize(CENT_FRACTION)
        new_row_id = row.pk if row else None
        summary.examined += 1
        summary.cost_before += cost
        summary.cost_after += new_cost
        if new_cost != cost or new_row_id != row_id:
            changes.append((pk, new_cost, new_row_id, updated_at))
    return changes


def _write(changes: list[tuple]) -> list[int]:
    """One UPDATE joined to the new values; skips runs rewritten since they were read. Returns the ids updated."""
    table = Run._meta.db_table
    ops = connection.ops
    params = [
        value
        for pk, cost, row_id, updated_at in changes
        for value in (pk, ops.adapt_decimalfield_value(cost, 20, 10), row_id, ops.adapt_datetimefield_value(updated_at))
    ]
    if connection.vendor == "postgresql":
        values = ", ".join(["(%s::bigint, %s::numeric, %s::bigint, %s::timestamptz)"] * len(changes))
        sql = f"""
            UPDATE {table} AS r SET cost = v.cost, cost_row_id = v.row_id
            FROM (VALUES {values}) AS v(id, cost, row_id, updated_at)
            WHERE r.id = v.id AND r.updated_at = v.updated_at RETURNING r.id
        """  # noqa: S608 - table name and placeholders only
    else:
        values = ", ".join(["(%s, %s, %s, %s)"] * len(changes))
        sql = f"""
            UPDATE {table} SET cost = v.column2, cost_row_id = v.column3
            FROM (VALUES {values}) AS v
            WHERE {table}.id = v.column1 AND {table}.updated_at = v.column4 RETURNING {table}.id
        """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


# --- the job record --------------------------------------------------------------------------------


def request_recalculation(*, reason: str = "", **scope) -> Recalculation:
    """Record a recalculation and enqueue it once the current transaction commits."""
    from apps.costs.tasks import recalculate_costs_task

    recalculation = Recalculation.objects.create(reason=reason[:200], **scope)
    transaction.on_commit(lambda: recalculate_costs_task.delay(recalculation.pk))
    return recalculation


def run_recalculation(recalculation_id: int) -> Recalculation | None:
    """Carry out a recorded recalculation, keeping its progress and summary up to date."""
    claimed = Recalculation.objects.filter(pk=recalculation_id, state=Recalculation.State.QUEUED).update(
        state=Recalculation.State.RUNNING, started_at=timezone.now()
    )
    if not claimed:  # already done, running elsewhere, or deleted: a redelivered task does nothing
        return None
    job = Recalculation.objects.get(pk=recalculation_id)

    def report(summary: Summary) -> None:
        Recalculation.objects.filter(pk=job.pk).update(
            total=summary.total, examined=summary.examined, changed=summary.changed
        )

    try:
        summary = recalculate_costs(
            model=job.model, is_pattern=job.is_pattern, app=job.app, since=job.since, dry_run=job.dry_run,
            progress=report,
        )  # fmt: skip
    except Exception as exc:
        logger.exception("cost recalculation #%s failed", job.pk)
        Recalculation.objects.filter(pk=job.pk).update(
            state=Recalculation.State.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        raise
    Recalculation.objects.filter(pk=job.pk).update(
        state=Recalculation.State.DONE, total=summary.total, examined=summary.examined, changed=summary.changed,
        cost_before=summary.cost_before, cost_after=summary.cost_after, finished_at=timezone.now(),
    )  # fmt: skip
    job.refresh_from_db()
    logger.info("cost recalculation #%s: %s runs examined, %s changed", job.pk, job.examined, job.changed)
    return job
