"""Cost recalculation at scale: reprice N stored LLM runs after a price change.

Fills an app with N llm runs (bench/fill.py, COPY on PostgreSQL) if it has fewer, prices
its 20 models, then times `recalculate_costs` three ways: the first repricing (every run
changes), a second pass (idempotent: nothing changes, only reads and pricing), and a
repricing scoped to one model. Prints a table and writes JSON. From the repository root:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/observatory_bench \\
        python bench/recalc.py --runs 1000000          # the figure in docs/PERFORMANCE.md
    python bench/recalc.py --quick                      # a tiny smoke run (CI), any database
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "observatory.settings")
os.environ.setdefault("SECRET_KEY", "bench-only")


def set_prices(factor: Decimal) -> None:
    """One exact row per bench model, its prices multiplied by `factor`."""
    from apps.costs.models import ModelCost
    from bench.fill import MODELS

    for index, model in enumerate(MODELS):
        base = Decimal(index + 1) / Decimal(10_000)
        ModelCost.objects.update_or_create(
            model=model, valid_from=None,
            defaults={"prompt_price": base * factor, "completion_price": base * 3 * factor},
        )  # fmt: skip


def timed(label: str, **scope) -> dict:
    from apps.tracing.repricing import recalculate_costs

    began = time.perf_counter()
    summary = recalculate_costs(**scope)
    seconds = time.perf_counter() - began
    return {
        "case": label,
        "examined": summary.examined,
        "changed": summary.changed,
        "seconds": round(seconds, 2),
        "runs_per_s": round(summary.examined / seconds) if seconds else None,
        "cost_after": str(summary.cost_after),
    }


def run(*, runs: int, app_slug: str = "bench-recalc") -> dict:
    """Fill (if needed) and time the recalculation; returns the results."""
    from django.db import connection

    from apps.tracing.models import Run
    from bench.fill import MODELS, bench_app, fill

    app = bench_app(app_slug)
    have = Run.objects.filter(app=app, type="llm").count()
    filled = fill(app.pk, runs - have, seed=7 + have, llm_only=True) if have < runs else 0.0
    set_prices(Decimal(1))
    timed("warm-up: price the fill", app=app)
    set_prices(Decimal(2))
    results = [
        timed("every run changes", app=app),
        timed("second pass: nothing changes", app=app),
    ]
    set_prices(Decimal(3))
    results.append(timed("one model of 20 changes", app=app, model=MODELS[0]))
    return {"database": connection.vendor, "runs": runs, "fill_seconds": round(filled, 1), "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--app", default="bench-recalc")
    parser.add_argument("--quick", action="store_true", help="2,000 runs: a smoke run")
    parser.add_argument("--json", default="bench/results/recalc.json")
    args = parser.parse_args()
    import django

    django.setup()
    report = run(runs=2000 if args.quick else args.runs, app_slug=args.app)
    print(f"\nCost recalculation, {report['runs']:,} llm runs on {report['database']}")
    print(f"{'case':<32} {'examined':>10} {'changed':>10} {'seconds':>9} {'runs/s':>10}")
    for row in report["results"]:
        counts = f"{row['examined']:>10,} {row['changed']:>10,}"
        print(f"{row['case']:<32} {counts} {row['seconds']:>9} {row['runs_per_s']:>10,}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
