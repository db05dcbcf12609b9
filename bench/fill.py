"""Fill an app with N realistic runs fast, with COPY (PostgreSQL) or executemany (SQLite).

The spread is that of a busy production app: 20 models, 50 agents, 1,000 users, 90 days,
~5 % errors, ~1 % unfinished, tags, latency and cost, traces of agent -> chain -> llm/tool.
Rows go straight into tracing_run, bypassing ingestion, so that query benchmarks can start
from a million runs in minutes. Run from the repository root:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/observatory_bench \\
        python bench/fill.py --runs 1000000 --app bench
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "observatory.settings")
os.environ.setdefault("SECRET_KEY", "bench-only")

MODELS = [f"model-{n:02d}" for n in range(20)]
AGENTS = [f"agent-{n:02d}" for n in range(50)]
USERS = [f"user-{n:04d}" for n in range(1000)]
TAGS = ["production", "beta", "eu", "us", "vip", "high-risk", "batch", "canary"]
WORDS = "refund invoice parcel weather policy claim translate summary quarterly forecast login error".split()


def setup_django():
    import django

    django.setup()


TRACE = [("agent", None), ("chain", "agent"), ("tool", "chain"), ("llm", "chain"), ("llm", "chain")]


def run_rows(
    app_pk: int, count: int, *, seed: int = 1, days: int = 90, now: datetime | None = None, llm_only: bool = False
):
    """Yield tuples for COPY in COLUMNS order: traces of 1 agent, 1 chain, 1 tool and 2 llm runs
    (or, with `llm_only`, root llm calls only)."""
    import orjson

    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    made = 0
    while made < count:
        agent, user = rng.choice(AGENTS), rng.choice(USERS)
        start = now - timedelta(seconds=rng.uniform(0, days * 86400))
        tags = orjson.dumps(rng.sample(TAGS, rng.choice((0, 0, 1, 1, 2)))).decode()
        root = uuid.UUID(int=rng.getrandbits(128)).hex
        failed = rng.random() < 0.05
        unfinished = rng.random() < 0.01
        chain_id = uuid.UUID(int=rng.getrandbits(128)).hex
        ids = {"agent": root, "chain": chain_id}
        for kind, parent in ([("llm", None)] if llm_only else TRACE)[: count - made]:
            run_id = ids.get(kind) or uuid.UUID(int=rng.getrandbits(128)).hex
            parent_id = ids.get(parent)
            latency = round(rng.lognormvariate(0.3, 0.9), 3)
            status = "started" if unfinished else "error" if failed and kind in ("agent", "tool") else "success"
            model = rng.choice(MODELS) if kind == "llm" else None
            prompt, completion = (rng.randint(50, 4000), rng.randint(10, 800)) if kind == "llm" else (None, None)
            word = rng.choice(WORDS)
            name = agent if kind == "agent" else model if kind == "llm" else f"{kind}-{word}"
            text = f'{{"q": "{word} #{rng.randint(1, 99999)}"}}'
            yield (
                app_pk, run_id, parent_id, kind, name, None, agent, status, start,
                None if unfinished else start + timedelta(seconds=latency), None if unfinished else latency,
                True, not unfinished, model, prompt, completion,
                None if prompt is None else prompt + completion, tags, user, f"{user}@example.com",
                None, None, rng.random() < 0.001, text, '"ok"', '"boom"' if status == "error" else None,
                orjson.dumps({"agent": agent, "env": "prod"}).decode(), start, start,
                None, False, False,
            )  # fmt: skip
            made += 1


COLUMNS = [
    "app_id", "run_id", "parent_run_id", "type", "name", "run_name", "agent", "status", "started_at", "ended_at",
    "latency_s", "has_start", "has_end", "model", "prompt_tokens", "completion_tokens", "total_tokens",
    "tags", "user_id", "user_email", "user_props", "thread_id", "saved", "input", "output", "error",
    "metadata", "created_at", "updated_at", "cached_prompt_tokens", "positive_feedback",
    "negative_feedback",
]  # fmt: skip


def fill(app_pk: int, count: int, *, seed: int = 1, llm_only: bool = False) -> float:
    """Insert `count` runs; returns seconds taken."""
    from django.db import connection, transaction

    began = time.perf_counter()
    rows = run_rows(app_pk, count, seed=seed, llm_only=llm_only)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM tracing_run")
        (last_id,) = cursor.fetchone()
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY tracing_run ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(COLUMNS))
            sql = f"INSERT INTO tracing_run ({', '.join(COLUMNS)}) VALUES ({placeholders})"  # noqa: S608
            ops = connection.ops
            cursor.executemany(sql, ([ops.adapt_datetimefield_value(v) if isinstance(v, datetime) else v for v in r]
                                     for r in rows))  # fmt: skip
        # Every run has its RunCost row; a made-up price keeps the fill independent of the cost table.
        cursor.execute(
            "INSERT INTO tracing_runcost (run_pk, app_id, type, model, started_at, prompt_tokens, completion_tokens, "
            "cached_prompt_tokens, total_tokens, cache_hit, cost, cost_row_id, "
            "agent, user_id, status, latency_s, root) "
            "SELECT id, app_id, type, model, started_at, prompt_tokens, completion_tokens, "
            "NULL, total_tokens, FALSE, COALESCE(prompt_tokens * 3 + completion_tokens * 9, 0) / 1000000.0, NULL, "
            "agent, user_id, status, latency_s, parent_run_id IS NULL "
            "FROM tracing_run WHERE id > %s",
            [last_id],
        )
        cursor.execute(
            "INSERT INTO tracing_runsearch (run_pk, app_id, text) SELECT id, app_id, "
            "LOWER(name || %s || COALESCE(agent, '') || %s || COALESCE(model, '') || %s "
            "|| COALESCE(CAST(input AS text), '') || %s || COALESCE(CAST(output AS text), '')) "
            "FROM tracing_run WHERE id > %s",
            ["\n"] * 4 + [last_id],
        )
    if connection.vendor == "postgresql":
        # What autovacuum does after a bulk load (and this machine's server has it off):
        # statistics, the visibility map, and the GIN indexes' pending lists merged in.
        # Inside a transaction (a test's), VACUUM is not allowed: ANALYZE alone then.
        command = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
        with connection.cursor() as cursor:
            for table in ("tracing_run", "tracing_runcost", "tracing_runsearch"):
                cursor.execute(f"{command} {table}")
    return time.perf_counter() - began


def bench_app(slug: str):
    from apps.tenancy.services import get_or_create_app

    return get_or_create_app(app_slug=slug, org_slug="bench", create=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--app", default="bench")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    setup_django()
    from apps.tracing.models import Run

    app = bench_app(args.app)
    have = Run.objects.filter(app=app).count()
    if have >= args.runs:
        print(f"app '{app.slug}' already has {have} runs")
        return
    seconds = fill(app.pk, args.runs - have, seed=args.seed + have)
    print(f"filled {args.runs - have} runs into app '{app.slug}' ({app.public_id}) in {seconds:.1f} s")


if __name__ == "__main__":
    main()
