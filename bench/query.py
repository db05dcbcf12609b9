"""Query benchmark: every GET /api/run/ filter, first page and a deep cursor page, a 500-span trace, a thread.

1. Fills the key's app up to `--runs` runs (default 1,000,000) with bench/fill.py's COPY
   filler when it has fewer (20 models, 50 agents, 1,000 users, 90 days, statuses, tags,
   latency, cost).
2. Times through HTTP every `/api/run/` filter of SPEC §3 alone and in common combinations,
   each on its first page and on a deep page: a cursor for the row ~90 % deep in that
   filter's ordering, built straight from the database in the documented cursor format
   (urlsafe base64, no padding, of {"o": ordering, "v": sort key as a string, "id": row id};
   the sort key of ±latency_s/±total_tokens is COALESCE(column, -1)). Each request is sent
   once to warm up, then `--repeat` times (default 20); p50/p95 in ms.
3. Reports a trace of `--trace-spans` spans (default 500), reported through /api/report,
   then timed with GET /api/run/<root>/.
4. A thread of `--thread-messages` chat messages (default 500) timed with
   GET /api/threads/<id>/ -- skipped with a note while /api/threads/ answers 404.

Latency is what the client observes over loopback (request written -> last byte read). When
the server sends `Server-Timing: app;dur=<ms>`, that is reported too as the server time,
and the targets (p95 < 50 ms per filter and page, trace < 100 ms) are judged on it;
otherwise on the client time.

Run from the repository root against a running server on the same database:

    python bench/query.py --url http://127.0.0.1:8101 --key obs_... \\
        --database-url postgres://postgres@127.0.0.1:5432/observatory_bench
    python bench/query.py ... --quick           # small fill, 2 repeats, small trace: a smoke check

The database is needed to fill the app and to build deep cursors (Django is set up on
`--database-url`, default $DATABASE_URL, with this checkout's code). Results: a table on
stdout, JSON in bench/results/query.json (`--json`). `run(url=..., key=..., runs=200,
repeat=2)` does the same from Python with Django's configured connection (the smoke tests).
"""

from __future__ import annotations

import base64
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    RESULTS_DIR,
    Database,
    HttpClient,
    log,
    machine_info,
    parse_server_args,
    percentile,
    publish,
    server_parser,
    table,
)

TARGET_PAGE_MS = 50.0
TARGET_TRACE_MS = 100.0
DEEP = 0.9  # how deep the "deep" page is, as a fraction of the filter's rows
BATCH = 100  # events per /api/report request when building the trace and the thread
WARM_UP = 12  # untimed requests first: a few per server worker (gunicorn -w 3)


def setup_django(database_url: str | None) -> None:
    """Use Django as configured (in-process), else set it up on `database_url`."""
    from django.conf import settings

    if settings.configured:
        return
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "observatory.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only")
    import django

    django.setup()


# --- the queries ------------------------------------------------------------------------------


def build_queries(app) -> list[tuple[str, dict, bool]]:
    """(label, params, counts for the target) for every filter alone and common combinations.

    Values come from bench/fill.py's spread (model-07, agent-13, user-0042, ...) plus a few read
    from the app itself: the time window (a day, a month before the newest run) and a real
    parent run id.
    """
    from django.db.models import Max

    from apps.tracing.models import Run

    runs = Run.objects.filter(app=app)
    newest = runs.aggregate(newest=Max("started_at"))["newest"] or datetime.now(UTC)
    day_from = (newest - timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)
    window = {"from": _iso(day_from), "to": _iso(day_from + timedelta(days=1))}
    week = {"from": _iso(day_from - timedelta(days=6)), "to": _iso(day_from + timedelta(days=1))}
    parent = runs.filter(type="chain").order_by("-started_at").values_list("run_id", flat=True).first() or "none"
    queries: list[tuple[str, dict]] = [
        ("(no filter)", {}),
        ("type=llm", {"type": "llm"}),
        ("status=success", {"status": "success"}),
        ("status=error", {"status": "error"}),
        ("status=started", {"status": "started"}),
        ("status=timed_out", {"status": "timed_out"}),
        ("model", {"model": "model-07"}),
        ("agent", {"agent": "agent-13"}),
        ("user_id", {"user_id": "user-0042"}),
        ("user_email", {"user_email": "user-0042@example.com"}),
        ("name", {"name": "chain-refund"}),
        ("min_latency_s=8", {"min_latency_s": "8"}),
        ("max_latency_s=0.2", {"max_latency_s": "0.2"}),
        ("latency 1..2 s", {"min_latency_s": "1", "max_latency_s": "2"}),
        ("min_cost=0.01", {"min_cost": "0.01"}),
        ("max_cost=0.0005", {"max_cost": "0.0005"}),
        ("tags=vip", {"tags": "vip"}),
        ("tags=canary,high-risk", {"tags": "canary,high-risk"}),
        ("from/to (1 day)", window),
        ("search=refund (common)", {"search": "refund"}),
        ("search=#4242 (rare)", {"search": "#4242"}),
        ("saved=true", {"saved": "true"}),
        ("saved=false", {"saved": "false"}),
        ("parent_run_id", {"parent_run_id": parent}),
        ("root=true", {"root": "true"}),
        ("root=false", {"root": "false"}),
        ("thread_id", {"thread_id": "t1"}),
        ("has_feedback=true", {"has_feedback": "true"}),
        ("feedback=negative", {"feedback": "negative"}),
        *((f"ordering={o}", {"ordering": o}) for o in ORDERINGS if o != "-started_at"),
        # common combinations: the LLM Calls page (type=llm) with its filters, search and sorts
        ("llm+model+success", {"type": "llm", "model": "model-03", "status": "success"}),
        ("agent+error", {"agent": "agent-07", "status": "error"}),
        ("error+agent+tags=vip", {"status": "error", "agent": "agent-07", "tags": "vip"}),
        # the LLM Calls page is type=llm: each of its sorts
        *((f"llm by {o}", {"type": "llm", "ordering": o}) for o in ORDERINGS if o != "-started_at"),
        ("model by cost", {"model": "model-03", "ordering": "cost"}),
        ("agent by -latency", {"agent": "agent-07", "ordering": "-latency_s"}),
        ("tool by -cost", {"type": "tool", "ordering": "-cost"}),
        ("user_id by -total_tokens", {"user_id": "user-0042", "ordering": "-total_tokens"}),
        ("llm by -latency, >=5 s", {"type": "llm", "min_latency_s": "5", "ordering": "-latency_s"}),
        ("llm+user_id", {"type": "llm", "user_id": "user-0042"}),
        ("llm+tags=vip", {"type": "llm", "tags": "vip"}),
        ("llm+search=refund", {"type": "llm", "search": "refund"}),
        ("llm+search=#4242", {"type": "llm", "search": "#4242"}),
        ("llm+from/to (1 week)", {"type": "llm", **week}),
        ("llm+from/to by -cost", {"type": "llm", **week, "ordering": "-cost"}),
        ("llm+model by -tokens", {"type": "llm", "model": "model-11", "ordering": "-total_tokens"}),
        ("llm+max_cost by cost", {"type": "llm", "max_cost": "0.0005", "ordering": "cost"}),
        ("agent+from/to", {"agent": "agent-21", **week}),
        ("agent+search=refund", {"agent": "agent-21", "search": "refund"}),
        ("root+agent", {"root": "true", "agent": "agent-33"}),
        ("user_email+error", {"user_email": "user-0042@example.com", "status": "error"}),
        ("tags=vip by -latency", {"tags": "vip", "ordering": "-latency_s"}),
        ("error+tags+from/to", {"status": "error", "tags": "vip,eu", **week}),
        ("llm+error+model+tags", {"type": "llm", "status": "error", "model": "model-05", "tags": "beta"}),
    ]
    marked = [(label, params, True) for label, params in queries]
    marked.append(("limit=500 (info)", {"limit": "500"}, False))
    return marked


ORDERINGS = ["-started_at", "started_at", "-latency_s", "latency_s", "-cost", "cost", "-total_tokens", "total_tokens"]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def deep_cursor(app, params: dict) -> tuple[str | None, int, str | None]:
    """(cursor for the row DEEP into the filter's ordering, the filter's row count, a note).

    The filtered rows come from the app's own FilterSet and keyset ordering (those behind
    /api/run/), so the cursor is a row the user could reach by paging.
    """
    from django.http import QueryDict

    from apps.tracing.api.pagination import order_keyset
    from apps.tracing.filters import RunFilterSet
    from apps.tracing.models import Run

    ordering = params.get("ordering", "-started_at")
    query = QueryDict(mutable=True)
    for name, value in params.items():
        query[name] = value
    filterset = RunFilterSet(query, queryset=Run.objects.filter(app=app))
    if not filterset.is_valid():
        return None, 0, f"filter invalid: {dict(filterset.errors)}"
    rows = order_keyset(filterset.qs, ordering)
    count = rows.count()
    if count < 2:
        return None, count, "fewer than 2 rows: no deep page"
    value, row_id = rows.values_list("sort_key", "tie_key")[int(count * DEEP)]
    value = value.isoformat() if isinstance(value, datetime) else str(value)
    payload = orjson.dumps({"o": ordering, "v": value, "id": row_id})
    return base64.urlsafe_b64encode(payload).decode().rstrip("="), count, None


# --- timing -----------------------------------------------------------------------------------


def timed(client: HttpClient, path: str, repeat: int) -> dict:
    """One warm-up request, then `repeat` timed ones: p50/p95 client and server ms."""
    first = client.get(path)
    client_ms, server_ms, statuses = [], [], {first.status}
    for _ in range(repeat):
        reply = client.get(path)
        statuses.add(reply.status)
        client_ms.append(reply.ms)
        if reply.server_ms is not None:
            server_ms.append(reply.server_ms)
    is_json = first.headers.get("content-type", "").startswith("application/json")
    body = first.json() if first.status == 200 and is_json else None
    error = None if statuses == {200} else f"HTTP {sorted(statuses)}: {first.body[:200].decode(errors='replace')}"
    return {
        "status": first.status,
        "error": error,
        "rows": len(body["results"]) if isinstance(body, dict) and "results" in body else None,
        "body": body,
        "client_p50_ms": _r(percentile(client_ms, 50)),
        "client_p95_ms": _r(percentile(client_ms, 95)),
        "server_p50_ms": _r(percentile(server_ms, 50)),
        "server_p95_ms": _r(percentile(server_ms, 95)),
        "bytes": len(first.body),
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def judged_ms(timing: dict | None) -> float | None:
    """The p95 a target is judged on: the server's when it reports one, else the client's."""
    if not timing:
        return None
    return timing["server_p95_ms"] if timing["server_p95_ms"] is not None else timing["client_p95_ms"]


def time_run_list(client: HttpClient, app, queries, repeat: int, quiet: bool) -> list[dict]:
    results = []
    for label, params, target in queries:
        path = "/api/run/?" + urlencode(params, quote_via=quote)
        first = timed(client, path, repeat)
        first.pop("body")
        try:
            cursor, count, note = deep_cursor(app, params)
        except Exception as exc:  # noqa: BLE001 - a filter this checkout's FilterSet cannot run: noted, not fatal
            cursor, count, note = None, None, f"deep cursor failed: {type(exc).__name__}: {exc}"
        deep = None
        if cursor:
            deep = timed(client, path + ("&" if params else "") + "cursor=" + cursor, repeat)
            deep.pop("body")
        entry = {"query": label, "params": params, "target": target, "matching_rows": count, "first": first}
        entry["deep"], entry["note"] = deep, note
        worst = max((ms for ms in (judged_ms(first), judged_ms(deep)) if ms is not None), default=None)
        errors = [t["error"] for t in (first, deep) if t and t["error"]]
        if errors:
            entry["verdict"] = "ERROR"
        elif not target:
            entry["verdict"] = "info"
        else:
            entry["verdict"] = "ok" if worst is not None and worst < TARGET_PAGE_MS else "SLOW"
        results.append(entry)
        log(
            quiet,
            f"  {label:<26} first p95 {first['client_p95_ms']} ms"
            + (f", deep p95 {deep['client_p95_ms']} ms" if deep else f" ({note})")
            + (f"  {errors[0][:120]}" if errors else ""),
        )
    return results


# --- the trace and the thread --------------------------------------------------------------------


def trace_events(spans: int, tag: str) -> tuple[str, list[dict]]:
    """A trace of `spans` runs: one agent, chains of ~50 spans each, tools (start/end) and llm_call."""
    root = f"qtrace-{tag}"
    now = datetime.now(UTC) - timedelta(minutes=5)
    clock = [0]

    def ts() -> str:
        clock[0] += 3
        return _iso(now + timedelta(milliseconds=clock[0]))

    meta = {"agent": "trace-bench", "user_id": "user-trace", "tags": ["bench"]}
    question = {"question": "Plan a trip to Lisbon " * 10}
    events = [
        {"name": "agent_start", "type": "agent", "run_id": root, "timestamp": ts(), "input": question, "metadata": meta}
    ]
    made, chain_no = 1, 0
    ends = []
    while made < spans:
        chain = f"{root}-c{chain_no}"
        chain_no += 1
        events.append(_span("chain_start", chain, root, ts(), input={"step": chain_no}))
        made += 1
        for leaf in range(min(49, spans - made)):
            run_id = f"{chain}-{leaf}"
            if leaf % 2:
                prompt = [{"role": "user", "content": "Summarise the options " * 8}]
                usage = {"model": "gpt-4o-mini", "prompt_tokens": 400 + leaf, "completion_tokens": 80}
                output = {"content": "Option A " * 20}
                events.append(
                    _span("llm_call", run_id, chain, ts(), latency_s=0.4, input=prompt, output=output, **usage)
                )
            else:
                events.append(_span("tool_start", run_id, chain, ts(), input={"query": f"hotels step {leaf}"}))
                events.append(_span("tool_end", run_id, None, ts(), output={"hits": [f"hotel {i}" for i in range(10)]}))
            made += 1
        ends.append(_span("chain_end", chain, None, ts(), output="done"))
    events += ends
    events.append({"name": "agent_end", "type": "agent", "run_id": root, "timestamp": ts(), "output": {"ok": True}})
    for index, event in enumerate(events):
        event["id"] = f"{root}-e{index}"
    return root, events


def _span(name: str, run_id: str, parent: str | None, timestamp: str, **fields) -> dict:
    event = {"name": name, "type": name.split("_")[0], "run_id": run_id, "timestamp": timestamp, **fields}
    if parent:
        event["parent_run_id"] = parent
    return event


def post_events(client: HttpClient, events: list[dict]) -> None:
    for start in range(0, len(events), BATCH):
        body = orjson.dumps({"events": events[start : start + BATCH]})
        reply = client.request("POST", "/api/report", body, {"Content-Type": "application/json"})
        if reply.status != 200:
            raise RuntimeError(f"/api/report answered {reply.status}: {reply.body[:300]!r}")


def count_nodes(node: dict) -> int:
    return 1 + sum(count_nodes(child) for child in node.get("children") or [])


def time_trace(client: HttpClient, spans: int, repeat: int) -> dict:
    root, events = trace_events(spans, uuid.uuid4().hex[:10])
    post_events(client, events)
    timing = timed(client, f"/api/run/{root}/", repeat)
    body = timing.pop("body")
    nodes = count_nodes(body) if isinstance(body, dict) else None
    ok = timing["error"] is None and nodes == spans
    verdict = "ERROR" if not ok else "ok" if judged_ms(timing) < TARGET_TRACE_MS else "SLOW"
    return {"spans": spans, "events": len(events), "root": root, "nodes_returned": nodes, **timing, "verdict": verdict}


def time_thread(client: HttpClient, messages: int, repeat: int) -> dict:
    """GET /api/threads/<id>/ for a thread of `messages` chat messages (SPEC §5; issue #5)."""
    probe = client.get("/api/threads/?limit=1")
    if probe.status == 404:
        return {"skipped": "GET /api/threads/ answers 404: threads are not implemented yet (a later issue)"}
    # --- thread of 500 messages -------------------------------------------------------------
    tag = uuid.uuid4().hex[:10]
    thread_id, user = f"qthread-{tag}", f"user-thread-{tag}"
    now = datetime.now(UTC) - timedelta(minutes=30)
    events = [
        {
            "name": "chat",
            "id": f"{thread_id}-m{i}",
            "role": "user" if i % 2 == 0 else "assistant",
            "content": ("Where is my parcel? " if i % 2 == 0 else "It left the warehouse today. ") * 6,
            "thread_id": thread_id,
            "message_id": f"{thread_id}-m{i}",
            "timestamp": _iso(now + timedelta(seconds=i)),
            "metadata": {"agent": "thread-bench", "user_id": user},
        }
        for i in range(messages)
    ]
    post_events(client, events)
    found = client.get("/api/threads/?" + urlencode({"user_id": user}))
    results = found.json().get("results", []) if found.status == 200 else []
    match = [t for t in results if t.get("thread_id") == thread_id]
    if not match:
        error = f"thread {thread_id} not found through /api/threads/ (HTTP {found.status})"
        return {"error": error, "verdict": "ERROR"}
    timing = timed(client, f"/api/threads/{match[0]['id']}/", repeat)
    body = timing.pop("body")
    got = len(body.get("messages", [])) if isinstance(body, dict) else None
    verdict = "ERROR" if timing["error"] or got != messages else "ok"
    return {"messages": messages, "messages_returned": got, "thread": match[0]["id"], **timing, "verdict": verdict}


# --- the whole benchmark --------------------------------------------------------------------------


def ensure_runs(app, runs: int, seed: int, quiet: bool) -> dict:
    from apps.tracing.models import Run
    from bench.fill import fill

    have = Run.objects.filter(app=app).count()
    if have >= runs:
        return {"runs": have, "filled": 0, "fill_seconds": 0.0}
    log(quiet, f"filling app {app.slug} with {runs - have:,} runs (bench/fill.py) ...")
    seconds = fill(app.pk, runs - have, seed=seed + have)
    log(quiet, f"  {runs - have:,} runs in {seconds:.1f} s")
    return {"runs": runs, "filled": runs - have, "fill_seconds": round(seconds, 1)}


def run(
    *,
    url: str,
    key: str,
    database_url: str | None = None,
    runs: int = 1_000_000,
    repeat: int = 20,
    trace_spans: int = 500,
    thread_messages: int = 500,
    only: list[str] | None = None,
    seed: int = 1,
    json_path: str | Path | None = None,
    quiet: bool = False,
) -> dict:
    """Fill, time every query, the trace and the thread; returns (and writes) the results."""
    setup_django(database_url)
    from apps.tenancy.models import App

    db = Database()  # Django's connection, now pointing at the server's database
    app = App.objects.get(pk=db.app_for_key(key)[0])
    fill_result = ensure_runs(app, runs, seed, quiet)
    queries = build_queries(app)
    if only:
        queries = [q for q in queries if any(word in q[0] for word in only)]
    client = HttpClient(url, key)
    try:
        log(quiet, f"query benchmark: {url}, app {app.public_id} ({fill_result['runs']:,} runs), repeat {repeat}")
        for _ in range(WARM_UP):  # every server worker imports, connects and caches before the clock runs
            client.get("/api/run/?limit=1")
        listing = time_run_list(client, app, queries, repeat, quiet)
        trace = time_trace(client, trace_spans, repeat) if trace_spans else {"skipped": "--trace-spans 0"}
        thread = time_thread(client, thread_messages, repeat) if thread_messages else {"skipped": "--thread-messages 0"}
    finally:
        client.close()
    server_timing = any(e["first"]["server_p95_ms"] is not None for e in listing)
    result = {
        "benchmark": "query",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "url": url,
        "app_id": str(app.public_id),
        "database": db.server_version(),
        "machine": machine_info(),
        "settings": {"repeat": repeat, "deep_fraction": DEEP, "server_timing": server_timing},
        "fill": fill_result,
        "run_list": listing,
        "trace": trace,
        "thread": thread,
    }
    result["summary"] = summarize(result)
    return publish(result, report, json_path, quiet)


def summarize(result: dict) -> dict:
    listing = [e for e in result["run_list"] if e["target"]]
    pages = [(e["query"], "first", e["first"]) for e in listing] + [
        (e["query"], "deep", e["deep"]) for e in listing if e["deep"]
    ]
    worst = max(pages, key=lambda p: judged_ms(p[2]) or 0, default=None)
    worst_p50 = max(pages, key=lambda p: p[2]["client_p50_ms"] or 0, default=None)
    trace = result["trace"]
    return {
        "judged_on": "server time (Server-Timing)" if result["settings"]["server_timing"] else "client time",
        "queries": len(result["run_list"]),
        "slow": [e["query"] for e in listing if e["verdict"] == "SLOW"],
        "errors": [e["query"] for e in result["run_list"] if e["verdict"] == "ERROR"]
        + (["trace"] if trace.get("verdict") == "ERROR" else [])
        + (["thread"] if result["thread"].get("verdict") == "ERROR" else []),
        "worst_p95_ms": worst and judged_ms(worst[2]),
        "worst_p95": worst and f"{worst[0]} ({worst[1]} page)",
        "worst_p50_ms": worst_p50 and worst_p50[2]["client_p50_ms"],
        "worst_p50": worst_p50 and f"{worst_p50[0]} ({worst_p50[1]} page)",
        "trace_p95_ms": judged_ms(trace) if "client_p95_ms" in trace else None,
        "targets": {
            f"every filter p95 < {TARGET_PAGE_MS:.0f} ms (first and deep page)": "PASS"
            if listing and not any(e["verdict"] in ("SLOW", "ERROR") for e in listing)
            else "FAIL",
            f"{trace.get('spans', '?')}-span trace p95 < {TARGET_TRACE_MS:.0f} ms": trace.get("verdict", "skipped")
            .replace("ok", "PASS")
            .replace("SLOW", "FAIL"),
        },
    }


def report(result: dict) -> str:
    server = result["settings"]["server_timing"]
    headers = ["query", "rows", "matching", "first p50", "first p95", "deep p50", "deep p95"]
    headers += ["srv first p95", "srv deep p95"] if server else []
    headers += ["check"]
    rows = []
    for e in result["run_list"]:
        first, deep = e["first"], e["deep"] or {}
        row = [e["query"], first["rows"], e["matching_rows"], first["client_p50_ms"], first["client_p95_ms"],
               deep.get("client_p50_ms"), deep.get("client_p95_ms")]  # fmt: skip
        row += [first["server_p95_ms"], deep.get("server_p95_ms")] if server else []
        rows.append([*row, e["verdict"]])
    s = result["summary"]
    lines = [
        f"Runs list: GET /api/run/ at {result['fill']['runs']:,} runs, {result['settings']['repeat']} repeats, "
        f"ms (client over loopback{'; srv = Server-Timing' if server else ''}); deep = a cursor "
        f"{DEEP:.0%} into the filter's rows ({result['database']})",
        "",
        table(headers, rows),
        "",
    ]
    trace = result["trace"]
    if "client_p95_ms" in trace:
        lines.append(
            f"trace of {trace['spans']} spans ({trace['events']} events): GET /api/run/<root>/ "
            f"p50 {trace['client_p50_ms']} ms, p95 {trace['client_p95_ms']} ms"
            + (f", server p95 {trace['server_p95_ms']} ms" if trace["server_p95_ms"] is not None else "")
            + f", {trace['bytes']:,} bytes, {trace['nodes_returned']} nodes: {trace['verdict']}"
        )
    else:
        lines.append(f"trace: {trace.get('skipped') or trace.get('error')}")
    thread = result["thread"]
    if "client_p95_ms" in thread:
        lines.append(
            f"thread of {thread['messages']} messages: GET /api/threads/<id>/ p50 {thread['client_p50_ms']} ms, "
            f"p95 {thread['client_p95_ms']} ms, {thread['messages_returned']} messages: {thread['verdict']}"
        )
    else:
        lines.append(f"thread: {thread.get('skipped') or thread.get('error')}")
    lines += [
        "",
        f"worst p95 ({s['judged_on']}): {s['worst_p95_ms']} ms, {s['worst_p95']}",
        "targets:",
        *(f"  {name}: {verdict}" for name, verdict in s["targets"].items()),
    ]
    if s["slow"]:
        lines.append(f"  slow: {', '.join(s['slow'])}")
    if s["errors"]:
        lines.append(f"  errors: {', '.join(s['errors'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = server_parser(__doc__)
    parser.add_argument("--runs", type=int, default=1_000_000, help="fill the key's app up to this many runs")
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per query and page")
    parser.add_argument("--trace-spans", type=int, default=500, help="spans of the timed trace (0: skip)")
    parser.add_argument("--thread-messages", type=int, default=500, help="messages of the timed thread (0: skip)")
    parser.add_argument("--only", action="append", help="time only queries whose label contains this (repeatable)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=str(RESULTS_DIR / "query.json"), help="where to write the results")
    parser.add_argument("--quick", action="store_true", help="a tiny run: 2,000 runs, 2 repeats, 50 spans")
    args = parse_server_args(parser, argv, "to fill the app and build cursors")
    if args.quick:
        args.runs, args.repeat, args.trace_spans, args.thread_messages = min(args.runs, 2_000), 2, 50, 50
    return run(
        url=args.url, key=args.key, database_url=args.database_url, runs=args.runs, repeat=args.repeat,
        trace_spans=args.trace_spans, thread_messages=args.thread_messages, only=args.only, seed=args.seed,
        json_path=args.json,
    )  # fmt: skip


if __name__ == "__main__":
    outcome = main()
    sys.exit(1 if outcome["summary"]["errors"] else 0)
