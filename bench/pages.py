"""Page benchmark: server time of the pages a person opens, on an app of `--runs` runs.

1. Fills the key's app up to `--runs` runs (default 1,000,000) with bench/fill.py, like
   bench/query.py, and logs in as a member of its organization (a session made in the
   database, sent as the session cookie).
2. Times LLM Calls (`/`) in its default view, with every single filter and sort, and a later
   page (the first page's "next" cursor); the run page of a `--trace-spans` trace (default
   500, reported through /api/report); the Threads list. One warm-up request each, then
   `--repeat` (default 20) timed; p50/p95 of `Server-Timing: app;dur=<ms>`.

Targets (issue 14): LLM Calls < 200 ms for the default view and every single filter, the run
page of a 500-span trace < 300 ms, the threads list < 200 ms (p95, server time).

    python bench/pages.py --url http://127.0.0.1:8100 --key obs_... --database-url postgres://...
    python bench/pages.py ... --quick      # 200 runs, 2 repeats, a 50-span trace: a smoke check
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    RESULTS_DIR,
    Database,
    HttpClient,
    log,
    machine_info,
    parse_server_args,
    publish,
    server_parser,
    table,
)  # noqa: E402
from bench.query import WARM_UP, ensure_runs, judged_ms, post_events, setup_django, timed, trace_events  # noqa: E402

TARGET_LIST_MS = 200.0
TARGET_RUN_MS = 300.0
VIEWER = "bench-viewer"
# bench/fill.py's spread: these values exist in a filled app.
SINGLE_FILTERS = [
    ("default (type=llm)", {}),
    ("every type", {"type": ""}),
    ("status=error", {"status": "error"}),
    ("status=timed_out", {"status": "timed_out"}),
    ("search=refund", {"search": "refund"}),
    ("model", {"model": "model-07"}),
    ("agent", {"agent": "agent-13"}),
    ("user_id", {"user_id": "user-0042"}),
    ("tags=vip", {"tags": "vip"}),
    ("min_latency_s=5", {"min_latency_s": "5"}),
    ("max_cost=0.0001", {"max_cost": "0.0001"}),
    ("saved=true", {"saved": "true"}),
    ("feedback=negative", {"feedback": "negative"}),
    ("range=24h", {"range": "24h"}),
    ("range=7d", {"range": "7d"}),
    ("range=6m", {"range": "6m"}),
    ("root=true", {"root": "true"}),
    ("by -cost", {"ordering": "-cost"}),
    ("by -latency", {"ordering": "-latency_s"}),
    ("by -tokens", {"ordering": "-total_tokens"}),
]
NEXT_CURSOR = re.compile(r'href="[^"]*(?:\?|&amp;)cursor=([A-Za-z0-9_-]+)')


def session_cookie(app) -> str:
    """A logged-in session of a member of the app's organization, as a Cookie header."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    from apps.tenancy.models import Membership

    user, _ = get_user_model().objects.get_or_create(username=VIEWER)
    Membership.objects.get_or_create(organization=app.organization, user=user)
    session = SessionStore()
    session[SESSION_KEY], session[BACKEND_SESSION_KEY] = str(user.pk), "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session["current_app_id"] = str(app.public_id)
    session.create()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def page_timing(client: HttpClient, path: str, repeat: int, target: float) -> dict:
    timing = timed(client, path, repeat)
    timing.pop("body")
    ok = timing["error"] is None
    return {**timing, "verdict": "ERROR" if not ok else "ok" if judged_ms(timing) < target else "SLOW"}


def run(
    *,
    url: str,
    key: str,
    database_url: str | None = None,
    runs: int = 1_000_000,
    repeat: int = 20,
    trace_spans: int = 500,
    seed: int = 1,
    json_path: str | Path | None = None,
    quiet: bool = False,
) -> dict:
    setup_django(database_url)
    from apps.tenancy.models import App

    db = Database()
    app = App.objects.get(pk=db.app_for_key(key)[0])
    fill = ensure_runs(app, runs, seed, quiet)
    api = HttpClient(url, key)
    pages = HttpClient(url)
    pages.headers["Cookie"] = session_cookie(app)
    scope = {"app": str(app.public_id)}
    try:
        log(quiet, f"page benchmark: {url}, app {app.public_id} ({fill['runs']:,} runs), repeat {repeat}")
        for _ in range(WARM_UP):
            pages.get("/?" + urlencode(scope))
        calls = []
        for label, params in SINGLE_FILTERS:
            path = "/?" + urlencode({**scope, **params})
            calls.append({"page": f"LLM Calls: {label}", "path": path,
                          **page_timing(pages, path, repeat, TARGET_LIST_MS)})  # fmt: skip
            log(quiet, f"  {calls[-1]['page']:<32} p95 {calls[-1]['server_p95_ms']} ms")
        first = pages.get("/?" + urlencode(scope))
        cursor = NEXT_CURSOR.search(first.body.decode(errors="replace"))
        if cursor:
            path = "/?" + urlencode({**scope, "cursor": cursor.group(1)})
            calls.append(
                {"page": "LLM Calls: next page", "path": path, **page_timing(pages, path, repeat, TARGET_LIST_MS)}
            )
        else:
            calls.append({"page": "LLM Calls: next page", "path": None, "error": "no next link on the first page",
                          "verdict": "ERROR"})  # fmt: skip
        root, events = trace_events(trace_spans, datetime.now(UTC).strftime("p%H%M%S%f"))
        post_events(api, events)
        run_page = {"page": f"run page ({trace_spans} spans)", "path": f"/runs/{root}/?" + urlencode(scope)}
        run_page.update(page_timing(pages, run_page["path"], repeat, TARGET_RUN_MS))
        threads = {"page": "Threads", "path": "/threads/?" + urlencode(scope)}
        threads.update(page_timing(pages, threads["path"], repeat, TARGET_LIST_MS))
    finally:
        api.close()
        pages.close()
    measured = [*calls, run_page, threads]
    result = {
        "benchmark": "pages",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "url": url,
        "app_id": str(app.public_id),
        "database": db.server_version(),
        "machine": machine_info(),
        "settings": {"repeat": repeat, "trace_spans": trace_spans},
        "fill": fill,
        "pages": measured,
        "summary": {
            "errors": [p["page"] for p in measured if p["verdict"] == "ERROR"],
            "slow": [p["page"] for p in measured if p["verdict"] == "SLOW"],
            "worst_list_p95_ms": max(
                (judged_ms(p) or 0 for p in [*calls, threads] if p["verdict"] != "ERROR"), default=None
            ),
            "run_page_p95_ms": judged_ms(run_page) if run_page["verdict"] != "ERROR" else None,
        },
    }
    return publish(result, report, json_path, quiet)


def report(result: dict) -> str:
    rows = [[p["page"], p.get("status"), p.get("server_p50_ms"), p.get("server_p95_ms"), p.get("bytes"), p["verdict"]]
            for p in result["pages"]]  # fmt: skip
    summary = result["summary"]
    return "\n".join([
        f"Pages: {result['fill']['runs']:,} runs, {result['database']}, {result['machine'].get('cpus')} CPUs",
        "",
        table(["page", "status", "server p50 ms", "server p95 ms", "bytes", "verdict"], rows),
        "",
        f"worst list p95: {summary['worst_list_p95_ms']} ms (target {TARGET_LIST_MS:.0f}); "
        f"run page p95: {summary['run_page_p95_ms']} ms (target {TARGET_RUN_MS:.0f})",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = server_parser(__doc__)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--trace-spans", type=int, default=500)
    parser.add_argument("--json", default=str(RESULTS_DIR / "pages.json"))
    parser.add_argument("--quick", action="store_true", help="200 runs, 2 repeats, a 50-span trace")
    args = parse_server_args(parser, argv, "to fill the app and log in")
    if args.quick:
        args.runs, args.repeat, args.trace_spans = 200, 2, 50
    return run(url=args.url, key=args.key, database_url=args.database_url, runs=args.runs, repeat=args.repeat,
               trace_spans=args.trace_spans, json_path=args.json)  # fmt: skip


if __name__ == "__main__":
    outcome = main()
    sys.exit(0 if not outcome["summary"]["errors"] else 1)
