"""Retention: deleting what is older than each app's `retention_days` (SPEC §6, docs/RETENTION.md).

Per app whose retention is set, with `cutoff = now - retention_days` (the app re-read as the job
starts), in this order:

1. `retention_due`: threads deletes the expired thread messages, their feedback, the threads
   left empty, and corrects the aggregates of the others (threads.services.purge_expired_messages).
2. Runs started before the cutoff, oldest first by (started_at, id), OBSERVATORY_RETENTION_BATCH at a time: each
   batch is one short transaction that deletes its runs with their cost and search rows, their
   events and their feedback, then sends `runs_purged` for threads to follow in the same
   transaction. A keyset cursor moves past what is kept, so kept runs are read once per purge.
3. Events that name no run (chat, feedback and custom events without a run_id), older than the cutoff.

Never deleted: a saved run and every run in its trace (its ancestors up to the root and all the
root's descendants); a run named by a stored `saved` event counts as saved (that event may have
come before its run). See `protected_run_ids`. Left for the next purge: runs with queued events
(worker assembly is applying them) and, on PostgreSQL, runs an ingestion batch holds (its run
advisory lock, taken here without waiting) or another transaction has a row lock on.

Concurrency: each batch takes the app's transaction-scoped advisory lock without waiting; a purge
that finds it taken leaves the app to the one holding it (`PurgeResult.busy`). Every batch is
consistent on its own, so a purge stopped half-way is continued by the next. Deletes are by
primary key lists (one statement per table per batch), selections walk indexes.

tracing never imports threads: it tells threads through the two signals (tracing.signals).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from apps.tenancy.models import App
from apps.tracing.models import Event, Feedback, QueuedBatch, Run, RunCost, RunSearch
from apps.tracing.signals import retention_due, runs_purged
from apps.tracing.sql import run_tree, try_advisory_lock

logger = logging.getLogger(__name__)

# Run ids per trace query. PostgreSQL guesses a recursive walk yields ten times its seed rows:
# from a few hundred it probes the (app, run_id) and (app, parent_run_id) indexes; from 5,000 it
# hashed the whole run table at each step (1.2 s instead of ~20 ms at 1,000,000 runs).
PROTECT_CHUNK = 500
ATTEMPTS = 3  # a batch chosen as a deadlock's victim is tried again from scratch
RETRYABLE = {"40P01", "40001"}  # deadlock detected, serialization failure


@dataclass
class PurgeResult:
    """What one app's purge deleted (or, in a dry run, would delete)."""

    app: App
    cutoff: datetime | None  # None: the app keeps forever
    runs: int = 0
    events: int = 0
    feedback: int = 0
    costs: int = 0
    searches: int = 0
    messages: int = 0
    threads_deleted: int = 0
    threads_refreshed: int = 0
    protected: int = 0  # expired runs kept because they are in the trace of a saved run
    skipped: int = 0  # expired runs left for the next purge: being written (queued events, row locks)
    busy: bool = False  # another purge held the app: this one left it to that one

    def add(self, **counts: int | bool) -> None:
        for name, value in counts.items():
            if name == "busy":
                self.busy = self.busy or bool(value)
            else:
                setattr(self, name, getattr(self, name) + value)

    @property
    def counts(self) -> dict[str, int]:
        """The counts, by field name (all but app, cutoff and busy)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("app", "cutoff", "busy")}


def purge_expired(
    *,
    app: App | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    batch_size: int | None = None,
    progress: Callable[[PurgeResult], None] | None = None,
) -> list[PurgeResult]:
    """Delete what is past each app's retention (`app`: only that one); one result per app, in id order.

    `retention_days` is read from the database now, whatever the `app` object passed says: empty or
    0 keeps forever (a result with cutoff None). With `dry_run`, count what would go and change
    nothing. `progress` is called with the app's result after each batch.
    """
    now = now or timezone.now()
    apps = App.objects.select_related("organization").order_by("pk")
    if app is not None:
        apps = apps.filter(pk=app.pk)
    results = []
    for current in apps:
        result = PurgeResult(app=current, cutoff=cutoff_of(current, now))
        if result.cutoff is not None:
            _AppPurge(
                result,
                dry_run=dry_run,
                batch_size=batch_size or settings.OBSERVATORY_RETENTION_BATCH,
                progress=progress,
            ).run()
            logger.info(
                "retention %s%s/%s (cutoff %s): %s",
                "dry run " if dry_run else "", current.organization.slug, current.slug, result.cutoff.isoformat(),
                ", ".join([*(f"{name} {value}" for name, value in result.counts.items()), *(["busy"] * result.busy)]),
            )  # fmt: skip
        results.append(result)
    return results


def cutoff_of(app: App, now: datetime) -> datetime | None:
    return now - timedelta(days=app.retention_days) if app.retention_days else None


def lock_app(app: App) -> bool:
    """Inside a transaction: take the app's purge lock until it ends; False if another purge holds it.

    PostgreSQL only; on SQLite (one writer at a time) it is always free.
    """
    return not try_advisory_lock([f"purge:{app.pk}"])


def run_batches(app: App, step: Callable, *, dry_run: bool, tally: Callable[..., None]) -> bool:
    """Call `step(cursor)` -> (counts, next cursor or None) from cursor None until it returns None.

    Each call is its own transaction (none in a dry run on SQLite, where a transaction would take
    the write lock), which first takes the app's purge lock (not in a dry run, which writes nothing)
    and is tried again from scratch when the database chose it as a deadlock's victim. `counts` go to `tally`.
    Returns False, after tally(busy=True), when another purge holds the app.
    """
    postgres = connection.vendor == "postgresql"
    cursor = None
    while True:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with transaction.atomic() if postgres or not dry_run else contextlib.nullcontext():
                    if postgres:  # compiling these short statements took longer than running them
                        _execute("SET LOCAL jit = off", [])
                    if not dry_run and not lock_app(app):
                        tally(busy=True)
                        return False
                    counts, cursor = step(cursor)
                break
            except OperationalError as exc:
                if attempt == ATTEMPTS or getattr(exc.__cause__, "sqlstate", None) not in RETRYABLE:
                    raise
                logger.warning("retention batch of app %s rolled back (%s); trying again", app.pk, exc)
        if counts:
            tally(**counts)
        if cursor is None:
            return True


# --- what is protected ----------------------------------------------------------------------------------


def protected_run_ids(app: App, run_ids: Iterable[str | None]) -> set[str]:
    """Those of `run_ids` that must be kept: in the trace of a saved run, or themselves saved.

    The trace of a run is its root (the top of its ancestors) and all the root's descendants;
    a trace is protected when one of its runs is saved. A stored run's `saved` flag decides (the
    ingestion sets it from a `saved` event whichever arrives first, and Unsave clears it, so an
    unsaved run is not kept by its old event). A run id without a run is protected when a
    `saved` event names it (a message may link a run whose
    events have not arrived). Runs whose ancestry reaches no root (a parent cycle, which ingestion
    refuses) are protected too: the purge never deletes what it cannot place. Two recursive
    queries (sql.run_tree) per PROTECT_CHUNK run ids; none when the app has nothing saved.
    """
    wanted = sorted({run_id for run_id in run_ids if run_id})
    if not wanted or not _has_saves(app):
        return set()
    protected = set()
    for start in range(0, len(wanted), PROTECT_CHUNK):
        protected |= _protected(app, set(wanted[start : start + PROTECT_CHUNK]))
    return protected


def _protected(app: App, wanted: set[str]) -> set[str]:
    run = _table(Run)
    condition, params = _in("run_id", wanted, "text")
    seed = f"SELECT app_id, run_id, parent_run_id FROM {run} WHERE app_id = %s AND {condition}"  # noqa: S608
    up = f"""{run_tree("up", seed, up=True)}
        SELECT u.run_id, u.parent_run_id, u.parent_run_id IS NULL OR NOT EXISTS (
            SELECT 1 FROM {run} p WHERE p.app_id = u.app_id AND p.run_id = u.parent_run_id
        ) FROM up u"""  # noqa: S608 - table names and placeholders only
    rows = _fetch(up, [app.pk, *params])
    existing = {run_id for run_id, _, _ in rows} & wanted
    # The root of a trace: the top of its ancestry, or the parent it names when that run is missing
    # (deleted by an earlier purge, or never sent): runs under the same missing parent share a trace.
    # Walked down from the roots that exist and, apart (rarely needed), from the missing ones'
    # children: one seed column each, which PostgreSQL estimates well (an OR of both it did not).
    tops = [(run_id, parent) for run_id, parent, top in rows if top]
    seeds = [
        ("run_id", "run_id", {run_id for run_id, parent in tops if parent is None}),
        ("parent_run_id", "parent_run_id", {parent for _, parent in tops if parent is not None}),
    ]
    protected, reached = set(), set()
    is_wanted, wanted_params = _in("d.run_id", existing, "text")
    for root, column, ids in seeds:
        if not ids:
            continue
        condition, root_params = _in(column, ids, "text")
        seed = f"SELECT {root}, app_id, run_id, parent_run_id FROM {run} WHERE app_id = %s AND {condition}"  # noqa: S608
        down = f"""{run_tree("down", seed, carry=["root"])}
            SELECT d.run_id, CASE WHEN d.root IN (
                SELECT s.root FROM down s JOIN {run} r ON r.app_id = s.app_id AND r.run_id = s.run_id
                WHERE r.saved
            ) THEN 1 ELSE 0 END
            FROM down d WHERE {is_wanted}"""  # noqa: S608 - table names and placeholders only
        for run_id, saved_trace in _fetch(down, [app.pk, *root_params, *wanted_params]):
            reached.add(run_id)
            if saved_trace:
                protected.add(run_id)
    protected |= existing - reached  # no root: a cycle
    missing = wanted - existing
    if missing:
        saves = Event.objects.for_app(app).filter(name="saved", run_id__in=missing)
        protected |= set(saves.values_list("run_id", flat=True))
    return protected


def _has_saves(app: App) -> bool:
    """Whether the app has any saved run or `saved` event (two probes of partial indexes)."""
    return (
        Run.objects.for_app(app).filter(saved=True).exists() or Event.objects.for_app(app).filter(name="saved").exists()
    )


# --- one app --------------------------------------------------------------------------------------------


class _AppPurge:
    def __init__(self, result: PurgeResult, *, dry_run: bool, batch_size: int, progress) -> None:
        self.result, self.app, self.cutoff = result, result.app, result.cutoff
        self.dry_run, self.batch_size, self.progress = dry_run, max(1, batch_size), progress

    def tally(self, **counts: int | bool) -> None:
        self.result.add(**counts)
        if self.progress:
            self.progress(self.result)

    def run(self) -> None:
        retention_due.send(
            sender=Run, app=self.app, cutoff=self.cutoff, dry_run=self.dry_run, batch_size=self.batch_size,
            tally=self.tally,
        )  # fmt: skip
        for step in (self.run_batch, self.event_batch):
            if self.result.busy or not run_batches(self.app, step, dry_run=self.dry_run, tally=self.tally):
                return

    # --- runs ---

    def run_batch(self, cursor: tuple[datetime, int] | None):
        """Delete (or count) one batch of expired runs after `cursor`; (counts, next cursor or None)."""
        runs = Run.objects.for_app(self.app).filter(started_at__lt=self.cutoff)
        if cursor is not None:
            runs = runs.filter(started_at__gte=cursor[0]).exclude(started_at=cursor[0], pk__lte=cursor[1])
        runs = runs.order_by("started_at", "pk").values_list("pk", "run_id", "started_at")[: self.batch_size]
        if not self.dry_run:
            runs = runs.select_for_update(skip_locked=True)  # PostgreSQL; ignored by SQLite
        rows = list(runs)
        if not rows:
            return {}, None
        run_ids = {run_id for _, run_id, _ in rows}
        protected = protected_run_ids(self.app, run_ids)
        busy = self._queued(run_ids - protected)
        if not self.dry_run:  # and those an ingestion batch is writing, which holds their advisory lock
            names = {f"run:{self.app.pk}:{run_id}": run_id for run_id in run_ids - protected - busy}
            busy |= {names[name] for name in try_advisory_lock(names)}  # the names of run_lock_names
        doomed = [(pk, run_id) for pk, run_id, _ in rows if run_id not in protected and run_id not in busy]
        counts = {"protected": len(protected), "skipped": len(busy)}
        if doomed:
            _merged(counts, self._count(doomed) if self.dry_run else self._delete(doomed))
        # Go on until a batch finds nothing: on PostgreSQL, rows skipped as locked shorten a batch too.
        return counts, (rows[-1][2], rows[-1][0])

    def _queued(self, run_ids: set[str]) -> set[str]:
        """Runs with events still queued for the assembly workers: left alone until they are applied.

        The queue is short when the workers keep up (a row per request), so its rows' run keys
        are read and matched here rather than indexed on every request."""
        if not run_ids:
            return set()
        wanted = {f"{self.app.pk}:{run_id}": run_id for run_id in run_ids}
        queued = set()
        for keys in QueuedBatch.objects.values_list("run_keys", flat=True).iterator():
            queued.update(wanted[key] for key in keys.split("\n") if key in wanted)
        return queued

    def _delete(self, doomed: Sequence[tuple[int, str]]) -> dict[str, int]:
        app = self.app.pk
        pks, params = _in("id", [pk for pk, _ in doomed], "bigint")
        delete = f"DELETE FROM {_table(Run)} WHERE {pks} AND saved = %s RETURNING id, run_id"  # noqa: S608
        deleted = _fetch(delete, [*params, False])
        counts = {"runs": len(deleted), "protected": len(doomed) - len(deleted)}  # saved meanwhile: kept
        if not deleted:
            return counts
        pks, pk_params = _in("run_pk", [pk for pk, _ in deleted], "bigint")
        run_ids = {run_id for _, run_id in deleted}
        ids, id_params = _in("run_id", run_ids, "text")
        counts["costs"] = _execute(f"DELETE FROM {_table(RunCost)} WHERE {pks}", pk_params)  # noqa: S608
        counts["searches"] = _execute(f"DELETE FROM {_table(RunSearch)} WHERE {pks}", pk_params)  # noqa: S608
        counts["events"] = _execute(f"DELETE FROM {_table(Event)} WHERE app_id = %s AND {ids}", [app, *id_params])  # noqa: S608
        counts["feedback"] = _execute(f"DELETE FROM {_table(Feedback)} WHERE app_id = %s AND {ids}", [app, *id_params])  # noqa: S608
        return _merged(counts, self._runs_purged(run_ids, dry_run=False))

    def _count(self, doomed: Sequence[tuple[int, str]]) -> dict[str, int]:
        pks = [pk for pk, _ in doomed]
        run_ids = {run_id for _, run_id in doomed}
        events = Event.objects.for_app(self.app).filter(run_id__in=run_ids)
        counts = self._runs_purged(run_ids, dry_run=True)
        return counts | {
            "runs": len(doomed),
            "costs": RunCost.objects.filter(run__in=pks).count(),
            "searches": RunSearch.objects.filter(run__in=pks).count(),
            "events": events.count(),
            "feedback": Feedback.objects.for_app(self.app).filter(run_id__in=run_ids).count(),
        }

    def _runs_purged(self, run_ids: set[str], *, dry_run: bool) -> dict[str, int]:
        """Tell the apps above (threads) in this transaction; the counts their receivers return."""
        counts: dict[str, int] = {}
        answers = runs_purged.send(sender=Run, app=self.app, cutoff=self.cutoff, run_ids=run_ids, dry_run=dry_run)
        for _, answer in answers:
            _merged(counts, answer or {})
        return counts

    # --- events that name no run ---

    def event_batch(self, cursor: tuple[datetime, int] | None):
        """Delete (or count) one batch of expired events without a run_id; (counts, next cursor or None)."""
        events = Event.objects.for_app(self.app).filter(run_id__isnull=True, timestamp__lt=self.cutoff)
        if cursor is not None:
            events = events.filter(timestamp__gte=cursor[0]).exclude(timestamp=cursor[0], pk__lte=cursor[1])
        rows = list(events.order_by("timestamp", "pk").values_list("pk", "timestamp")[: self.batch_size])
        if not rows:
            return {}, None
        if self.dry_run:
            deleted = len(rows)
        else:
            pks, params = _in("id", [pk for pk, _ in rows], "bigint")
            deleted = _execute(f"DELETE FROM {_table(Event)} WHERE {pks}", params)  # noqa: S608
        return {"events": deleted}, (rows[-1][1], rows[-1][0])


def _merged(counts: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    for name, value in more.items():
        counts[name] = counts.get(name, 0) + value
    return counts


# --- SQL helpers ----------------------------------------------------------------------------------------


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _in(column: str, values: Iterable, cast: str) -> tuple[str, list]:
    """`column IN values` as SQL and parameters: one array parameter on PostgreSQL, a list on SQLite."""
    values = list(values)
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s::{cast}[])", [values]
    if not values:
        return "1 = 0", []
    return f"{column} IN ({', '.join(['%s'] * len(values))})", values


def _fetch(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _execute(sql: str, params: list) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
