"""Repricing stored LLM runs after the cost table changes (SPEC §4, docs/COSTS.md).

Set-based: Python decides, with the same PriceBook the write path uses, which cost row
applies to each model over which days; the database then reprices every run at once,
one UPDATE per range of OBSERVATORY_RECALC_CHUNK run ids, joined to that small table of price periods.

It works on RunCost, the narrow table that holds each run's cost and its pricing inputs,
so a million runs are a million small rows with two indexes, and one statement never
reads another table: when ingestion rewrites a run's costs while the job runs, the
database re-evaluates the job's UPDATE on the fresh row (PostgreSQL's READ COMMITTED
recheck; SQLite has one writer at a time). Idempotent: only costs that differ are
written, so a second pass writes nothing. Thread totals follow, refreshed once at the end
by the threads app on the `runs_repriced` signal (tracing does not import threads).

The pricing rules (ModelCost, PriceBook) and the job's record (Recalculation) stay in costs;
this job lives with the runs it rewrites, so no module of costs imports upward.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, F, Max, Min, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.costs.models import ModelCost, Recalculation
from apps.costs.pricing import PriceBook
from apps.tracing.models import RunCost
from apps.tracing.signals import runs_repriced
from apps.tracing.sql import wait_for_older_transactions

logger = logging.getLogger(__name__)

# Priced with the same formula as costs.pricing.PriceBook.price, rounded like the column.
COST_SQL = """
    CASE
        WHEN p.row_id IS NULL OR c.cache_hit THEN 0
        WHEN c.prompt_tokens IS NOT NULL AND c.completion_tokens IS NOT NULL THEN ROUND((
            (c.prompt_tokens - {cached}) * p.prompt + {cached} * p.cached + c.completion_tokens * p.completion
        ) / 1000, 10)
        WHEN c.total_tokens IS NOT NULL THEN ROUND(c.total_tokens * p.blended / 1000, 10)
        ELSE 0
    END
"""
COST_ROW_SQL = """
    CASE
        WHEN c.cache_hit OR (c.prompt_tokens IS NOT NULL AND c.completion_tokens IS NOT NULL)
             OR c.total_tokens IS NOT NULL THEN p.row_id
    END
"""


@dataclass
class Summary:
    total: int = 0
    examined: int = 0
    changed: int = 0
    cost_before: Decimal = Decimal(0)
    cost_after: Decimal = Decimal(0)


@dataclass(frozen=True)
class Period:
    """One model's price from `start` (inclusive) to `end` (exclusive): a row, or none."""

    model: str
    start: datetime
    end: datetime
    row: ModelCost | None


def price_periods(models: set[str], prices: PriceBook) -> list[Period]:
    """The row in force for each model, as periods split at every valid_from that could matter."""
    days = sorted({row.valid_from for row in prices.rows if row.valid_from})
    bounds = [date(1, 1, 1), *days, date(9999, 12, 31)]
    periods = []
    for model in sorted(models):
        for start, end in zip(bounds, bounds[1:], strict=False):
            row = prices.row_for(model, datetime.combine(start, time(), tzinfo=UTC))
            if periods and periods[-1].model == model and periods[-1].row == row:
                periods[-1] = Period(model, periods[-1].start, _moment(end), row)
            else:
                periods.append(Period(model, _moment(start), _moment(end), row))
    return periods


def _moment(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def scope_of(*, model: str = "", is_pattern: bool = False, app=None, since: datetime | None = None):
    """The RunCost rows in scope: llm runs (only they are priced) with a model."""
    costs = RunCost.objects.filter(type="llm", model__isnull=False)
    if app is not None:
        costs = costs.for_app(app)
    if since is not None:
        costs = costs.filter(started_at__gte=since)
    if model and is_pattern:
        # Match in Python, with the regex engine the pricing uses, over the few distinct names.
        names = costs.order_by().values_list("model", flat=True).distinct()
        costs = costs.filter(model__in=[name for name in names if re.fullmatch(model, name)])
    elif model:
        costs = costs.filter(model=model)
    return costs


def recalculate_costs(
    *,
    model: str = "",
    is_pattern: bool = False,
    app=None,
    since: datetime | None = None,
    dry_run: bool = False,
    progress: Callable[[Summary, int], None] | None = None,
    resume: tuple[Summary, int] | None = None,
) -> Summary:
    """Reprice the llm runs in scope (all, one model or pattern, one app, since a time); thread totals follow.

    First it waits for the transactions already writing when it starts: an ingestion batch that
    priced its runs before the price changed, and commits them after the job's UPDATE passed
    their ids, would keep the old price for good (bench/soak.py caught 19 runs so, once in seven
    runs). Batches that start later read the new price.

    Then chunk by chunk of run ids, each in its own transaction, inside which `progress(summary,
    next run id)` is called: what it records commits with the chunk, and an exception it raises
    rolls the chunk back. `resume`, such a (summary, next run id) recorded earlier, goes on from there.
    """
    scope = scope_of(model=model, is_pattern=is_pattern, app=app, since=since)
    totals = scope.aggregate(n=Count("run"), cost=Sum("cost"), first=Min("run"), last=Max("run"))
    if not dry_run and not wait_for_older_transactions():
        logger.warning("cost recalculation: ingestion transactions older than the job still run; going on")
    summary, start = resume or (Summary(total=totals["n"], cost_before=totals["cost"] or Decimal(0)), totals["first"])
    models = set(scope.order_by().values_list("model", flat=True).distinct())
    repricing = Repricing(price_periods(models, PriceBook.everything()), app=app, since=since, models=models)
    for low in range(start or 0, (totals["last"] or 0) + 1, settings.OBSERVATORY_RECALC_CHUNK):
        high = low + settings.OBSERVATORY_RECALC_CHUNK
        with transaction.atomic():
            changed, examined, after = repricing.run(low, high, dry_run=dry_run)
            summary = replace(
                summary, examined=summary.examined + examined, changed=summary.changed + len(changed),
                cost_after=summary.cost_after + after,
            )  # fmt: skip
            if progress:
                progress(summary, high)
    if summary.changed and not dry_run:
        runs_repriced.send(sender=RunCost, app=app)
    return summary


class Repricing:
    """The SQL of one recalculation: RunCost rows joined to the price periods of their model.

    The new cost is computed in the UPDATE's own SET list from the target row's columns:
    if ingestion rewrites a row while the statement waits for it, PostgreSQL re-evaluates
    SET and WHERE on the new version (a subquery over the same table would keep the old).
    """

    def __init__(self, periods: list[Period], *, app, since, models: set[str]) -> None:
        self.table = connection.ops.quote_name(RunCost._meta.db_table)
        postgres = connection.vendor == "postgresql"
        cached = f"{'LEAST' if postgres else 'MIN'}(COALESCE(c.cached_prompt_tokens, 0), c.prompt_tokens)"
        self.new_cost, self.new_row = COST_SQL.format(cached=cached), COST_ROW_SQL
        conditions, self.params = ["c.run_pk >= %s", "c.run_pk < %s", "c.type = 'llm'"], []
        if app is not None:
            conditions.append("c.app_id = %s")
            self.params.append(app.pk)
        if since is not None:
            conditions.append("c.started_at >= %s")
            self.params.append(connection.ops.adapt_datetimefield_value(since))
        self.periods, self.period_params = _periods_sql(periods)
        self.where = " AND ".join(
            ["c.model = p.model", "c.started_at >= p.p_start", "c.started_at < p.p_end", *conditions]
        )
        self.differs = (
            f"(c.cost <> {self.new_cost} OR c.cost_row_id IS DISTINCT FROM {self.new_row})"
            if postgres  # SQLite stores decimals as floating point: compare to the column's precision
            else f"(ABS(c.cost - {self.new_cost}) > 1e-11 OR c.cost_row_id IS NOT {self.new_row})"
        )

    def run(self, low: int, high: int, *, dry_run: bool) -> tuple[list[int], int, Decimal]:
        """(run ids whose cost changed, runs examined, their new total cost) for run ids in [low, high)."""
        examined, after = self._select(f"COUNT(*), COALESCE(SUM({self.new_cost}), 0)", low, high)[0]
        if dry_run:
            changed = [row[0] for row in self._select("c.run_pk", low, high, f"AND {self.differs}")]
        else:
            changed = self.write(low, high)
        return changed, examined, Decimal(str(after))

    def _select(self, columns: str, low: int, high: int, extra: str = "") -> list[tuple]:
        sql = f"SELECT {columns} FROM {self.table} c, ({self.periods}) p WHERE {self.where} {extra}"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(sql, [*self.period_params, low, high, *self.params])
            return cursor.fetchall()

    def write(self, low: int, high: int) -> list[int]:
        """One UPDATE: reprice the range from its own rows, write only what differs."""
        sql = (
            f"UPDATE {self.table} AS c SET cost = {self.new_cost}, cost_row_id = {self.new_row} "  # noqa: S608
            f"FROM ({self.periods}) p WHERE {self.where} AND {self.differs} RETURNING run_pk"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*self.period_params, low, high, *self.params])
            return [row[0] for row in cursor.fetchall()]


def _periods_sql(periods: list[Period]) -> tuple[str, list]:
    """The price periods as a derived table p(model, p_start, p_end, row_id, prompt, completion, cached, blended)."""
    ops = connection.ops
    postgres = connection.vendor == "postgresql"
    number = "CAST(%s AS numeric)" if postgres else "CAST(%s AS REAL)"
    row_id = "CAST(%s AS bigint)" if postgres else "%s"  # typed, or a NULL would be text to PostgreSQL
    select = f"SELECT %s AS model, %s AS p_start, %s AS p_end, {row_id} AS row_id, {number} AS prompt, " + (
        f"{number} AS completion, {number} AS cached, {number} AS blended"
    )
    rows, params = [], []
    for period in periods or [Period("", _moment(date(1, 1, 1)), _moment(date(1, 1, 2)), None)]:
        row = period.row
        prompt = row.prompt_price if row else Decimal(0)
        params += [
            period.model, ops.adapt_datetimefield_value(period.start), ops.adapt_datetimefield_value(period.end),
            row.pk if row else None, str(prompt), str(row.completion_price if row else 0),
            str(row.cached_prompt_price if row and row.cached_prompt_price is not None else prompt),
            str(row.total_price if row and row.total_price is not None else prompt),
        ]  # fmt: skip
        rows.append(select)
    return " UNION ALL ".join(rows), params


# --- the job record --------------------------------------------------------------------------------


def request_recalculation(*, reason: str = "", **scope) -> Recalculation:
    """Record a recalculation and enqueue it once the current transaction commits."""
    from apps.tracing.tasks import recalculate_costs_task  # here: tasks.py imports this module

    recalculation = Recalculation.objects.create(reason=reason[:200], **scope)
    transaction.on_commit(lambda: recalculate_costs_task.delay(recalculation.pk))
    return recalculation


class LeaseLost(Exception):
    """Another worker took the job over (this one was presumed dead): stop, writing nothing more."""


def run_recalculation(recalculation_id: int) -> Recalculation | None:
    """Carry out a recorded recalculation, keeping its progress and summary up to date.

    Claims the job if it is queued, or running with a heartbeat older than
    OBSERVATORY_RECALC_STALE_SECONDS (its worker was killed): then it resumes at the first
    chunk not committed, with the counts committed so far, so nothing is counted twice. Each
    chunk's checkpoint is written in the chunk's transaction and only by the latest claim.
    """
    now = timezone.now()
    claimable = Q(state=Recalculation.State.QUEUED) | Q(state=Recalculation.State.RUNNING, heartbeat_at__lt=stale(now))
    claimed = Recalculation.objects.filter(claimable, pk=recalculation_id).update(
        state=Recalculation.State.RUNNING, started_at=Coalesce("started_at", Value(now)), heartbeat_at=now,
        attempt=F("attempt") + 1,
    )  # fmt: skip
    if not claimed:  # done, failed, running elsewhere, or deleted: a redelivered task does nothing
        return None
    job = Recalculation.objects.get(pk=recalculation_id)
    ours = Recalculation.objects.filter(pk=job.pk, attempt=job.attempt, state=Recalculation.State.RUNNING)
    resume = None
    if job.resume_from is not None:
        logger.warning("cost recalculation #%s: resuming at run %s (attempt %s)", job.pk, job.resume_from, job.attempt)
        counts = ("total", "examined", "changed", "cost_before", "cost_after")
        resume = (Summary(**{name: getattr(job, name) for name in counts}), job.resume_from)

    def checkpoint(summary: Summary, next_run: int) -> None:
        if not ours.update(**vars(summary), resume_from=next_run, heartbeat_at=timezone.now()):
            raise LeaseLost

    try:
        summary = recalculate_costs(
            model=job.model, is_pattern=job.is_pattern, app=job.app, since=job.since, dry_run=job.dry_run,
            progress=checkpoint, resume=resume,
        )  # fmt: skip
    except LeaseLost:
        logger.warning("cost recalculation #%s: taken over by another worker, stopping", job.pk)
        return None
    except Exception as exc:
        logger.exception("cost recalculation #%s failed", job.pk)
        ours.update(state=Recalculation.State.FAILED, error=str(exc)[:2000], finished_at=timezone.now())
        raise
    if not ours.update(**vars(summary), state=Recalculation.State.DONE, finished_at=timezone.now()):
        return None
    job.refresh_from_db()
    logger.info("cost recalculation #%s: %s runs examined, %s changed", job.pk, job.examined, job.changed)
    return job


def stale(now: datetime) -> datetime:
    """Heartbeats before this moment belong to a worker presumed dead."""
    return now - timedelta(seconds=settings.OBSERVATORY_RECALC_STALE_SECONDS)


def resume_stalled_recalculations() -> list[int]:
    """Enqueue again the jobs whose worker died (stale heartbeat) or whose message was lost (queued
    a minute ago and not started); returns their ids. A job running well is left alone: its claim fails."""
    from apps.tracing.tasks import recalculate_costs_task  # here: tasks.py imports this module

    now = timezone.now()
    stalled = Q(state=Recalculation.State.RUNNING, heartbeat_at__lt=stale(now)) | Q(
        state=Recalculation.State.QUEUED, created_at__lt=now - timedelta(minutes=1)
    )
    ids = []
    for pk in Recalculation.objects.filter(stalled).values_list("pk", flat=True):
        # Once per stale period: while the workers are busy (a job waits its turn), beat's every
        # 10 s would otherwise pile up messages for it (bench/soak.py counted 177 for 7 jobs).
        if cache.add(f"recalculation-requeued:{pk}", 1, settings.OBSERVATORY_RECALC_STALE_SECONDS):
            recalculate_costs_task.delay(pk)
            ids.append(pk)
    return ids
