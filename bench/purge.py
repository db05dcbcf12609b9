"""Retention benchmark: purge `--runs` expired runs while an ingestion load runs, and check what is left.

Target (issue 15): purging 1,000,000 expired runs on PostgreSQL takes minutes, not hours,
while a concurrent ingestion load keeps at least half its normal throughput.

1. Fills an app of its own (`purge-bench`, organization `bench`; not the key's app) with
   `--runs` runs (default 1,000,000) by bench/fill.py (COPY; traces agent -> chain -> tool/llm
   spread over the last 90 days, with their cost and search rows) and `--events-per-run`
   events per run (default 2: `<type>_start` and `<type>_end`, ~250 B payloads, made from
   the run rows with one INSERT ... SELECT each), then marks a leaf run deep in each of
   `--saved-traces` expired traces (default 5) as saved, on top of fill.py's ~0.1 % saved
   runs. Rows left by an earlier run of the benchmark are deleted first.
   What expires is chosen by the app's `retention_days` (`--retention-days`, default 1: with
   runs spread evenly over 90 days, 89/90 = ~98.9 % of them are expired), not by moving
   `started_at`: an UPDATE of every run would leave a dead copy of each row and index entry
   behind, which the purge would then wade through and no production table carries.
   The app's retention stays empty (keep forever) until the purge starts, so that no other
   retention job touches it while it is filled.
2. Ingestion baseline: bench/ingest.py's load (`--concurrency` 8 workers, batches of
   `--batch-size` 100 events, one persistent connection each) into the key's app for
   `--seconds` (default 10), alone, after an unreported warm-up.
3. Starts `apps.tracing.retention.purge_expired(app=<the bench app>)` in a thread of this
   process (Django set up on `--database-url`, like bench/query.py) and runs the same load,
   level after level of `--seconds`, until the purge returns. Reports the purge's wall time,
   runs and rows (runs, events, costs, search rows, feedback, messages, threads) deleted per
   second, and the load's events/s during the purge against the baseline. The ratio is
   judged on the end-to-end rate (accepted events over the level plus the time the server
   took to apply its queue, as in bench/ingest.py; the accepted rate with inline assembly),
   over the levels that ran wholly during the purge (all levels when the purge was shorter
   than one, as in `--quick`: then the figure includes load after the purge and says so).
   p99 is per level (run_level keeps no raw latencies across levels): the worst level's.
   One more level after the purge shows whether the baseline drifted.
4. Verifies: every expired run outside a saved trace is gone and every run of a saved trace
   (the saved run's ancestors and all their descendants) is still there with its events,
   cost and search rows; the unexpired runs are untouched; no event, cost or search row is
   left without its run; the purge's counts equal those expected; every accepted event of
   every level landed (bench/ingest.py's verify).

bench/fill.py writes neither feedback nor threads, so the purge's feedback and thread work
is not part of this figure. With the server's autovacuum off (as on CI-configured machines)
the run, event and queue tables are ANALYZEd as bench/ingest.py does before each level: before
the baseline and the level after, and during the purge every `--seconds` in a background thread,
as autoanalyze would (pausing the load between levels would leave the purge running alone).

Run from the repository root against a running server (gunicorn, production settings,
OBSERVATORY_RATE_LIMIT_PER_MINUTE=0) and its database:

    python bench/purge.py --url http://127.0.0.1:8100 --key obs_... \\
        --database-url postgres://postgres@127.0.0.1:5432/observatory_bench
    python bench/purge.py ... --quick          # 5,000 runs, 2 s levels: a smoke check

The key is `python manage.py create_api_key APP --org ORG --create` (last line of stdout):
an app of its own, since every event the load sends stays there. Results: a table on
stdout, JSON in bench/results/purge.json (`--json`). From Python (the smoke tests):
`run(url=..., key=..., runs=500, seconds=0.5)` with Django's configured connection.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
import uuid
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    RESULTS_DIR,
    Database,
    log,
    machine_info,
    parse_server_args,
    publish,
    server_parser,
    table,
)
from bench.ingest import autovacuum_off, check_level, run_level, verify, wait_for_assembly  # noqa: E402
from bench.query import setup_django  # noqa: E402

TARGET_RATIO = 0.5
TARGET_MINUTES_PER_MILLION = 15.0  # "minutes, not hours"
APP_SLUG = "purge-bench"
DELETED = ["runs", "events", "costs", "searches", "feedback", "messages", "threads_deleted"]


# --- the expired app ------------------------------------------------------------------------------


def wipe(app) -> int:
    """Delete whatever an earlier run of the benchmark left in the app (one statement per table)."""
    from django.db import connection

    from apps.threads.models import Thread, ThreadMessage
    from apps.tracing.models import Event, Feedback, Run, RunCost, RunSearch

    left = Run.objects.filter(app=app).count()
    with connection.cursor() as cursor:
        for model in (Event, RunSearch, RunCost, Feedback, ThreadMessage, Thread, Run):
            cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE app_id = %s", [app.pk])  # noqa: S608
    return left


def fill_events(app, per_run: int) -> int:
    """`per_run` events (start, end) for every run of the app, made from the run rows; returns how many."""
    from django.db import connection

    if not per_run:
        return 0
    postgres = connection.vendor == "postgresql"
    obj, js = ("jsonb_build_object", "") if postgres else ("json_object", "json")
    kinds = [
        ("_start", "s", "started_at", f"'input', {js}(input), 'metadata', {js}(metadata)"),
        ("_end", "e", "COALESCE(ended_at, started_at)", f"'output', {js}(output), 'latency_s', latency_s, "
         "'model', model, 'prompt_tokens', prompt_tokens, 'completion_tokens', completion_tokens"),
    ]  # fmt: skip
    made = 0
    with connection.cursor() as cursor:
        for suffix, tag, moment, extra in kinds[:per_run]:
            cursor.execute(
                "INSERT INTO tracing_event (app_id, run_id, name, timestamp, received_at, dedup_key, payload) "  # noqa: S608
                f"SELECT app_id, run_id, type || '{suffix}', {moment}, {moment}, 'fill-' || run_id || '-{tag}', "
                f"{obj}('id', 'fill-' || run_id || '-{tag}', 'name', type || '{suffix}', 'type', type, "
                f"'run_id', run_id, 'parent_run_id', parent_run_id, {extra}) "
                "FROM tracing_run WHERE app_id = %s",
                [app.pk],
            )
            made += cursor.rowcount
    if postgres:  # as bench/fill.py does for the run tables: what autovacuum does after a bulk load
        command = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
        with connection.cursor() as cursor:
            cursor.execute(f"{command} tracing_event")
    return made


def save_traces(app, cutoff: datetime, count: int) -> list[str]:
    """Mark a tool run (a grandchild of the root) of `count` expired traces, spread over the fill, saved."""
    from django.db.models import Max, Min

    from apps.tracing.models import Run

    roots = Run.objects.filter(app=app, parent_run_id=None, type="agent", started_at__lt=cutoff)
    bounds = roots.aggregate(low=Min("pk"), high=Max("pk"))
    if bounds["low"] is None:
        return []
    saved = []
    for step in range(count):
        low = bounds["low"] + (bounds["high"] - bounds["low"]) * step // max(count, 1)
        for root in roots.filter(pk__gte=low).order_by("pk").values_list("run_id", flat=True)[:20]:
            chains = Run.objects.filter(app=app, parent_run_id=root).values("run_id")
            leaf = Run.objects.filter(app=app, parent_run_id__in=chains, type="tool").values_list("pk", flat=True)
            pk = leaf.first()
            if pk is not None and root not in saved:
                Run.objects.filter(pk=pk).update(saved=True)
                saved.append(root)
                break
    return saved


def protected_runs(db: Database, app_pk: int) -> list[int]:
    """Primary keys of every run in the trace of a saved run: its ancestors and all their descendants."""
    rows = db.query(
        "WITH RECURSIVE up(id, run_id, parent_run_id) AS ("
        " SELECT id, run_id, parent_run_id FROM tracing_run WHERE app_id = %s AND saved = %s"
        " UNION SELECT r.id, r.run_id, r.parent_run_id FROM tracing_run r"
        " JOIN up ON r.app_id = %s AND r.run_id = up.parent_run_id"
        "), down(id, run_id) AS ("
        " SELECT id, run_id FROM up"
        " UNION SELECT r.id, r.run_id FROM tracing_run r JOIN down ON r.app_id = %s AND r.parent_run_id = down.run_id"
        ") SELECT id FROM down",
        [app_pk, True, app_pk, app_pk],
    )
    return sorted(pk for (pk,) in rows)


def counts(app, cutoff: datetime, protected: list[int]) -> dict:
    """What the verification compares before and after the purge."""
    from django.db.models import Exists, OuterRef

    from apps.tracing.models import Event, Run, RunCost, RunSearch

    runs = Run.objects.filter(app=app)
    expired = runs.filter(started_at__lt=cutoff)
    kept = runs.filter(pk__in=protected)
    kept_ids = kept.values("run_id")
    live = runs.filter(run_id=OuterRef("run_id"))
    return {
        "runs": runs.count(),
        "expired": expired.count(),
        "unexpired": runs.filter(started_at__gte=cutoff).count(),
        "events": Event.objects.filter(app=app).count(),
        "costs": RunCost.objects.filter(app=app).count(),
        "searches": RunSearch.objects.filter(app=app).count(),
        "expired_events": Event.objects.filter(app=app, run_id__in=expired.values("run_id")).count(),
        "protected": kept.count(),
        "protected_expired": kept.filter(started_at__lt=cutoff).count(),
        "protected_events": Event.objects.filter(app=app, run_id__in=kept_ids).count(),
        "protected_expired_events": Event.objects.filter(
            app=app, run_id__in=kept.filter(started_at__lt=cutoff).values("run_id")
        ).count(),
        "protected_costs": RunCost.objects.filter(run__in=protected).count(),
        "protected_searches": RunSearch.objects.filter(run__in=protected).count(),
        "orphan_events": Event.objects.filter(app=app).exclude(Exists(live)).count(),
    }


def prepare(app, db: Database, *, runs: int, events_per_run: int, retention_days: int, saved_traces: int, seed: int,
            quiet: bool) -> dict:  # fmt: skip
    """Wipe, fill, save a few traces; returns the fill's figures and the `now` the purge is run with."""
    from django.utils import timezone

    from bench.fill import fill

    app.retention_days = None  # keep forever while it fills: no retention job may start on it half-filled
    app.save(update_fields=["retention_days"])
    left = wipe(app)
    if left:
        log(quiet, f"  deleted {left:,} runs left in app {app.slug} by an earlier run")
    log(quiet, f"filling app {app.slug} with {runs:,} runs (bench/fill.py) and {events_per_run} events per run ...")
    fill_s = fill(app.pk, runs, seed=seed)
    began = time.perf_counter()
    events = fill_events(app, events_per_run)
    events_s = time.perf_counter() - began
    now = timezone.now()
    cutoff = now - timedelta(days=retention_days)
    saved = save_traces(app, cutoff, saved_traces)
    protected = protected_runs(db, app.pk)
    before = counts(app, cutoff, protected)
    log(
        quiet,
        f"  {runs:,} runs in {fill_s:.1f} s, {events:,} events in {events_s:.1f} s; {before['expired']:,} expired "
        f"(retention {retention_days} d), {before['protected_expired']:,} of them in saved traces",
    )
    return {
        "now": now,
        "cutoff": cutoff,
        "protected_ids": protected,
        "saved_traces": saved,
        "fill": {
            "runs": runs,
            "events": events,
            "fill_seconds": round(fill_s, 1),
            "events_seconds": round(events_s, 1),
            "left_by_earlier_run": left,
            "saved_traces": len(saved),
            "before": before,
            "expected_purged": {
                "runs": before["expired"] - before["protected_expired"],
                "events": before["expired_events"] - before["protected_expired_events"],
            },
        },
    }


# --- the load and the purge -----------------------------------------------------------------------


class Purge(threading.Thread):
    """`purge_expired(app=...)` in a thread of its own (its own database connection), timed."""

    def __init__(self, app, now: datetime, batch_size: int | None) -> None:
        super().__init__(daemon=True)
        self.app, self.now, self.batch_size = app, now, batch_size
        self.results: list = []
        self.error: BaseException | None = None
        self.began = self.ended = 0.0
        self.runs_so_far = 0

    def progress(self, result) -> None:
        """Called by the purge after each batch, with the app's counts so far."""
        self.runs_so_far = result.runs

    def run(self) -> None:
        from django.db import connections

        from apps.tracing.retention import purge_expired

        options = {} if self.batch_size is None else {"batch_size": self.batch_size}
        self.began = time.perf_counter()
        try:
            self.results = purge_expired(app=self.app, now=self.now, progress=self.progress, **options)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the main thread
            self.error = exc
        finally:
            self.ended = time.perf_counter()
            connections.close_all()  # this thread's connections


def overlap(level: dict, purge: Purge) -> float:
    """The share of the level's window during which the purge ran."""
    start, end = level["window"]
    inside = max(0.0, min(end, purge.ended) - max(start, purge.began))
    return round(inside / (end - start), 3) if end > start else 0.0


def purge_figures(purge: Purge, app, cutoff: datetime) -> dict:
    mine = [r for r in purge.results if r.app.pk == app.pk]
    totals = {
        f.name: sum(getattr(r, f.name) for r in mine)
        for f in fields(mine[0]) if f.name not in ("app", "cutoff", "busy")
    } if mine else {}  # fmt: skip
    seconds = purge.ended - purge.began
    rows = sum(totals.get(name, 0) for name in DELETED)
    runs = totals.get("runs", 0)
    return {
        "seconds": round(seconds, 2),
        "apps_in_result": len(purge.results),
        "cutoff": mine[0].cutoff if mine else None,
        "cutoff_expected": cutoff,
        "busy": any(getattr(r, "busy", False) for r in mine),  # another purge held the app
        "deleted": totals,
        "rows_deleted": rows,
        "runs_per_s": round(runs / seconds, 1) if seconds else None,
        "rows_per_s": round(rows / seconds, 1) if seconds else None,
        "minutes_per_million_runs": round(seconds / runs * 1_000_000 / 60, 2) if runs else None,
    }


def analyze_tables(db: Database) -> None:
    """What bench/ingest.py runs before each level when the server's autovacuum is off."""
    db.execute("ANALYZE tracing_run")
    db.execute("ANALYZE tracing_event")
    db.execute("VACUUM (ANALYZE) tracing_queuedbatch")


class Analyzer(threading.Thread):
    """`analyze_tables` every `interval` seconds until stopped, on a connection of its own.

    During the purge the statistics are kept fresh in the background, as autoanalyze would,
    rather than between levels: a pause of the load there would leave the purge running alone.
    """

    def __init__(self, database_url: str | None, interval: float) -> None:
        super().__init__(daemon=True)
        self.database_url, self.interval = database_url, interval
        self.stopped = threading.Event()
        self.rounds = 0

    def run(self) -> None:
        from django.db import connections

        db = Database(self.database_url)  # None: this thread's own Django connection
        try:
            while not self.stopped.wait(self.interval):
                analyze_tables(db)
                self.rounds += 1
        finally:
            db.close()
            connections.close_all()


def load_level(db: Database, *, url, key, prefix, concurrency, batch_size, seconds, seed, analyzing) -> dict:
    """One level of bench/ingest.py's load; `window` holds its start and end (perf_counter)."""
    if analyzing:
        analyze_tables(db)
    began = time.perf_counter()
    level = run_level(
        url=url, key=key, prefix=prefix, concurrency=concurrency, batch_size=batch_size, seconds=seconds, seed=seed
    )
    level["window"] = (began, time.perf_counter())
    check_level(level)
    return level


# --- the whole benchmark --------------------------------------------------------------------------


def run(
    *,
    url: str,
    key: str,
    database_url: str | None = None,
    runs: int = 1_000_000,
    retention_days: int = 1,
    events_per_run: int = 2,
    saved_traces: int = 5,
    seconds: float = 10.0,
    warmup_seconds: float | None = None,
    concurrency: int = 8,
    batch_size: int = 100,
    purge_batch_size: int | None = None,
    app_slug: str = APP_SLUG,
    analyze: str = "auto",
    seed: int = 1,
    json_path: str | Path | None = None,
    quiet: bool = False,
) -> dict:
    """Fill, measure the load alone, purge under the load, verify; returns (and writes) the results.

    `warmup_seconds` defaults to min(2, seconds); `purge_batch_size` to the retention job's own;
    `analyze` is bench/ingest.py's (auto: when the server's autovacuum is off, before the baseline and
    the level after the purge, and every `seconds` in the background during it).
    """
    setup_django(database_url)
    from django.conf import settings

    from bench.fill import bench_app

    db = Database()  # Django's connection, pointing at the server's database
    key_app_pk, key_app_public_id = db.app_for_key(key)
    app = bench_app(app_slug)
    if app.pk == key_app_pk:
        raise SystemExit(f"the key belongs to app '{app_slug}', the one this benchmark purges: use another app's key")
    tag = f"p{uuid.uuid4().hex[:8]}-"
    load = {"url": url, "key": key, "concurrency": concurrency, "batch_size": batch_size, "seconds": seconds}
    log(quiet, f"purge benchmark: {url}, load into app {key_app_public_id} (prefix {tag}), purge app {app.slug}")
    prepared = prepare(
        app, db, runs=runs, events_per_run=events_per_run, retention_days=retention_days, saved_traces=saved_traces,
        seed=seed, quiet=quiet,
    )  # fmt: skip
    analyzing = analyze == "always" or (analyze == "auto" and autovacuum_off(db))
    if analyzing:
        log(quiet, "  autovacuum is off: ANALYZE the run and event tables, VACUUM the queue, before or during levels")

    warmup_seconds = min(2.0, seconds) if warmup_seconds is None else warmup_seconds
    warmup = None
    if warmup_seconds > 0:
        warmup = load_level(db, **{**load, "seconds": warmup_seconds}, prefix=f"{tag}W-", seed=seed, analyzing=False)
        warmup.update(verify(db, key_app_pk, warmup))
    baseline = load_level(db, **load, prefix=f"{tag}B-", seed=seed + 7, analyzing=analyzing)
    baseline.update(verify(db, key_app_pk, baseline))
    log(quiet, f"  baseline: {_level_line(baseline)}")

    app.retention_days = retention_days  # the purge re-reads it
    app.save(update_fields=["retention_days"])
    purge = Purge(app, prepared["now"], purge_batch_size)
    log(quiet, f"purging app {app.slug} under the load ...")
    analyzer = Analyzer(database_url, seconds) if analyzing else None
    purge.start()
    if analyzer:
        analyzer.start()
    during = []
    while True:
        n = len(during)
        during.append(load_level(db, **load, prefix=f"{tag}D{n}-", seed=seed + 7 * (n + 2), analyzing=False))
        done = "purge done" if not purge.is_alive() else f"{purge.runs_so_far:,} runs purged so far"
        log(quiet, f"  level {n + 1}: {_level_line(during[-1])} ({done})")
        if not purge.is_alive():
            break
    purge.join()
    if analyzer:
        analyzer.stopped.set()
        analyzer.join()
    if purge.error is not None:
        raise purge.error
    drain = wait_for_assembly(db)  # the backlog the load left while the purge ran
    for level in during:
        level.update(verify(db, key_app_pk, level))
        level["purge_overlap"] = overlap(level, purge)
    after = load_level(db, **load, prefix=f"{tag}A-", seed=seed + 5, analyzing=analyzing)
    after.update(verify(db, key_app_pk, after))

    figures = purge_figures(purge, app, prepared["cutoff"])
    after_counts = counts(app, prepared["cutoff"], prepared["protected_ids"])
    result = {
        "benchmark": "purge",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "url": url,
        "app_id": key_app_public_id,
        "purge_app": app.slug,
        "purge_app_id": str(app.public_id),
        "database": db.server_version(),
        "machine": machine_info(),
        "settings": {
            "runs": runs,
            "retention_days": retention_days,
            "events_per_run": events_per_run,
            "saved_traces": saved_traces,
            "seconds": seconds,
            "concurrency": concurrency,
            "batch_size": batch_size,
            "purge_batch_size": purge_batch_size or settings.OBSERVATORY_RETENTION_BATCH,
            "analyze_before_levels": analyzing,
            "analyze_rounds_during_purge": analyzer.rounds if analyzer else 0,
        },
        "fill": prepared["fill"],
        "warmup": warmup,
        "baseline": baseline,
        "during": during,
        "during_drain_s": round(drain, 2),
        "after": after,
        "purge": figures,
        "after_counts": after_counts,
    }
    result["checks"] = checks(result, purge)
    _summarize(result)
    for level in [warmup, baseline, *during, after]:
        if level:
            level.pop("window")
    return publish(result, report, json_path, quiet)


def checks(result: dict, purge: Purge) -> dict:
    """Named verifications: True when they hold."""
    before, after = result["fill"]["before"], result["after_counts"]
    expected, deleted = result["fill"]["expected_purged"], result["purge"]["deleted"]
    levels = [result["baseline"], *result["during"], result["after"]]
    return {
        "the purge reports the app, at the expected cutoff, not busy, nothing skipped": bool(deleted)
        and result["purge"]["cutoff"] == result["purge"]["cutoff_expected"]
        and not result["purge"]["busy"]
        and not deleted.get("skipped"),
        "runs purged = expired runs outside saved traces": deleted.get("runs") == expected["runs"]
        and before["runs"] - after["runs"] == expected["runs"],
        "events purged = their events": deleted.get("events") == expected["events"]
        and before["events"] - after["events"] == expected["events"],
        "no expired unsaved run left": after["expired"] == before["protected_expired"],
        "saved traces intact (runs, events, costs, search rows)": all(
            after[name] == before[name]
            for name in ("protected", "protected_events", "protected_costs", "protected_searches")
        ),
        "unexpired runs untouched": after["unexpired"] == before["unexpired"],
        "no cost, search or event row without its run": after["costs"] == after["searches"] == after["runs"]
        and after["orphan_events"] == 0,
        "ingestion lost nothing, no errors": all(lv["verified"] == "OK" and not lv["errors"] for lv in levels),
    }


def _summarize(result: dict) -> None:
    baseline, during = result["baseline"], result["during"]
    full = [lv for lv in during if lv["purge_overlap"] >= 0.999]
    judged = full or during
    seconds = sum(lv["seconds"] for lv in judged)
    accepted = sum(lv["events_accepted"] for lv in judged)
    rate = round(accepted / seconds, 1) if seconds else 0.0
    end_to_end = round(accepted / (seconds + result["during_drain_s"]), 1) if seconds else 0.0
    p99s = [lv["p99_ms"] for lv in judged if lv["p99_ms"] is not None]
    base = baseline["end_to_end_events_per_s"]
    ratio = round(end_to_end / base, 3) if base else None
    figures = result["purge"]
    checks = result["checks"]
    result["summary"] = {
        "purge_seconds": figures["seconds"],
        "runs_purged": figures["deleted"].get("runs", 0),
        "runs_per_s": figures["runs_per_s"],
        "rows_per_s": figures["rows_per_s"],
        "minutes_per_million_runs": figures["minutes_per_million_runs"],
        "baseline_events_per_s": baseline["events_per_s"],
        "baseline_end_to_end_events_per_s": base,
        "during_events_per_s": rate,
        "during_end_to_end_events_per_s": end_to_end,
        "judged_levels": f"{len(full)} level{'s' * (len(full) > 1)} wholly during the purge" if full
        else f"all {len(during)} levels (the purge was shorter than one: load after it included)",
        "ratio": ratio,
        "baseline_p99_ms": baseline["p99_ms"],
        "during_p99_ms_worst_level": max(p99s, default=None),
        "during_p99_ms_median_level": statistics.median(p99s) if p99s else None,
        "after_events_per_s": result["after"]["events_per_s"],
        "ingestion_errors": sum(lv["errors"] for lv in [baseline, *during, result["after"]]),
        "all_verified": all(checks.values()),
    }  # fmt: skip
    minutes = figures["minutes_per_million_runs"]
    projected = "" if result["settings"]["runs"] >= 1_000_000 else ", projected from a smaller purge"
    result["targets"] = {
        f"purge <= {TARGET_MINUTES_PER_MILLION:.0f} min per 1,000,000 runs": _verdict(
            minutes is not None and minutes <= TARGET_MINUTES_PER_MILLION,
            None if minutes is None else f"{minutes} min{projected}",
        ),
        f"ingestion during the purge >= {TARGET_RATIO:.0%} of the baseline": _verdict(
            ratio is not None and ratio >= TARGET_RATIO, None if ratio is None else f"{ratio:.0%}"
        ),
        "expired unsaved runs gone, saved traces kept, nothing lost": "PASS" if all(checks.values()) else "FAIL",
    }


def _verdict(passed: bool, value: str | None) -> str:
    return "not measured" if value is None else ("PASS" if passed else "FAIL") + f" ({value})"


def _level_line(level: dict) -> str:
    return (
        f"{level['events_per_s']:>9,.0f} events/s, p50 {level['p50_ms']} ms, p99 {level['p99_ms']} ms, "
        f"errors {level['errors']}"
    )


def report(result: dict) -> str:
    s, figures, fill = result["summary"], result["purge"], result["fill"]
    levels = [("baseline", result["baseline"])]
    levels += [(f"purge {i + 1}", lv) for i, lv in enumerate(result["during"])]
    levels += [("after", result["after"])]
    rows = [
        [name, lv["seconds"], lv["events_per_s"], lv.get("end_to_end_events_per_s"), lv["p50_ms"], lv["p99_ms"],
         lv["errors"], lv["events_accepted"], lv.get("db_events"), lv.get("verified", "-"),
         "-" if "purge_overlap" not in lv else f"{lv['purge_overlap']:.0%}"]
        for name, lv in levels
    ]  # fmt: skip
    headers = ["level", "s", "events/s", "e2e ev/s", "p50 ms", "p99 ms", "errors", "accepted", "in db", "check",
               "during purge"]  # fmt: skip
    deleted = figures["deleted"]
    settings = result["settings"]
    lines = [
        f"Retention purge under load: {fill['runs']:,} runs ({fill['events']:,} events) in app {result['purge_app']}, "
        f"retention {settings['retention_days']} d -> {fill['before']['expired']:,} expired, "
        f"{fill['before']['protected_expired']:,} of them in saved traces; load {settings['concurrency']} workers x "
        f"batches of {settings['batch_size']}, {settings['seconds']} s levels ({result['database']}, "
        f"{result['machine']['cpus']} CPUs)",
        "",
        table(headers, rows),
        "",
        f"purge: {figures['seconds']:,.1f} s wall, {deleted.get('runs', 0):,} runs ({figures['runs_per_s'] or 0:,.0f}"
        f"/s), {figures['rows_deleted']:,} rows ({figures['rows_per_s'] or 0:,.0f}/s): "
        + ", ".join(
            f"{name} {deleted.get(name, 0):,}" for name in [*DELETED, "threads_refreshed", "protected", "skipped"]
        ),
        f"ingestion during the purge: {s['during_end_to_end_events_per_s']:,.0f} events/s end to end "
        f"({s['during_events_per_s']:,.0f} accepted) vs {s['baseline_end_to_end_events_per_s']:,.0f} alone = "
        + ("-" if s["ratio"] is None else f"{s['ratio']:.0%}")
        + f", on {s['judged_levels']}",
        f"p99 during the purge: {s['during_p99_ms_median_level']} ms (median level), "
        f"{s['during_p99_ms_worst_level']} ms (worst level), vs {s['baseline_p99_ms']} ms alone; "
        f"after the purge {s['after_events_per_s']:,.0f} events/s",
        "",
        "checks:",
        *(f"  {'ok  ' if ok else 'FAIL'} {name}" for name, ok in result["checks"].items()),
        "",
        "targets:",
        *(f"  {name}: {verdict}" for name, verdict in result["targets"].items()),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = server_parser(__doc__)
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs to fill the purge app with")
    parser.add_argument("--retention-days", type=int, default=1, help="of the purge app (1: ~98.9 %% expired)")
    parser.add_argument("--events-per-run", type=int, choices=[0, 1, 2], default=2, help="stored events per run")
    parser.add_argument("--saved-traces", type=int, default=5, help="expired traces with a saved run")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each load level")
    parser.add_argument("--concurrency", type=int, default=8, help="load workers")
    parser.add_argument("--batch-size", type=int, default=100, help="events per ingestion request")
    parser.add_argument("--purge-batch-size", type=int, help="the retention job's batch (default: its own)")
    parser.add_argument(
        "--analyze",
        choices=["auto", "always", "never"],
        default="auto",
        help="ANALYZE the tables before each level (auto: when the server's autovacuum is off)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=str(RESULTS_DIR / "purge.json"), help="where to write the results")
    parser.add_argument("--quick", action="store_true", help="a tiny run: 5,000 runs, 2 s levels")
    args = parse_server_args(parser, argv, "to fill, purge and verify")
    if args.quick:
        args.runs, args.seconds = min(args.runs, 5_000), 2.0
    if not 0 < args.retention_days < 90:
        parser.error("--retention-days must be between 1 and 89 (the fill spans 90 days)")
    return run(
        url=args.url, key=args.key, database_url=args.database_url, runs=args.runs,
        retention_days=args.retention_days, events_per_run=args.events_per_run, saved_traces=args.saved_traces,
        seconds=args.seconds, concurrency=args.concurrency, batch_size=args.batch_size,
        purge_batch_size=args.purge_batch_size, analyze=args.analyze, seed=args.seed, json_path=args.json,
    )  # fmt: skip


if __name__ == "__main__":
    outcome = main()
    sys.exit(0 if outcome["summary"]["all_verified"] else 1)
