"""Where the CPU of ingestion goes, in process: bench/ingest.py's events, batch by batch, through
`ingest_batch` (the view's service: validation, storage, the run merge and its writes), under
cProfile. Prints milliseconds per 100 events, the busiest functions of the project, and the
database's share (the time spent waiting on it). Run from the repository root, on a database
of its own (it creates the app `profile` in the organization `profile`):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/observatory_profile \\
        python bench/profile_ingest.py --batches 200 --batch-size 100 [--assembly worker]

`--assembly worker` profiles what the web tier does in worker mode (store and queue) and then,
apart, what the workers do (`assemble_pending`).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "observatory.settings")
os.environ.setdefault("SECRET_KEY", "bench-only")

from bench.ingest import TraceSource  # noqa: E402

# Every query passes through Django's cursor wrapper: its cumulative time is the database's share
# (the round trip, the server's work, and the driver's reading of the results).
DATABASE_CALLS = {("django/db/backends/utils.py", "_execute"), ("django/db/backends/utils.py", "_executemany")}


def setup(assembly: str):
    import django

    django.setup()
    from django.conf import settings

    settings.OBSERVATORY_ASSEMBLY = assembly
    settings.CELERY_TASK_ALWAYS_EAGER = False  # the workers' share is profiled apart, not in the requests
    from apps.tenancy.services import get_or_create_app

    return get_or_create_app(app_slug="profile", org_slug="profile", create=True)


def profiled(work) -> tuple[float, pstats.Stats]:
    profile = cProfile.Profile()
    began = time.perf_counter()
    profile.enable()
    work()
    profile.disable()
    return time.perf_counter() - began, pstats.Stats(profile)


class StatementTimes:
    """Time per kind of statement (its verb and table), measured around each execute, unprofiled."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def __call__(self, execute, sql, params, many, context):
        words = sql.replace('"', "").split()
        verb = words[0].upper() if words else "?"
        table = next((w for w in words if w.startswith(("tracing_", "threads_", "tenancy_", "costs_"))), "")
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            key = f"{verb} {table}".strip()
            self.times[key] = self.times.get(key, 0.0) + time.perf_counter() - began

    def report(self, events: int, seconds: float) -> str:
        lines = [f"   unprofiled: {seconds * 1e5 / events:.1f} ms per 100 events; its statements, ms per 100 events:"]
        for key, spent in sorted(self.times.items(), key=lambda item: -item[1])[:12]:
            lines.append(f"   {spent * 1e5 / events:7.2f}  {key}")
        return "\n".join(lines)


def timed_statements(work, events: int) -> str:
    from django.db import connection

    times = StatementTimes()
    began = time.perf_counter()
    with connection.execute_wrapper(times):
        work()
    return times.report(events, time.perf_counter() - began)


def summary(title: str, seconds: float, stats: pstats.Stats, events: int, top: int) -> str:
    per_100 = seconds * 1000 * 100 / events
    database = sum(row[3] for (path, _, name), row in stats.stats.items()
                   if any(path.endswith(p) and name == n for p, n in DATABASE_CALLS))  # fmt: skip
    out = io.StringIO()
    out.write(f"\n== {title}: {per_100:.1f} ms per 100 events (profiled; {events:,} events in {seconds:.1f} s)\n")
    out.write(f"   in the database driver (queries and their results): {database * 1000 * 100 / events:.1f} ms\n")
    rows = [
        (row[2], row[3], key) for key, row in stats.stats.items() if "/apps/" in key[0] or "/observatory/" in key[0]
    ]
    out.write("   the project's busiest functions, own time (tottime) and with callees (cumtime), ms per 100 events:\n")
    for own, cumulative, (path, line, name) in sorted(rows, reverse=True)[:top]:
        where = path.split("/apps/")[-1] if "/apps/" in path else path.split("/observatory/")[-1]
        out.write(f"   {own * 1e5 / events:7.2f} {cumulative * 1e5 / events:7.2f}  {where}:{line} {name}\n")
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--assembly", choices=["inline", "worker"], default="inline")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args(argv)
    app = setup(args.assembly)
    from apps.ingestion.assembly import assemble_pending
    from apps.ingestion.services import ingest_batch

    source = TraceSource(f"p{args.seed}-", args.seed)
    events = args.batches * args.batch_size

    def requests(batches):
        def send():
            for batch in batches:
                result = ingest_batch(app=app, raw_events=batch)
                assert not result.errors, result.errors

        return send

    for batch in (source.take(args.batch_size) for _ in range(5)):  # warm-up: imports, caches, prices
        ingest_batch(app=app, raw_events=batch)
    assemble_pending()
    for timing in ("profiled", "unprofiled"):  # the same amount of new events each time
        batches = [source.take(args.batch_size) for _ in range(args.batches)]
        if timing == "profiled":
            seconds, stats = profiled(requests(batches))
            print(summary(f"requests ({args.assembly})", seconds, stats, events, args.top))
            if args.assembly == "worker":
                seconds, stats = profiled(assemble_pending)
                print(summary("workers (assemble_pending)", seconds, stats, events, args.top))
        else:
            print(f"\n== requests ({args.assembly})\n" + timed_statements(requests(batches), events))
            if args.assembly == "worker":
                print("\n== workers (assemble_pending)\n" + timed_statements(assemble_pending, events))


if __name__ == "__main__":
    main()
