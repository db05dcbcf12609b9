"""Ingestion benchmark: POST /api/report at several concurrencies, verify nothing was lost, compare with COPY.

Each worker thread holds one persistent HTTP connection (stdlib http.client) and posts
batches of realistic events for `--seconds` per level: traces agent -> chain -> tool -> llm
(`*_start`/`*_end` pairs and `llm_call` one-shots; metadata with agent, user_id, user_email,
tags; input/output payloads so that an event averages ~1 KB), every event with a unique
client `id`. A trace may straddle two batches, as it does with the SDK.

Per level (batch size x concurrency) it reports accepted events/s, requests/s, p50/p99
request latency and errors, then counts the level's events and runs in the database
(`tracing_event`/`tracing_run` of the key's app, by the level's run-id prefix) and prints OK
or MISMATCH against what the server accepted.

In the same run it measures raw `COPY` of the same kind of event rows (the columns of
tracing_event: app_id, run_id, name, timestamp, received_at, dedup_key, payload jsonb) into a
scratch table `bench_copy_scratch` created `LIKE tracing_event INCLUDING ALL` on the same
database: a normal, WAL-logged table with the same primary key, the same unique index on
(app_id, dedup_key) and the same index on (app_id, run_id, timestamp) -- not UNLOGGED,
because tracing_event is logged and skipping the WAL would inflate the baseline. It has no
foreign key to tenancy_app (LIKE never copies them), which makes the baseline slightly
faster, so the ratio is slightly conservative. The table is dropped at the end.
COPY is PostgreSQL-only: on SQLite that part is skipped with a note.

Run from the repository root against a running server (gunicorn, production settings):

    python bench/ingest.py --url http://127.0.0.1:8100 --key obs_... \\
        --database-url postgres://postgres@127.0.0.1:5432/observatory_ingest
    python bench/ingest.py ... --concurrency 1,4,8,16 --batch-size 10,100,500 --seconds 10
    python bench/ingest.py ... --quick          # a few seconds, for a smoke check

`--database-url` defaults to $DATABASE_URL and must be the server's database. The key is
`python manage.py create_api_key APP --org ORG --create` (last line of stdout); use an app of
its own, since every event the benchmark sends stays there. Results: a table on stdout,
JSON in bench/results/ingest.json (`--json`). Run the server with
OBSERVATORY_RATE_LIMIT_PER_MINUTE=0, or the rate limit answers 429s.

From Python (the smoke tests): `run(url=..., key=..., concurrencies=[1], seconds=1)` returns
the result dict; without `database_url` it uses Django's configured connection.
"""

from __future__ import annotations

import argparse
import gzip as gzip_module
import hashlib
import random
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    RESULTS_DIR,
    Database,
    HttpClient,
    drive,
    load_figures,
    log,
    machine_info,
    parse_server_args,
    publish,
    rounded,
    server_parser,
    table,
)

EVENT_COLUMNS = ["app_id", "run_id", "name", "timestamp", "received_at", "dedup_key", "payload"]
SCRATCH_TABLE = "bench_copy_scratch"
TARGET_RATIO = 0.35
TARGET_P99_MS = 250.0

AGENTS = [f"{a}-agent" for a in ("support", "billing", "claims", "triage", "sales", "research", "onboarding", "qa")]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "claude-3-haiku", "mistral-large", "llama-3-70b"]
TOOLS = ["search_kb", "lookup_order", "get_weather", "sql_query", "send_email", "fetch_invoice"]
TAGS = ["production", "beta", "eu", "us", "vip", "high-risk", "batch", "canary"]
WORDS = (
    "the customer asked about a refund for order invoice parcel delivery weather policy claim translate summary "
    "quarterly forecast login error account billing address payment card shipment delayed warehouse support "
    "please check status update ticket priority escalate manager agent response knowledge base article"
).split()


class TraceSource:
    """An endless stream of realistic events, trace after trace; `take(n)` cuts the next batch.

    One trace is 9 events over 5 runs: agent_start, chain_start, tool_start, tool_end,
    llm_call (one-shot), llm_start, llm_end, chain_end, agent_end. Run ids start with `prefix`
    so a level's rows can be counted; every event has a unique client id.
    """

    def __init__(self, prefix: str, seed: int) -> None:
        self.prefix = prefix
        self.rng = random.Random(seed)
        self.pending: list[dict] = []
        self.traces = 0
        self.events = 0

    def _text(self, low: int, high: int) -> str:
        return " ".join(self.rng.choices(WORDS, k=self.rng.randint(low, high)))

    def _trace(self) -> list[dict]:
        rng, n = self.rng, self.traces
        self.traces += 1
        base = datetime.now(UTC) - timedelta(seconds=5)
        clock = [0]

        def ts() -> str:
            clock[0] += rng.randint(5, 400)
            return (base + timedelta(milliseconds=clock[0])).isoformat(timespec="milliseconds").replace("+00:00", "Z")

        agent, user = rng.choice(AGENTS), f"user-{rng.randint(1, 1000):04d}"
        meta = {
            "agent": agent,
            "user_id": user,
            "user_email": f"{user}@example.com",
            "tags": rng.sample(TAGS, rng.choice((0, 1, 1, 2))),
            "env": "production",
            "version": "1.4.2",
            "session_id": uuid.UUID(int=rng.getrandbits(128)).hex,
        }
        rid = f"{self.prefix}t{n}"
        agent_id, chain_id, tool_id, call_id, llm_id = (f"{rid}-{s}" for s in ("a", "c", "t", "x", "l"))
        question = self._text(60, 130)
        tool, model = rng.choice(TOOLS), rng.choice(MODELS)
        messages = [
            {"role": "system", "content": "You are a helpful assistant for Acme support. " + self._text(30, 60)},
            {"role": "user", "content": question},
        ]

        def llm_usage() -> dict:
            prompt, completion = rng.randint(200, 3000), rng.randint(20, 600)
            return {"model": model, "prompt_tokens": prompt, "completion_tokens": completion}

        events = [
            {"name": "agent_start", "type": "agent", "run_id": agent_id, "timestamp": ts(),
             "run_name": agent, "input": {"question": question}, "metadata": meta},
            {"name": "chain_start", "type": "chain", "run_id": chain_id, "parent_run_id": agent_id,
             "timestamp": ts(), "run_name": "answer-question", "input": {"question": question, "history": []}},
            {"name": "tool_start", "type": "tool", "run_id": tool_id, "parent_run_id": chain_id, "timestamp": ts(),
             "run_name": tool, "input": {"query": self._text(15, 40), "top_k": 3}},
            {"name": "tool_end", "type": "tool", "run_id": tool_id, "timestamp": ts(),
             "output": {"documents": [{"id": rng.randint(1, 10**6), "text": self._text(35, 70)} for _ in range(3)]}},
            {"name": "llm_call", "type": "llm", "run_id": call_id, "parent_run_id": chain_id, "timestamp": ts(),
             "latency_s": round(rng.uniform(0.2, 4.0), 3), "input": messages[:1] + [{"role": "user", "content":
             "Rewrite as a search query: " + question[:120]}], "output": {"role": "assistant",
             "content": self._text(10, 30)}, **llm_usage()},
            {"name": "llm_start", "type": "llm", "run_id": llm_id, "parent_run_id": chain_id, "timestamp": ts(),
             "input": messages, "metadata": {"model": model, "temperature": 0.2}},
            {"name": "llm_end", "type": "llm", "run_id": llm_id, "timestamp": ts(),
             "output": {"role": "assistant", "content": self._text(80, 170)}, **llm_usage()},
            {"name": "chain_end", "type": "chain", "run_id": chain_id, "timestamp": ts(),
             "output": {"answer": self._text(50, 110)}},
            {"name": "agent_end", "type": "agent", "run_id": agent_id, "timestamp": ts(),
             "output": {"answer": self._text(50, 110)}, "status": "error" if rng.random() < 0.03 else "success"},
        ]  # fmt: skip
        for index, event in enumerate(events):
            event["id"] = f"{rid}-e{index}"
        return events

    def take(self, n: int) -> list[dict]:
        while len(self.pending) < n:
            self.pending.extend(self._trace())
        batch, self.pending = self.pending[:n], self.pending[n:]
        self.events += n
        return batch


# --- HTTP load ------------------------------------------------------------------------------------


class Worker(threading.Thread):
    def __init__(self, *, url, key, prefix, seed, batch_size, use_gzip, start_gate, deadline_box) -> None:
        super().__init__(daemon=True)
        self.client = HttpClient(url, key)
        self.source = TraceSource(prefix, seed)
        self.batch_size, self.use_gzip = batch_size, use_gzip
        self.start_gate, self.deadline_box = start_gate, deadline_box
        self.latencies: list[float] = []
        self.accepted = self.sent = self.rejected = 0
        self.statuses: Counter = Counter()
        self.failures: list[str] = []
        self.runs_accepted: set[str] = set()
        self.error_samples: list[str] = []

    def run(self) -> None:
        headers = {"Content-Type": "application/json"}
        if self.use_gzip:
            headers["Content-Encoding"] = "gzip"
        self.start_gate.wait()
        deadline = self.deadline_box[0]
        try:
            while time.perf_counter() < deadline:
                events = self.source.take(self.batch_size)
                body = orjson.dumps({"events": events})
                if self.use_gzip:
                    body = gzip_module.compress(body, compresslevel=5)
                self.sent += len(events)
                try:
                    reply = self.client.request("POST", "/api/report", body, headers)
                except OSError as exc:  # timeouts, refused connections: counted, the level goes on
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    self.client.close()
                    continue
                self.latencies.append(reply.ms)
                self.statuses[reply.status] += 1
                if reply.status in (200, 207):
                    result = orjson.loads(reply.body)
                    self.accepted += result["accepted"]
                    self.rejected += result["rejected"]
                    if result["rejected"]:
                        bad = {e["index"] for e in result["errors"]}
                        self.error_samples += [e["error"] for e in result["errors"][:3]]
                        self.runs_accepted.update(e["run_id"] for i, e in enumerate(events) if i not in bad)
                    else:
                        self.runs_accepted.update(e["run_id"] for e in events)
                elif len(self.error_samples) < 5:
                    self.error_samples.append(f"HTTP {reply.status}: {reply.body[:200]!r}")
        finally:
            self.client.close()


def run_level(*, url, key, prefix, concurrency, batch_size, seconds, use_gzip=False, seed=1) -> dict:
    """Post batches from `concurrency` threads for `seconds`; returns the level's figures."""
    gate = threading.Barrier(concurrency + 1)
    deadline_box = [0.0]
    common = {"url": url, "key": key, "batch_size": batch_size, "use_gzip": use_gzip}
    workers = [
        Worker(prefix=f"{prefix}w{i}", seed=seed * 1000 + i, start_gate=gate, deadline_box=deadline_box, **common)
        for i in range(concurrency)
    ]
    elapsed, cpu = drive(workers, seconds=seconds, gate=gate, deadline_box=deadline_box)
    accepted = sum(w.accepted for w in workers)
    figures = load_figures(workers, elapsed, cpu, accepted)
    latencies = figures.pop("_latencies")
    return {
        "batch_size": batch_size,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "events_sent": sum(w.sent for w in workers),
        "events_accepted": accepted,
        "events_rejected": sum(w.rejected for w in workers),
        "runs_accepted": sum(len(w.runs_accepted) for w in workers),
        "events_per_s": figures.pop("rate"),
        "mean_ms": rounded(statistics.fmean(latencies) if latencies else None),
        **figures,
        "run_prefix": prefix,
    }


# --- verification ---------------------------------------------------------------------------------


class BenchmarkFailed(SystemExit):
    """The server cannot be measured (no worker applies its queue, every request fails): stop, saying why."""


STALL_SECONDS = 30.0


def wait_for_assembly(db: Database, stall_seconds: float | None = None) -> float:
    """Seconds until the server has applied every queued event (OBSERVATORY_ASSEMBLY=worker; 0 inline).

    Fails when the queue stops shrinking for `stall_seconds`: no worker is applying it
    (not started, or dead at start), and waiting longer would measure nothing.
    """
    stall_seconds = STALL_SECONDS if stall_seconds is None else stall_seconds
    began = progress_at = time.perf_counter()
    queued = None
    while left := db.query("SELECT coalesce(sum(size), 0) FROM tracing_queuedbatch")[0][0]:
        now = time.perf_counter()
        if queued is None or left < queued:
            queued, progress_at = left, now
        elif now - progress_at > stall_seconds:
            raise BenchmarkFailed(
                f"{left:,} queued events and none applied for {stall_seconds:.0f} s: is a Celery worker running "
                "(`make worker`) and does it start? (OBSERVATORY_ASSEMBLY=worker)"
            )
        time.sleep(0.05)
    return time.perf_counter() - began


def check_level(level: dict) -> None:
    """A level where no request succeeded measured nothing: fail with what the server answered."""
    if level["requests"] and not any(level["statuses"].get(s) for s in ("200", "207")):
        raise BenchmarkFailed(f"every request of the level failed: {level['error_samples'][:3]}")
    if not level["requests"] and level["failures"]:
        raise BenchmarkFailed(f"no request reached the server: {level['failures'][:3]}")


def verify(db: Database, app_pk: int, level: dict) -> dict:
    """Count the level's events and runs in the database and compare with what the server accepted.

    Runs are counted once the server has applied every queued event; with worker assembly,
    that drain time is part of the level's end-to-end rate.
    """
    drain = wait_for_assembly(db)
    end_to_end = level["events_accepted"] / (level["seconds"] + drain) if level["seconds"] else 0.0
    params = [app_pk, level["run_prefix"] + "%"]
    (events,) = db.query("SELECT count(*) FROM tracing_event WHERE app_id = %s AND run_id LIKE %s", params)[0]
    (runs,) = db.query("SELECT count(*) FROM tracing_run WHERE app_id = %s AND run_id LIKE %s", params)[0]
    ok = events == level["events_accepted"] and runs == level["runs_accepted"] and not level["events_rejected"]
    return {
        "db_events": events, "db_runs": runs, "verified": "OK" if ok else "MISMATCH",
        "drain_s": round(drain, 2), "end_to_end_events_per_s": round(end_to_end, 1),
    }  # fmt: skip


# --- raw COPY baseline ----------------------------------------------------------------------------


def copy_rows(app_pk: int, count: int, seed: int) -> list[tuple]:
    """`count` tracing_event rows made from the same generator, as the server would store them."""
    source = TraceSource(f"copy{uuid.uuid4().hex[:8]}-", seed)
    received = datetime.now(UTC)
    rows = []
    for event in source.take(count):
        dedup = hashlib.sha256(orjson.dumps([app_pk, "id", event["id"]])).hexdigest()
        timestamp = datetime.fromisoformat(event["timestamp"])
        rows.append((app_pk, event["run_id"], event["name"], timestamp, received, dedup, orjson.dumps(event).decode()))
    return rows


def copy_text(rows: list[tuple]) -> bytes:
    """Rows in COPY's text format, encoded up front so that the timed COPY measures the database,
    not the client (on a 2-core machine, formatting 100,000 rows in Python competes with it)."""

    def cell(value) -> str:
        if value is None:
            return "\\N"
        text = value.isoformat() if isinstance(value, datetime) else str(value)
        return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")

    return "".join("\t".join(map(cell, row)) + "\n" for row in rows).encode()


def measure_copy(db: Database, app_pk: int, *, rows: int, repeat: int, seed: int, quiet: bool = True) -> dict:
    """Rows/s of one COPY (one transaction) of `rows` event rows into a scratch copy of tracing_event."""
    if db.vendor != "postgresql":
        return {"skipped": f"COPY is PostgreSQL-only; the database is {db.vendor}"}
    data = copy_rows(app_pk, rows, seed)
    avg_bytes = statistics.fmean(len(r[-1]) for r in data)
    text = copy_text(data)
    chunk = 1 << 20
    runs = []
    db.execute(f"DROP TABLE IF EXISTS {SCRATCH_TABLE}")
    db.execute(f"CREATE TABLE {SCRATCH_TABLE} (LIKE tracing_event INCLUDING ALL)")
    try:
        for attempt in range(repeat):
            db.execute(f"TRUNCATE {SCRATCH_TABLE}")
            began = time.perf_counter()
            with db.raw_cursor() as cursor:
                conn = cursor.connection
                with (
                    conn.transaction(),
                    cursor.copy(f"COPY {SCRATCH_TABLE} ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy,
                ):
                    for offset in range(0, len(text), chunk):
                        copy.write(text[offset : offset + chunk])
            seconds = time.perf_counter() - began
            runs.append(rows / seconds)
            log(quiet, f"  COPY attempt {attempt + 1}: {rows:,} rows in {seconds:.2f} s = {rows / seconds:,.0f} rows/s")
        (stored,) = db.query(f"SELECT count(*) FROM {SCRATCH_TABLE}")[0]  # noqa: S608
    finally:
        db.execute(f"DROP TABLE IF EXISTS {SCRATCH_TABLE}")
    return {
        "rows": rows,
        "repeat": repeat,
        "avg_payload_bytes": round(avg_bytes),
        "rows_per_s": round(statistics.median(runs), 1),
        "rows_per_s_all": [round(r, 1) for r in runs],
        "rows_stored": stored,
        "table": f"{SCRATCH_TABLE} (LIKE tracing_event INCLUDING ALL: logged, same indexes, no foreign key)",
    }


# --- the whole benchmark --------------------------------------------------------------------------


def run(
    *,
    url: str,
    key: str,
    database_url: str | None = None,
    concurrencies: list[int] | tuple[int, ...] = (1, 4, 8, 16),
    batch_sizes: list[int] | tuple[int, ...] = (100,),
    seconds: float = 10.0,
    use_gzip: bool = False,
    warmup_seconds: float = 2.0,
    copy: bool = True,
    copy_rows_count: int = 100_000,
    copy_repeat: int = 3,
    analyze: str = "auto",
    seed: int = 1,
    json_path: str | Path | None = None,
    quiet: bool = False,
) -> dict:
    """Run every level, verify it in the database, measure COPY; returns (and writes) the results.

    `analyze`: "auto" runs ANALYZE on the two tables before each level when the server's
    autovacuum is off (as on CI-configured machines), since a production server's autoanalyze
    keeps statistics fresh and stale ones turn the ingestion queries into scans of the whole
    app; "always" or "never" force it. It also VACUUMs the worker mode's queue table, which
    otherwise fills with the dead rows of every claimed event (autovacuum does it in
    production: with few live rows, the table is due at each of its rounds).
    """
    db = Database(database_url)
    try:
        app_pk, app_public_id = db.app_for_key(key)
        run_tag = f"b{uuid.uuid4().hex[:8]}-"
        log(quiet, f"ingest benchmark: {url}, app {app_public_id}, run prefix {run_tag}")
        warmup = None
        if warmup_seconds > 0:
            warmup = run_level(
                url=url, key=key, prefix=f"{run_tag}W-", concurrency=min(4, max(concurrencies)),
                batch_size=batch_sizes[0], seconds=warmup_seconds, use_gzip=use_gzip, seed=seed,
            )  # fmt: skip
            check_level(warmup)
            warmup.update(verify(db, app_pk, warmup))
        analyzing = analyze == "always" or (analyze == "auto" and autovacuum_off(db))
        if analyzing:
            log(quiet, "  autovacuum is off: ANALYZE the run and event tables, VACUUM the queue, before each level")
        levels = []
        for b, batch_size in enumerate(batch_sizes):
            for c, concurrency in enumerate(concurrencies):
                prefix = f"{run_tag}L{b}x{c}-"
                if analyzing:
                    db.execute("ANALYZE tracing_run")
                    db.execute("ANALYZE tracing_event")
                    db.execute("VACUUM (ANALYZE) tracing_queuedbatch")
                level = run_level(
                    url=url, key=key, prefix=prefix, concurrency=concurrency, batch_size=batch_size,
                    seconds=seconds, use_gzip=use_gzip, seed=seed + 7 * (b * 100 + c + 1),
                )  # fmt: skip
                check_level(level)
                level.update(verify(db, app_pk, level))
                levels.append(level)
                log(
                    quiet,
                    f"  batch {batch_size:>4} x {concurrency:>2} workers: {level['events_per_s']:>9,.0f} events/s, "
                    f"p50 {level['p50_ms']} ms, p99 {level['p99_ms']} ms, errors {level['errors']}, "
                    f"{level['verified']}",
                )
        copy_result = (
            measure_copy(db, app_pk, rows=copy_rows_count, repeat=copy_repeat, seed=seed, quiet=quiet)
            if copy
            else {"skipped": "--no-copy"}
        )
        result = {
            "benchmark": "ingest",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "url": url,
            "app_id": app_public_id,
            "database": db.server_version(),
            "machine": machine_info(),
            "settings": {
                "seconds": seconds,
                "concurrencies": list(concurrencies),
                "batch_sizes": list(batch_sizes),
                "gzip": use_gzip,
                "analyze_before_levels": analyzing,
                "avg_event_bytes": _avg_event_bytes(seed),
            },
            "warmup": warmup,
            "levels": levels,
            "copy": copy_result,
        }
        _add_ratios_and_targets(result)
    finally:
        db.close()
    return publish(result, report, json_path, quiet)


def autovacuum_off(db: Database) -> bool:
    return db.vendor == "postgresql" and db.query("SHOW autovacuum")[0][0] == "off"


def _avg_event_bytes(seed: int) -> int:
    events = TraceSource("size-", seed).take(900)
    return round(statistics.fmean(len(orjson.dumps(e)) for e in events))


def _add_ratios_and_targets(result: dict) -> None:
    # Judged on the end-to-end rate: accepted events over the level plus the time the server's
    # workers took to apply the backlog (the same as the accepted rate with inline assembly).
    # The accepted rate's ratio is reported too: with worker assembly it is what a burst sees.
    copy_rate = result["copy"].get("rows_per_s")
    for level in result["levels"]:
        rate = level.get("end_to_end_events_per_s", level["events_per_s"])
        level["copy_ratio"] = round(rate / copy_rate, 3) if copy_rate else None
        level["accepted_copy_ratio"] = round(level["events_per_s"] / copy_rate, 3) if copy_rate else None
    best = max(result["levels"], key=lambda lv: lv.get("end_to_end_events_per_s", lv["events_per_s"]), default=None)
    at8 = [lv for lv in result["levels"] if lv["concurrency"] == 8 and lv["batch_size"] == 100]
    lost = [lv for lv in result["levels"] if lv["verified"] != "OK"]
    result["summary"] = {
        "best_events_per_s": best and best["events_per_s"],
        "best_level": best and f"batch {best['batch_size']} x {best['concurrency']}",
        "copy_rows_per_s": copy_rate,
        "best_ratio": best and best["copy_ratio"],
        "p99_ms_batch100_c8": at8[0]["p99_ms"] if at8 else None,
        "errors": sum(lv["errors"] for lv in result["levels"]),
        "all_verified": not lost,
    }
    result["targets"] = {
        f"ingest >= {TARGET_RATIO:.0%} of COPY": _verdict(
            best and best["copy_ratio"] is not None and best["copy_ratio"] >= TARGET_RATIO,
            None if not best or best["copy_ratio"] is None else f"{best['copy_ratio']:.0%}",
        ),
        f"p99 < {TARGET_P99_MS:.0f} ms (batch 100, concurrency 8)": _verdict(
            at8 and at8[0]["p99_ms"] is not None and at8[0]["p99_ms"] < TARGET_P99_MS,
            f"{at8[0]['p99_ms']} ms" if at8 else None,
        ),
        "nothing lost, no errors": _verdict(not lost and not result["summary"]["errors"], None, measured=True),
    }


def _verdict(passed, value, measured: bool = False) -> str:
    if value is None and not measured:
        return "not measured"
    return ("PASS" if passed else "FAIL") + (f" ({value})" if value else "")


def report(result: dict) -> str:
    rows = [
        [
            lv["batch_size"], lv["concurrency"], lv["events_per_s"], lv["requests_per_s"], lv["p50_ms"], lv["p99_ms"],
            lv["errors"], lv["events_accepted"], lv["db_events"], lv["verified"], lv.get("drain_s"),
            lv.get("end_to_end_events_per_s"), _percent(lv["accepted_copy_ratio"]), _percent(lv["copy_ratio"]),
            lv["client_cpu_pct"],
        ]
        for lv in result["levels"]
    ]  # fmt: skip
    headers = [
        "batch", "conc", "events/s", "req/s", "p50 ms", "p99 ms", "errors", "accepted", "in db", "check",
        "drain s", "e2e ev/s", "accepted/COPY", "e2e/COPY", "client cpu%",
    ]  # fmt: skip
    copy = result["copy"]
    lines = [
        f"Ingestion: POST /api/report, {result['settings']['seconds']} s per level, "
        f"~{result['settings']['avg_event_bytes']} B per event, gzip {'on' if result['settings']['gzip'] else 'off'}"
        f" ({result['database']}, {result['machine']['cpus']} CPUs"
        + ("; tables ANALYZEd before each level" if result["settings"]["analyze_before_levels"] else "")
        + ")",
        "",
        table(headers, rows),
        "",
        (
            f"raw COPY into a scratch tracing_event: {copy['rows_per_s']:,.0f} rows/s "
            f"(median of {copy['repeat']} x {copy['rows']:,} rows, ~{copy['avg_payload_bytes']} B payloads)"
            if "rows_per_s" in copy
            else f"raw COPY: skipped ({copy['skipped']})"
        ),
        "",
        "targets:",
        *(f"  {name}: {verdict}" for name, verdict in result["targets"].items()),
    ]
    samples = [s for lv in result["levels"] for s in lv["error_samples"] + lv["failures"]]
    if samples:
        lines += ["", "first errors:", *(f"  {s}" for s in samples[:5])]
    return "\n".join(lines)


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.0%}"


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("give positive integers")
    return values


def main(argv: list[str] | None = None) -> dict:
    parser = server_parser(__doc__)
    parser.add_argument("--concurrency", type=_int_list, default=[1, 4, 8, 16], help="e.g. 1,4,8,16")
    parser.add_argument("--batch-size", type=_int_list, default=[100], help="events per request, e.g. 10,100,500")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each level")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unreported warm-up load")
    parser.add_argument("--gzip", action="store_true", help="send Content-Encoding: gzip bodies")
    parser.add_argument("--copy-rows", type=int, default=100_000, help="rows for the COPY baseline")
    parser.add_argument("--copy-repeat", type=int, default=3)
    parser.add_argument("--no-copy", action="store_true", help="skip the COPY baseline")
    parser.add_argument(
        "--analyze",
        choices=["auto", "always", "never"],
        default="auto",
        help="ANALYZE the tables before each level (auto: when the server's autovacuum is off)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=str(RESULTS_DIR / "ingest.json"), help="where to write the results")
    parser.add_argument("--quick", action="store_true", help="a tiny run: 1 s levels at 1 and 2 workers")
    args = parse_server_args(parser, argv, "to verify that every event landed")
    if args.quick:
        args.concurrency, args.seconds, args.warmup = [1, 2], 1.0, 0.3
        args.copy_rows, args.copy_repeat = 2_000, 1
    result = run(
        url=args.url, key=args.key, database_url=args.database_url, concurrencies=args.concurrency,
        batch_sizes=args.batch_size, seconds=args.seconds, use_gzip=args.gzip, warmup_seconds=args.warmup,
        copy=not args.no_copy, copy_rows_count=args.copy_rows, copy_repeat=args.copy_repeat, seed=args.seed,
        analyze=args.analyze, json_path=args.json,
    )  # fmt: skip
    return result


if __name__ == "__main__":
    outcome = main()
    sys.exit(0 if outcome["summary"]["all_verified"] and not outcome["summary"]["errors"] else 1)
