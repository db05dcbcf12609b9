"""Fault injection against a real stack: PostgreSQL stopped under load, Celery workers killed
mid-batch, mid-recalculation and mid-purge (issue 19, docs/OPERATIONS.md "Faults").

It builds a private PostgreSQL cluster (so that it may stop it), runs gunicorn, a Celery worker
and beat on it (bench/stack.py), and checks:

- **postgres-down**: clients keep posting, to a web tier in each assembly mode, while
  PostgreSQL is stopped for a few seconds and started again. Every answer is a 200 or a 503
  with Retry-After (never a 500, never a dropped connection); a 503'd batch is all there or not
  at all; the server answers 200 again by itself once PostgreSQL is back, and every event
  answered 200 is applied, in worker mode by the worker without a restart.
- **worker-killed**: the same traces (runs, costs, threads, messages, feedback, saved runs, old
  and new) go to two apps. The first is applied, recalculated and purged without a fault; for
  the second, the worker is killed with SIGKILL (the whole process group) in the middle of
  applying the queue, then of a cost recalculation, then of a purge, and a new worker started.
  The work completes by itself (beat's sweeps, the broker's redelivery) and both apps end
  identical, run by run and thread by thread: nothing lost, nothing counted twice.

Run from the repository root with Redis running (it uses, and flushes, Redis database 12):

    python bench/faults.py [--redis-url redis://127.0.0.1:6379/12] [--json bench/results/faults.json]

Exits non-zero when a check fails. Small chunk and batch sizes make each job many transactions
long, so that a kill lands in the middle (the `ENV` below); they are settings, not test hooks.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import HttpClient, publish  # noqa: E402
from bench.stack import Postgres, Stack, wait_until  # noqa: E402

ENV = {
    "OBSERVATORY_ASSEMBLY_BATCH": "100",  # events per worker transaction
    "OBSERVATORY_RECALC_CHUNK": "20",  # run ids per recalculation transaction
    "OBSERVATORY_RECALC_STALE_SECONDS": "3",  # a dead worker's job is taken over after this
    "OBSERVATORY_RETENTION_BATCH": "20",  # runs per purge transaction
    "OBSERVATORY_TASK_REDELIVERY_SECONDS": "5",  # a vanished worker's task is delivered again after this
}
TRACES = 200  # per app: 14 events each, half of them older than the apps' 30 days of retention
OUTAGE_SECONDS = 5


# --- the events ---------------------------------------------------------------------------------


def trace(n: int, now: datetime) -> list[dict]:
    """One trace of the property tests' shape: agent -> chain -> (llm, failing tool, llm), a
    conversation in one of 20 threads, feedback on a run and a message, every tenth one saved."""
    base = now - timedelta(days=40 if n % 2 == 0 else 0, minutes=n)

    def at(second: int) -> str:
        return (base + timedelta(seconds=second)).isoformat()

    a, c, l, t, x, m = (f"{kind}{n}" for kind in "acltxm")  # noqa: E741
    thread = {"thread_id": f"t{n % 20}"}
    events = [
        {"name": "agent_start", "run_id": a, "timestamp": at(0), "input": {"q": f"parcel {n}?"},
         "metadata": {"agent": "support", "user_id": f"u{n % 7}", **thread}},
        {"name": "chat", "role": "user", "content": f"where is parcel {n}?", "run_id": a,
         "message_id": f"{m}a", "timestamp": at(1), **thread},
        {"name": "chain_start", "run_id": c, "parent_run_id": a, "timestamp": at(2), "input": "plan"},
        {"name": "llm_start", "run_id": l, "parent_run_id": c, "timestamp": at(3), "model": "m",
         "input": [{"role": "user", "content": f"parcel {n}"}]},
        {"name": "llm_end", "run_id": l, "timestamp": at(5), "prompt_tokens": 100 + n, "completion_tokens": 30,
         "output": {"role": "assistant", "content": "In Paris."}},
        {"name": "tool_start", "run_id": t, "parent_run_id": c, "timestamp": at(6), "input": {"id": n}},
        {"name": "tool_error", "run_id": t, "timestamp": at(7), "error": {"message": "timeout"}},
        {"name": "llm_call", "run_id": x, "parent_run_id": c, "timestamp": at(8), "model": "m", "total_tokens": 40},
        {"name": "chain_end", "run_id": c, "timestamp": at(9), "output": "In Paris."},
        {"name": "chat", "role": "assistant", "content": "In Paris.", "run_id": l, "message_id": f"{m}b",
         "timestamp": at(10), **thread},
        {"name": "agent_end", "run_id": a, "timestamp": at(11), "output": {"answer": "In Paris."}},
        {"name": "feedback", "run_id": l, "rating": "positive", "timestamp": at(12)},
        {"name": "feedback", "message_id": f"{m}b", "rating": "negative", "timestamp": at(13)},
    ]  # fmt: skip
    if n % 10 == 0:
        events.append({"name": "saved", "run_id": c, "timestamp": at(14)})
    return [{**event, "id": f"{n}-{i}"} for i, event in enumerate(events)]


def post_all(url: str, key: str, events: list[dict], batch: int = 100) -> None:
    client = HttpClient(url, key)
    for start in range(0, len(events), batch):
        body = orjson.dumps({"events": events[start : start + batch]})
        reply = client.request("POST", "/api/report", body, {"Content-Type": "application/json"})
        if reply.status != 200 or reply.json()["rejected"]:
            raise RuntimeError(f"report failed: {reply.status} {reply.body[:300]!r}")
    client.close()


# --- reading the database (Django in this process, on the stack's database) -----------------------


def app_state(app) -> dict:
    """Everything the events left in one app, without surrogate keys or write times."""
    from django.db.models import F

    from apps.threads.models import Thread, ThreadMessage
    from apps.tracing.models import Event, Feedback, Run, RunCost, RunSearch

    return {
        "events": Event.objects.filter(app=app).count(),
        "runs": sorted(Run.objects.filter(app=app).values_list("run_id", "status", "agent", "saved")),
        "costs": sorted((r, str(c)) for r, c in RunCost.objects.filter(app=app).values_list("run__run_id", "cost")),
        "search": RunSearch.objects.filter(app=app).count(),
        "threads": sorted(
            (t, m, tok, str(cost))
            for t, m, tok, cost in Thread.objects.filter(app=app).values_list(
                "thread_id", "message_count", "total_tokens", "total_cost"
            )
        ),
        "messages": sorted(
            ThreadMessage.objects.filter(app=app).annotate(t=F("thread__thread_id")).values_list("t", "message_id")
        ),
        "feedback": sorted(
            Feedback.objects.filter(app=app).values_list("run_id", "message_id", "rating", "timestamp"), key=str
        ),
    }


def differences(found: dict, expected: dict) -> dict:
    """Per table that differs, a few rows found and not expected (+) and expected and not found (-)."""
    diff = {}
    for table, rows in found.items():
        if rows != expected[table]:
            if isinstance(rows, list):
                extra, missing = set(rows) - set(expected[table]), set(expected[table]) - set(rows)
                diff[table] = {
                    "+": sorted(extra)[:3],
                    "-": sorted(missing)[:3],
                    "count": [len(rows), len(expected[table])],
                }
            else:
                diff[table] = [rows, expected[table]]
    return diff


def queue_empty() -> bool:
    from apps.tracing.models import QueuedBatch

    return not QueuedBatch.objects.exists()


def run_count(*apps) -> int:
    from apps.tracing.models import Run

    return Run.objects.filter(app__in=apps).count()


def reconnect() -> None:
    from django.db import connections

    connections.close_all()


# --- the scenarios ------------------------------------------------------------------------------


class Load(threading.Thread):
    """One client posting batches of `size` llm_call events with new run ids until stopped;
    each answer is kept with its time and the batch's run ids."""

    def __init__(self, url: str, key: str, name: str, size: int = 20) -> None:
        super().__init__(daemon=True)
        self.client, self.name, self.size = HttpClient(url, key, timeout=30), name, size
        self.stopping, self.answers = threading.Event(), []

    def run(self) -> None:
        sent = 0
        while not self.stopping.is_set():
            ids = [f"{self.name}-{sent + i}" for i in range(self.size)]
            sent += self.size
            body = orjson.dumps({"events": [{"name": "llm_call", "run_id": r, "model": "m", "total_tokens": 9,
                                             "id": r} for r in ids]})  # fmt: skip
            began = time.monotonic()
            try:
                reply = self.client.request("POST", "/api/report", body, {"Content-Type": "application/json"})
                outcome = (reply.status, reply.headers.get("retry-after"))
            except OSError as exc:
                outcome = (f"connection error: {exc}", None)
            self.answers.append({"at": began, "status": outcome[0], "retry_after": outcome[1], "ids": ids})
            time.sleep(0.02)


def postgres_down(webs: dict[str, str], pg: Postgres, key: str) -> dict:
    """Three clients per web tier (`webs`: assembly mode -> URL) post while PostgreSQL is stopped
    and started again; what each tier answered, and what reached the database."""
    loads = {mode: [Load(url, key, f"{mode}{n}") for n in range(3)] for mode, url in webs.items()}
    every = [load for group in loads.values() for load in group]
    for load in every:
        load.start()
    time.sleep(2)
    down = time.monotonic()
    pg.stop("fast")
    time.sleep(OUTAGE_SECONDS)
    pg.start()
    up = time.monotonic()
    time.sleep(6)
    for load in every:
        load.stopping.set()
    for load in every:
        load.join()
    reconnect()
    result: dict = {"outage_s": round(up - down, 1), "checks": {}}
    for mode, group in loads.items():
        answers = sorted((a for load in group for a in load.answers), key=lambda a: a["at"])
        result[mode] = outcome(answers, up)
        result["checks"].update({f"{mode}: {name}": ok for name, ok in result[mode].pop("checks").items()})
    return result


def outcome(answers: list[dict], up: float) -> dict:
    """What the clients of one web tier saw, and the checks on it (PostgreSQL came back at `up`)."""
    accepted = {r for a in answers if a["status"] == 200 for r in a["ids"]}
    drained = _drain(lambda: _present(accepted) == len(accepted))
    refused = [a for a in answers if a["status"] == 503]
    partial = [a["ids"][0] for a in refused if 0 < _present(set(a["ids"])) < len(a["ids"])]
    statuses: dict[str, int] = {}
    for a in answers:
        statuses[str(a["status"])] = statuses.get(str(a["status"]), 0) + 1
    after = [a for a in answers if a["at"] > up + 3]  # PostgreSQL back for 3 s
    first_ok = next((a["at"] for a in answers if a["at"] > up and a["status"] == 200), None)
    return {
        "statuses": statuses,
        "accepted_events": len(accepted),
        "recovered_after_s": None if first_ok is None else round(first_ok - up, 2),
        "drained_after_s": drained,
        "checks": {
            "only 200 and 503": set(statuses) <= {"200", "503"},
            "the outage was seen (503s)": bool(refused),
            "every 503 says Retry-After": all(a["retry_after"] for a in refused),
            "no 503'd batch half-written": not partial,
            "200 again once PostgreSQL is back": bool(after) and all(a["status"] == 200 for a in after),
            "every event answered 200 is applied": drained is not None,
        },
    }


def _present(run_ids: set[str]) -> int:
    from apps.tracing.models import Run

    return Run.objects.filter(run_id__in=run_ids).count()


def _until(check, timeout: float = 90) -> float | None:
    """Seconds until `check()` holds (None if it does not within `timeout`)."""
    began = time.monotonic()
    try:
        wait_until(check, timeout=timeout, what="", interval=0.25)
    except TimeoutError:
        return None
    return round(time.monotonic() - began, 1)


def _drain(check=lambda: True) -> float | None:
    """Seconds until the queue is empty and `check()` holds (None if not within 90 s)."""
    return _until(lambda: queue_empty() and check())


def kill_when(stack: Stack, condition, what: str) -> None:
    """SIGKILL the worker (its whole process group) as soon as `condition()` holds, start a new one."""
    wait_until(condition, timeout=120, what=what, interval=0.02)
    stack.kill("worker", signal.SIGKILL)
    stack.start_worker()


def worker_killed(stack: Stack, key_clean: str, key_killed: str) -> dict:
    """Apps `clean` and `killed` get the same traces; the worker is killed during the second's work."""
    from apps.costs.models import ModelCost, Recalculation
    from apps.tenancy.models import App
    from apps.tracing.models import RunCost
    from apps.tracing.repricing import request_recalculation
    from apps.tracing.retention import purge_expired
    from apps.tracing.tasks import purge_expired_task

    clean, killed = App.objects.get(slug="clean"), App.objects.get(slug="killed")
    now = datetime.now(UTC)
    events = [event for n in range(TRACES) for event in trace(n, now)]
    result: dict = {"events_per_app": len(events), "checks": {}}
    checks = result["checks"]

    # 1. Applying the queue. The clean app first, undisturbed; then the other app's events are
    # queued with no worker running, and the worker killed once it has applied some of them.
    post_all(stack.url, key_clean, events)
    _drain()
    stack.kill("worker", signal.SIGKILL)
    post_all(stack.url, key_killed, events)
    stack.start_worker()
    kill_when(stack, lambda: run_count(killed) > 0, "the worker applying the queue")
    result["batch"] = {"runs_when_killed": run_count(killed), "queue_left": not queue_empty()}
    checks["killed mid-batch (queue left)"] = result["batch"]["queue_left"]
    result["batch"]["drained_after_s"] = _drain()
    result["batch"]["differences"] = differences(app_state(killed), app_state(clean))
    checks["queue applied after the kill, as once"] = not result["batch"]["differences"]

    # 2. A cost recalculation of both apps, its worker killed after some chunks committed.
    ModelCost.objects.filter(model="m").update(prompt_price="0.05", completion_price="0.07")
    job = request_recalculation(reason="faults: worker killed")
    kill_when(stack, lambda: Recalculation.objects.get(pk=job.pk).examined > 0, "the recalculation started")
    job.refresh_from_db()
    result["recalculation"] = {"examined_when_killed": job.examined, "total": job.total}
    checks["killed mid-recalculation"] = job.state == Recalculation.State.RUNNING and job.examined < job.total
    resumed = _until(lambda: Recalculation.objects.get(pk=job.pk).state == Recalculation.State.DONE, timeout=90)
    job.refresh_from_db()
    result["recalculation"]["done_after_s"] = resumed
    llm_runs = RunCost.objects.filter(type="llm").count()
    result["recalculation"].update(attempts=job.attempt, examined=job.examined, changed=job.changed)
    checks["recalculation resumed, each run counted once"] = job.examined == job.changed == job.total == llm_runs
    result["recalculation"]["differences"] = differences(app_state(killed), app_state(clean))
    checks["recalculated alike"] = not result["recalculation"]["differences"]

    # 3. The retention job, killed after some batches; the broker delivers it again.
    expected = {r.app.pk: r.runs for r in purge_expired(dry_run=True)}
    before = run_count(clean, killed)
    purge_expired_task.delay()
    kill_when(stack, lambda: run_count(clean, killed) < before, "the purge started")
    left = run_count(clean, killed)
    result["purge"] = {"runs_before": before, "runs_when_killed": left, "expected_deleted": expected}
    target = before - expected[clean.pk] - expected[killed.pk]
    checks["killed mid-purge"] = target < left < before
    result["purge"]["done_after_s"] = _until(lambda: run_count(clean, killed) == target, timeout=120)
    result["purge"]["runs_after"] = run_count(clean, killed)
    checks["purge completed after the kill"] = result["purge"]["runs_after"] == target
    result["purge"]["differences"] = differences(app_state(killed), app_state(clean))
    checks["purged alike (threads corrected once)"] = not result["purge"]["differences"]
    return result


# --- the run ------------------------------------------------------------------------------------


SCENARIOS = ("worker_killed", "postgres_down")


def run(
    *, redis_url: str, scenarios=SCENARIOS, json_path: str | Path | None = None, quiet: bool = False, keep: bool = False
) -> dict:
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    root = Path(tempfile.mkdtemp(prefix="observatory-faults-"))
    pg = Postgres(root / "postgres").init()
    pg.start()
    database_url = pg.create_database("faults")
    os.environ.update(DATABASE_URL=database_url, REDIS_URL=redis_url, SECRET_KEY="bench-only", **ENV)
    os.environ["DJANGO_SETTINGS_MODULE"] = "observatory.settings"
    result: dict = {"workdir": str(root)}
    try:
        with Stack(database_url=database_url, redis_url=redis_url, workdir=root, env=ENV) as stack:
            keys = [stack.setup(slug, "faults") for slug in ("clean", "killed", "outage")]
            stack.manage("set_model_cost", "m", "--prompt", "0.01", "--completion", "0.02")
            import django

            django.setup()
            stack.start_web()
            stack.start_worker()
            stack.start_beat()
            if "worker_killed" in scenarios:
                result["worker_killed"] = worker_killed(stack, keys[0], keys[1])
            if "postgres_down" in scenarios:
                inline = stack.start_web(name="web-inline", env={"OBSERVATORY_ASSEMBLY": "inline"})
                result["postgres_down"] = postgres_down({"worker": stack.url, "inline": inline}, pg, keys[2])
            for name in list(stack.processes):
                stack.check_running(name)
    finally:
        reconnect()
        pg.destroy()
        if not keep:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
    checks = {name: ok for scenario in scenarios for name, ok in result[scenario]["checks"].items()}
    result["failed"] = [name for name, ok in checks.items() if not ok]
    return publish(result, report, json_path, quiet)


def report(result: dict) -> str:
    lines = []
    for scenario in (name for name in SCENARIOS if name in result):
        lines.append(f"{scenario}:")
        details = {k: v for k, v in result[scenario].items() if k != "checks"}
        lines += [f"  {k}: {v}" for k, v in details.items()]
        lines += [f"  [{'ok' if ok else 'FAILED'}] {name}" for name, ok in result[scenario]["checks"].items()]
    lines.append("FAILED: " + ", ".join(result["failed"]) if result["failed"] else "all checks passed")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12", help="a Redis database to flush and use")
    parser.add_argument("--json", dest="json_path")
    parser.add_argument("--scenario", choices=SCENARIOS, action="append", help="only these (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) afterwards")
    args = parser.parse_args()
    result = run(
        redis_url=args.redis_url, scenarios=args.scenario or SCENARIOS, json_path=args.json_path, keep=args.keep
    )
    sys.exit(1 if result["failed"] else 0)


if __name__ == "__main__":
    main()
