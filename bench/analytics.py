"""Analytics benchmark: server time of the analytics API and page for a 30-day window.

1. Fills the key's app up to `--runs` runs (default 1,000,000) with bench/fill.py, like
   bench/query.py (90 days of runs: a 30-day window holds a third of them), and logs in as a
   member of its organization, like bench/pages.py.
2. Times `GET /api/analytics/usage` (by model, agent and user, by day; by model by hour over
   two days), `/api/analytics/models`, `/agents`, `/errors`, a filtered usage, and the
   Analytics page (`/analytics/`), each with one warm-up request then `--repeat` (default 20)
   timed; p50/p95 of `Server-Timing: app;dur=<ms>`.

Targets (issue 17): every endpoint < 300 ms, the page < 500 ms (p95, server time).

    python bench/analytics.py --url http://127.0.0.1:8100 --key obs_... --database-url postgres://...
    python bench/analytics.py ... --quick      # 200 runs, 2 repeats: a smoke check
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    RESULTS_DIR,
    Database,
    HttpClient,
    log,
    machine_info,
    parse_server_args,
    publish,
    server_parser,
    table,
)
from bench.pages import page_timing, session_cookie  # noqa: E402
from bench.query import ensure_runs, judged_ms, setup_django  # noqa: E402

TARGET_API_MS = 300.0
TARGET_PAGE_MS = 500.0
DAY = timedelta(days=1)


def requests(app, now: datetime) -> list[tuple[str, str, float]]:
    """(label, path, target) of every request timed: a 30-day window unless the label says otherwise."""
    month = {"app_id": str(app.public_id), "from": (now - 30 * DAY).isoformat(), "to": now.isoformat()}
    two_days = {**month, "from": (now - 2 * DAY).isoformat()}
    api = [
        ("usage by model, by day", "usage", {**month, "group_by": "model", "interval": "day"}),
        ("usage by agent, by day", "usage", {**month, "group_by": "agent", "interval": "day"}),
        ("usage by user, by day", "usage", {**month, "group_by": "user", "interval": "day"}),
        ("usage by model, by hour (2 days)", "usage", {**two_days, "group_by": "model", "interval": "hour"}),
        ("usage of one agent, in New York", "usage", {**month, "agent": "agent-13", "tz": "America/New_York"}),
        ("models", "models", month),
        ("agents", "agents", month),
        ("errors", "errors", month),
    ]
    page = {"app": str(app.public_id), "from": month["from"], "to": month["to"]}
    return [
        *((f"API {label}", f"/api/analytics/{name}?{urlencode(params)}", TARGET_API_MS) for label, name, params in api),
        ("page /analytics/", f"/analytics/?{urlencode(page)}", TARGET_PAGE_MS),
    ]


def run(
    *,
    url: str,
    key: str,
    database_url: str | None = None,
    runs: int = 1_000_000,
    repeat: int = 20,
    seed: int = 1,
    json_path: str | Path | None = None,
    quiet: bool = False,
) -> dict:
    setup_django(database_url)
    from apps.tenancy.models import App

    db = Database()
    app = App.objects.get(pk=db.app_for_key(key)[0])
    fill = ensure_runs(app, runs, seed, quiet)
    api, pages = HttpClient(url, key), HttpClient(url)
    pages.headers["Cookie"] = session_cookie(app)
    measured = []
    try:
        log(quiet, f"analytics benchmark: {url}, app {app.public_id} ({fill['runs']:,} runs), repeat {repeat}")
        for label, path, target in requests(app, datetime.now(UTC)):
            client = pages if path.startswith("/analytics/") else api
            measured.append({"request": label, "path": path, **page_timing(client, path, repeat, target)})
            log(quiet, f"  {label:<40} p95 {measured[-1].get('server_p95_ms')} ms")
    finally:
        api.close()
        pages.close()
    result = {
        "benchmark": "analytics",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "url": url,
        "app_id": str(app.public_id),
        "database": db.server_version(),
        "machine": machine_info(),
        "settings": {"repeat": repeat},
        "fill": fill,
        "requests": measured,
        "summary": {
            "errors": [m["request"] for m in measured if m["verdict"] == "ERROR"],
            "slow": [m["request"] for m in measured if m["verdict"] == "SLOW"],
            "worst_api_p95_ms": max(
                (judged_ms(m) or 0 for m in measured if m["request"].startswith("API") and m["verdict"] != "ERROR"),
                default=None,
            ),
        },
    }
    return publish(result, report, json_path, quiet)


def report(result: dict) -> str:
    rows = [[m["request"], m.get("status"), m.get("server_p50_ms"), m.get("server_p95_ms"), m.get("bytes"),
             m["verdict"]] for m in result["requests"]]  # fmt: skip
    summary = result["summary"]
    return "\n".join([
        f"Analytics: {result['fill']['runs']:,} runs, {result['database']}, {result['machine'].get('cpus')} CPUs",
        "",
        table(["request", "status", "server p50 ms", "server p95 ms", "bytes", "verdict"], rows),
        "",
        f"worst API p95: {summary['worst_api_p95_ms']} ms (target {TARGET_API_MS:.0f}); "
        f"slow: {', '.join(summary['slow']) or 'none'}; errors: {', '.join(summary['errors']) or 'none'}",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = server_parser(__doc__)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", default=str(RESULTS_DIR / "analytics.json"))
    parser.add_argument("--quick", action="store_true", help="200 runs, 2 repeats")
    args = parse_server_args(parser, argv, "to fill the app and log in")
    if args.quick:
        args.runs, args.repeat = 200, 2
    return run(url=args.url, key=args.key, database_url=args.database_url, runs=args.runs, repeat=args.repeat,
               json_path=args.json)  # fmt: skip


if __name__ == "__main__":
    outcome = main()
    sys.exit(0 if not outcome["summary"]["errors"] else 1)
