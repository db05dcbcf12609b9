"""Soak (issue 19): ingestion, page and API reads, cost recalculation and retention at once, for half an hour.

A throwaway production stack (bench/stack.py: gunicorn with `--web-workers` 2, one Celery worker of
`--worker-concurrency` 2, beat; worker assembly, no rate limit) on a fresh database and a Redis database of
its own, flushed at start (default redis://127.0.0.1:6379/11). For `--seconds` (default 1,800), at once:

- ingestion: `--ingest-threads` clients post batches of `--batch-size` events, `--rate` events/s in all
  (paced: a soak is about lasting, not the peak). A conversation turn is an agent run with a tool run and
  an LLM call (model `soak-model`, priced, or gpt-4o-mini), the user's and the assistant's chat messages
  in one of the client's 25 open conversations (thread_id; each lasts 3-15 turns), and feedback on a third
  of the turns; every event has a unique id. Every tenth trace is dated 10 days back, past the app's
  retention (set to 7 days), under run ids kept apart: the purges are to delete those, and only those.
- API readers: /api/run/ (newest, a model, search, errors, negative feedback, by cost, the soak's roots),
  a trace, /api/threads/ and a thread, the four analytics endpoints.
- page readers, logged in through the login form: LLM Calls (default, search), a run page, Threads, a
  thread, Analytics. Readers wait `--think` s between requests.
- the operator: every `--recalc-every` s a new price for soak-model and a recalculation, as the admin does
  (the row saved, the job recorded and enqueued for the worker, `manage.py shell`); every `--purge-every` s
  the retention task enqueued for the worker.
- a sampler: every `--sample-every` s the RSS of every process of the stack (forked children included)
  and the events waiting in the assembly queue.

Then it stops the load, waits for the queue to drain and the recalculations to finish, enqueues one last
purge and checks: no HTTP error (any status but 200, a failed connection) and no rejected event; every
accepted event stored (by its de-duplication key), every run, every chat message, and nothing left of the
old traces; every recalculation and every purge started within a minute of its request (the worker's
queue wait: from the job's record, and from Celery's log for purges), old runs deleted by purges that
started during the load; every soak-model run costing the last price; no process exited and none logged
a Traceback, ERROR or CRITICAL line; RSS flat: from the first sample after the warm-up (`--warmup`, a
fraction of the run, 0.2) to the end, no process grew by more than 20 MiB or 10 %, whichever is larger
(a process that appears or goes during the run fails the "no process exited" check).

    python bench/soak.py                           # 30 minutes on a private PostgreSQL cluster
    python bench/soak.py --seconds 60              # the CI smoke (tests/bench/test_soak.py)
    python bench/soak.py --database-url postgres://postgres@127.0.0.1:5432/obssoak --redis-url redis://127.0.0.1:6379/11

Without `--database-url` it runs on a private cluster (bench.stack.Postgres; needs PostgreSQL's server
binaries, `pg_config --bindir`), else on that database (a fresh one: it is migrated and filled). Results: a
table on stdout, JSON in bench/results/soak.json (`--json`), exit status 1 when a check fails. The processes'
logs stay in the work directory (printed) when a check fails. From Python: `run(seconds=60, ...)`.
"""

from __future__ import annotations

import argparse
import hashlib
import http.cookiejar
import random
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote, urlencode

import orjson
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS_DIR, Database, HttpClient, log, machine_info, percentile, publish, table  # noqa: E402
from bench.ingest import WORDS, wait_for_assembly  # noqa: E402
from bench.stack import Postgres, Stack, wait_until  # noqa: E402

APP, ORG, VIEWER = "soak", "soak", "soak-viewer"
MODEL, OTHER_MODEL = "soak-model", "gpt-4o-mini"
RETENTION_DAYS, OLD_DAYS, OLD_EVERY = 7, 10, 10
CONVERSATIONS, TURNS = 25, (3, 15)  # open conversations per ingestion client; turns in one (a range)
MAX_WAIT_S = 60.0  # a recalculation or a purge starts within this many seconds of its request
SETTLE_S = 300.0  # after the load, how long the recalculations and the purges may take to finish
RSS_ALLOWED_KIB, RSS_ALLOWED_FRACTION = 20 * 1024, 0.10
LOG_ERROR = re.compile(r"Traceback|\b(ERROR|CRITICAL)\b")
PURGE_DONE = re.compile(  # Celery's log line of a finished purge: when, how long it took, the runs it deleted
    r"^\[([0-9-]+ [0-9:,]+): [^\]]*\] Task apps\.tracing\.tasks\.purge_expired_task\[[^\]]+\] "
    r"succeeded in ([0-9.e-]+)s: (\d+)$",
    re.MULTILINE,
)
RECALC = """
from decimal import Decimal
from django.db import transaction
from apps.costs.models import ModelCost
from apps.tracing.repricing import request_recalculation
with transaction.atomic():
    row = ModelCost.objects.get(model={model!r}, valid_from=None)
    row.prompt_price, row.completion_price = Decimal({prompt!r}), Decimal({completion!r})
    row.save()
    job = request_recalculation(model={model!r}, reason="soak")
print(job.pk)
"""
PURGE = "from apps.tracing.tasks import purge_expired_task; purge_expired_task.delay()"


def price(k: int) -> tuple[str, str]:
    """The k-th price of soak-model (prompt, completion; USD per 1,000 tokens): a new one each time."""
    prompt = Decimal("0.0010") + k * Decimal("0.0005")
    return str(prompt), str(2 * prompt + Decimal("0.001"))


# --- the events ------------------------------------------------------------------------------------


class Traffic:
    """One ingestion client's events, trace after trace; `take(n)` cuts the next batch (a trace may straddle two)."""

    def __init__(self, tag: str, client: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.new, self.old = f"{tag}new-{client}-", f"{tag}old-{client}-"
        self.conversation = f"{tag}conv-{client}-"
        self.open = [[f"{self.conversation}{i}", self.rng.randint(*TURNS)] for i in range(CONVERSATIONS)]
        self.pending: list[dict] = []
        self.traces = self.conversations = 0

    def _text(self, low: int, high: int) -> str:
        return " ".join(self.rng.choices(WORDS, k=self.rng.randint(low, high)))

    def _turn(self, rid: str) -> list[dict]:
        rng, now = self.rng, datetime.now(UTC) - timedelta(seconds=3)
        slot = rng.randrange(CONVERSATIONS)
        thread, user = self.open[slot][0], f"user-{slot:02d}"
        self.open[slot][1] -= 1
        if not self.open[slot][1]:  # the conversation ends: another starts in its place
            self.conversations += 1
            self.open[slot] = [f"{self.conversation}{CONVERSATIONS + self.conversations}", rng.randint(*TURNS)]
        agent = rng.choice(("support-agent", "billing-agent", "qa-agent"))
        model = MODEL if rng.random() < 0.8 else OTHER_MODEL
        question, answer = self._text(20, 60), self._text(30, 90)
        a, t, llm = f"{rid}-a", f"{rid}-t", f"{rid}-l"
        meta = {"agent": agent, "user_id": user, "thread_id": thread, "tags": rng.sample(["vip", "eu", "beta"], 1)}
        chat = {"name": "chat", "thread_id": thread, "metadata": {"agent": agent, "user_id": user}}
        failed = rng.random() < 0.03
        events = [
            {"name": "agent_start", "type": "agent", "run_id": a, "input": {"question": question}, "metadata": meta},
            {**chat, "role": "user", "content": question, "message_id": f"{rid}-mu", "run_id": a},
            {"name": "tool_start", "type": "tool", "run_id": t, "parent_run_id": a, "run_name": "search_kb",
             "input": {"query": question[:80]}},
            {"name": "tool_end", "type": "tool", "run_id": t, "output": {"documents": [self._text(20, 40)]}},
            {"name": "llm_call", "type": "llm", "run_id": llm, "parent_run_id": a, "model": model,
             "latency_s": round(rng.uniform(0.3, 3), 3), "prompt_tokens": rng.randint(100, 3000),
             "completion_tokens": rng.randint(10, 600), "input": [{"role": "user", "content": question}],
             "output": {"role": "assistant", "content": answer}},
            {"name": "agent_end", "type": "agent", "run_id": a, "output": {"answer": answer},
             **({"status": "error", "error": {"message": "upstream timeout"}} if failed else {"status": "success"})},
            {**chat, "role": "assistant", "content": answer, "message_id": f"{rid}-ma", "run_id": llm},
        ]  # fmt: skip
        if rng.random() < 1 / 3:
            target = {"run_id": a} if rng.random() < 0.7 else {"message_id": f"{rid}-ma"}
            events.append({"name": "feedback", **target, "rating": rng.choice(("positive", "negative"))})
        for i, event in enumerate(events):
            event["timestamp"] = _iso(now + timedelta(milliseconds=200 * i))
        return events

    def _old(self, rid: str) -> list[dict]:
        moment = datetime.now(UTC) - timedelta(days=OLD_DAYS, minutes=self.rng.randint(0, 2 * 24 * 60))
        a, llm = f"{rid}-a", f"{rid}-l"
        events = [
            {"name": "agent_start", "type": "agent", "run_id": a, "input": {"question": self._text(10, 30)},
             "metadata": {"agent": "support-agent", "user_id": "user-old"}},
            {"name": "llm_call", "type": "llm", "run_id": llm, "parent_run_id": a, "model": MODEL,
             "prompt_tokens": 500, "completion_tokens": 50, "latency_s": 1.0,
             "output": {"content": self._text(10, 30)}},
            {"name": "agent_end", "type": "agent", "run_id": a, "output": {"answer": "done"}},
        ]  # fmt: skip
        for i, event in enumerate(events):
            event["timestamp"] = _iso(moment + timedelta(seconds=i))
        return events

    def take(self, n: int) -> list[dict]:
        while len(self.pending) < n:
            self.traces += 1
            old = self.traces % OLD_EVERY == 0
            rid = f"{self.old if old else self.new}{self.traces}"
            trace = self._old(rid) if old else self._turn(rid)
            for i, event in enumerate(trace):
                event["id"] = f"{rid}-e{i}"
            self.pending.extend(trace)
        batch, self.pending = self.pending[:n], self.pending[n:]
        return batch


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- the load --------------------------------------------------------------------------------------


class Soak:
    """What the threads share: the stack's address, the clock, the stop signal, and what they recorded."""

    def __init__(self, url: str, key: str, cookie: str, *, think: float) -> None:
        self.url, self.key, self.cookie, self.think = url, key, cookie, think
        self.stop = threading.Event()
        self.began = time.monotonic()
        self.lock = threading.Lock()
        self.requests: list[tuple[float, str, str, int, float]] = []  # (t, group, label, status, ms)
        self.ingested: list[tuple[float, int]] = []  # (t, events accepted)
        self.error_samples: list[str] = []
        self.accepted = {"events": [], "runs": set(), "messages": [], "old_runs": set(), "old_events": 0}
        self.sent = self.rejected = 0
        self.roots: list[str] = []
        self.threads: list[int] = []

    def now(self) -> float:
        return time.monotonic() - self.began

    def call(self, client: HttpClient, group: str, label: str, method: str, path: str, body: bytes | None = None):
        """One request, recorded; the reply, or None when the connection failed (recorded as status 0)."""
        t = self.now()
        try:
            reply = client.request(method, path, body, {"Content-Type": "application/json"} if body else None)
        except OSError as exc:
            client.close()
            self.record(t, group, label, 0, 0.0, f"{label} {path}: {type(exc).__name__}: {exc}")
            return None
        error = None if reply.status == 200 else f"{label} {path}: HTTP {reply.status} {reply.body[:300]!r}"
        self.record(t, group, label, reply.status, reply.ms, error)
        return reply

    def record(self, t: float, group: str, label: str, status: int, ms: float, error: str | None = None) -> None:
        with self.lock:
            self.requests.append((t, group, label, status, ms))
            if error and len(self.error_samples) < 20:
                self.error_samples.append(f"{t:7.1f} s  {error}")


def ingester(soak: Soak, n: int, *, rate: float, batch_size: int, seed: int, tag: str) -> None:
    client, traffic = HttpClient(soak.url, soak.key), Traffic(tag, n, seed)
    interval, due = batch_size / rate, time.monotonic()
    while not soak.stop.is_set():
        events, t = traffic.take(batch_size), soak.now()
        reply = soak.call(client, "ingest", "POST /api/report", "POST", "/api/report", orjson.dumps({"events": events}))
        with soak.lock:
            soak.sent += len(events)
        if reply is not None and reply.status in (200, 207):
            answer = reply.json()
            bad = {e["index"] for e in answer["errors"]}  # a 207, already recorded as an error with its body
            with soak.lock:
                soak.rejected += answer["rejected"]
                soak.ingested.append((t, answer["accepted"]))
                track(soak.accepted, [e for i, e in enumerate(events) if i not in bad], traffic.old)
        due += interval
        now = time.monotonic()
        due = max(due, now - 1.0)  # behind by over a second: catch up no further, do not burst
        soak.stop.wait(max(0.0, due - now))
    client.close()


def track(accepted: dict, events: list[dict], old_prefix: str) -> None:
    """File the accepted events: the old traces' runs apart, the fresh events, runs and chat messages."""
    for event in events:
        if event["id"].startswith(old_prefix):
            accepted["old_events"] += 1
            accepted["old_runs"].add(event["run_id"])
            continue
        accepted["events"].append(event["id"])
        if "type" in event:
            accepted["runs"].add(event["run_id"])
        elif event["name"] == "chat":
            accepted["messages"].append(event["message_id"])


API_QUERIES = [
    ("runs: newest", "/api/run/?limit=50"),
    ("runs: soak-model", f"/api/run/?type=llm&model={MODEL}"),
    ("runs: search", "/api/run/?search=refund"),
    ("runs: errors by latency", "/api/run/?status=error&ordering=-latency_s"),
    ("runs: negative feedback", "/api/run/?feedback=negative"),
    ("runs: llm by cost", "/api/run/?type=llm&ordering=-cost"),
]
ANALYTICS = [(f"analytics: {name}", f"/api/analytics/{name}") for name in ("usage", "models", "agents", "errors")]


def api_reader(soak: Soak, n: int, since: str) -> None:
    fixed = [*API_QUERIES, ("runs: roots", f"/api/run/?root=true&limit=20&from={quote(since)}"),
             ("threads", "/api/threads/?limit=20"), *ANALYTICS]  # fmt: skip

    def learn(label: str, reply) -> None:  # the runs and threads the other readers open
        if reply is not None and reply.status == 200 and label in ("runs: roots", "threads"):
            results = reply.json()["results"]
            if label == "threads":
                soak.threads = [t["id"] for t in results] or soak.threads
            else:
                soak.roots = [r["run_id"] for r in results] or soak.roots

    read(soak, HttpClient(soak.url, soak.key), random.Random(n), "api", fixed,
         ("run with its trace", "/api/run/{}/"), ("thread", "/api/threads/{}/"), learn)  # fmt: skip


def page_reader(soak: Soak, n: int) -> None:
    client = HttpClient(soak.url)
    client.headers["Cookie"] = soak.cookie
    fixed = [("page: LLM Calls", "/"), ("page: LLM Calls, search", "/?search=refund"),
             ("page: Threads", "/threads/"), ("page: Analytics", "/analytics/")]  # fmt: skip
    read(soak, client, random.Random(1000 + n), "page", fixed, ("page: run", "/runs/{}/"),
         ("page: thread", "/threads/{}/"))  # fmt: skip


def read(soak: Soak, client: HttpClient, rng: random.Random, group: str, fixed: list, run_step: tuple,
         thread_step: tuple, learn=None) -> None:  # fmt: skip
    """Until the soak stops: `fixed` and, once known, a run and a thread, in a shuffled order."""
    while not soak.stop.is_set():
        steps = list(fixed)
        if soak.roots:
            steps.append((run_step[0], run_step[1].format(rng.choice(soak.roots))))
        if soak.threads:
            steps.append((thread_step[0], thread_step[1].format(rng.choice(soak.threads))))
        for label, path in rng.sample(steps, len(steps)):
            if soak.stop.wait(soak.think):
                break
            reply = soak.call(client, group, label, "GET", path)
            if learn:
                learn(label, reply)
    client.close()


def login(url: str, username: str, password: str) -> str:
    """Log in through the login form (GET for the CSRF token, POST); the session's Cookie header."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{url}/login/", timeout=30) as response:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.read().decode()).group(1)
    form = urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token}).encode()
    with opener.open(urllib.request.Request(f"{url}/login/", data=form), timeout=30) as response:
        landed = response.url
    cookies = {cookie.name: cookie.value for cookie in jar}
    if "sessionid" not in cookies or "/login/" in landed:
        raise RuntimeError(f"login as {username} failed (landed on {landed})")
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


class Operator:
    """Every `recalc_every` s a new price and a recalculation, every `purge_every` s a purge, through the worker."""

    def __init__(self, soak: Soak, stack: Stack, recalc_every: float, purge_every: float) -> None:
        self.soak, self.stack = soak, stack
        self.recalc_every, self.purge_every = recalc_every, purge_every
        self.recalcs: list[dict] = []  # {t, id, prompt, completion}
        self.purges: list[dict] = []  # {t, at: the wall clock}

    def loop(self) -> None:
        next_recalc, next_purge = self.recalc_every, self.purge_every
        while not self.soak.stop.wait(0.2):
            if self.soak.now() >= next_recalc:
                self.recalc()
                next_recalc += self.recalc_every
            if self.soak.now() >= next_purge:
                self.purge()
                next_purge += self.purge_every

    def recalc(self) -> None:
        prompt, completion = price(len(self.recalcs) + 1)
        code = RECALC.format(model=MODEL, prompt=prompt, completion=completion)
        if (job := self._manage("recalculation", code)) is not None:
            self.recalcs.append({"t": round(job[0], 1), "id": int(job[1]), "prompt": prompt, "completion": completion})

    def purge(self) -> None:
        at = time.time()
        if (done := self._manage("purge", PURGE)) is not None:
            self.purges.append({"t": round(done[0], 1), "at": at})

    def _manage(self, label: str, code: str) -> tuple[float, str] | None:
        """`manage.py shell -c code`, recorded like a request: (when, the last line it printed), or None."""
        t, began = self.soak.now(), time.perf_counter()
        try:
            printed = self.stack.manage("shell", "-c", code).strip().splitlines()
        except RuntimeError as exc:
            self.soak.record(t, "operator", label, 0, 0.0, f"{label} request: {exc}")
            return None
        self.soak.record(t, "operator", label, 200, (time.perf_counter() - began) * 1000)
        return t, printed[-1] if printed else ""


def sampler(soak: Soak, stack: Stack, database_url: str, every: float, samples: list) -> None:
    db = Database(database_url)
    try:
        while True:
            queued = db.query("SELECT coalesce(sum(size), 0) FROM tracing_queuedbatch")[0][0]
            samples.append({"t": round(soak.now(), 1), "rss": stack.rss(), "queued": int(queued)})
            if soak.stop.wait(every):
                return
    finally:
        db.close()


# --- the verdict -----------------------------------------------------------------------------------


def missing(db: Database, app_pk: int, table_name: str, column: str, values) -> list[str]:
    """The values with no row of the app in `table_name` (COPY into a temporary table, one anti-join)."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS soak_expected (value text)")
    db.execute("TRUNCATE soak_expected")
    with db.raw_cursor() as cursor, cursor.copy("COPY soak_expected (value) FROM STDIN") as copy:
        for value in values:
            copy.write_row((value,))
    db.execute("ANALYZE soak_expected")
    sql = (
        f"SELECT e.value FROM soak_expected e WHERE NOT EXISTS "  # noqa: S608
        f"(SELECT 1 FROM {table_name} t WHERE t.app_id = %s AND t.{column} = e.value)"
    )
    return [row[0] for row in db.query(sql, [app_pk])]


def verify(db: Database, app_pk: int, accepted: dict, tag: str) -> dict:
    """Every accepted fresh event (by de-duplication key), run and chat message stored; nothing old left."""
    keys = [hashlib.sha256(orjson.dumps([app_pk, "id", event_id])).hexdigest() for event_id in accepted["events"]]
    found = {}
    for name, table_name, column, values in (
        ("events", "tracing_event", "dedup_key", keys),
        ("runs", "tracing_run", "run_id", sorted(accepted["runs"])),
        ("messages", "threads_threadmessage", "message_id", accepted["messages"]),
    ):
        lost = missing(db, app_pk, table_name, column, values)
        found[name] = {"accepted": len(values), "missing": len(lost), "missing_sample": lost[:5]}
    count = "SELECT count(*) FROM {} WHERE app_id = %s AND run_id LIKE %s"
    found["runs"]["stored"] = db.query(count.format("tracing_run"), [app_pk, f"{tag}new-%"])[0][0]
    old = [app_pk, f"{tag}old-%"]
    found["old"] = {
        "runs_accepted": len(accepted["old_runs"]), "events_accepted": accepted["old_events"],
        "runs_left": db.query(count.format("tracing_run"), old)[0][0],
        "events_left": db.query(count.format("tracing_event"), old)[0][0],
    }  # fmt: skip
    return found


def costs(db: Database, app_pk: int, recalcs: list[dict]) -> dict:
    """The recalculations' states, and the soak-model runs not costing the last price."""
    prompt, completion = (recalcs[-1]["prompt"], recalcs[-1]["completion"]) if recalcs else price(0)
    jobs = db.query(
        "SELECT id, state, examined, changed, error, extract(epoch FROM started_at - created_at), "
        "extract(epoch FROM finished_at - started_at) FROM costs_recalculation WHERE reason = 'soak' ORDER BY id"
    )
    row = db.query("SELECT id FROM costs_modelcost WHERE model = %s AND valid_from IS NULL", [MODEL])[0][0]
    expected = "ROUND((c.prompt_tokens * %s + c.completion_tokens * %s) / 1000, 10)"
    where = (
        f"FROM tracing_runcost c JOIN tracing_run r ON r.id = c.run_pk WHERE c.app_id = %s AND c.type = 'llm' "
        f"AND c.model = %s AND (c.cost <> {expected} OR c.cost_row_id IS DISTINCT FROM %s)"
    )
    params = [app_pk, MODEL, Decimal(prompt), Decimal(completion), row]
    wrong = db.query(f"SELECT r.run_id, c.cost, {expected}, c.started_at, r.updated_at {where} LIMIT 5",  # noqa: S608
                     [Decimal(prompt), Decimal(completion), *params])  # fmt: skip
    return {
        "requested": len(recalcs),
        "done": sum(1 for job in jobs if job[1] == "done"),
        "states": sorted({job[1] for job in jobs}),
        "errors": [job[4] for job in jobs if job[4]][:3],
        "changed": sum(job[3] for job in jobs),
        "waits_s": [None if job[5] is None else round(float(job[5]), 1) for job in jobs],
        "took_s": [None if job[6] is None else round(float(job[6]), 1) for job in jobs],
        "last_price": {"prompt": prompt, "completion": completion},
        "priced_runs": db.query(
            "SELECT count(*) FROM tracing_runcost WHERE app_id = %s AND type = 'llm' AND model = %s", [app_pk, MODEL]
        )[0][0],
        "wrong_cost": db.query(f"SELECT count(*) {where}", params)[0][0],  # noqa: S608
        "wrong_cost_sample": [[str(v) for v in w] for w in wrong],
        "requests": recalcs,
    }


def settle(done, quiet: bool) -> bool:
    """Wait up to SETTLE_S for `done()`; False (and a note) if it did not come: the checks say what is missing."""
    try:
        wait_until(done, timeout=SETTLE_S, what="", interval=0.5)
    except TimeoutError:
        log(quiet, f"  not done {SETTLE_S:.0f} s after the load: the checks will say what is missing")
        return False
    return True


def purges_done(stack: Stack) -> list[tuple[float, float, int]]:
    """(start, end, runs deleted) of each finished purge task, by start (Celery logs when one succeeds)."""
    done = []
    for moment, took, runs in PURGE_DONE.findall((stack.workdir / "worker.log").read_text(errors="replace")):
        end = datetime.strptime(moment, "%Y-%m-%d %H:%M:%S,%f").timestamp()  # the worker's local time, as ours
        done.append((end - float(took), end, int(runs)))
    return sorted(done)


def purge_figures(requested: list[dict], done: list[tuple[float, float, int]], stopped_at: float) -> dict:
    """The purges requested during the load, each paired with the one that started next after it."""
    waits, starts = [], [start for start, _, _ in done]
    for request in requested:
        later = [start for start in starts if start >= request["at"] - 1]  # the log has millisecond precision
        waits.append(round(later[0] - request["at"], 1) if later else None)
        if later:
            starts.remove(later[0])
    return {
        "requested": len(requested), "requested_at_s": [r["t"] for r in requested], "done": len(done),
        "deleted": [runs for _, _, runs in done], "took_s": [round(end - start, 1) for start, end, _ in done],
        "waits_s": waits, "deleted_during_load": sum(runs for start, _, runs in done if start < stopped_at),
    }  # fmt: skip


def log_errors(stack: Stack, postgres: Postgres | None) -> dict:
    """Lines with a Traceback, ERROR or CRITICAL in each process's log (PostgreSQL's apart: information only)."""
    found = {}
    for path in sorted(stack.workdir.glob("*.log")):
        lines = [line for line in path.read_text(errors="replace").splitlines() if LOG_ERROR.search(line)]
        found[path.stem] = {"count": len(lines), "sample": lines[:5]}
    if postgres is not None and postgres.log.exists():
        lines = [line for line in postgres.log.read_text(errors="replace").splitlines() if "ERROR:" in line]
        found["postgres (information)"] = {"count": len(lines), "sample": lines[:5]}
    return found


def rss_figures(samples: list[dict], leaders: dict[str, int], warm_t: float) -> list[dict]:
    """Per process: RSS at the first sample, after the warm-up, at the end; growth against the allowance."""
    series = defaultdict(list)
    for sample in samples:
        for key, kib in sample["rss"].items():
            if kib:  # 0: gone between the listing and the reading
                series[key].append((sample["t"], kib))
    first_t, last_t = samples[0]["t"], samples[-1]["t"]
    rows = []
    for key, points in series.items():
        name, pid = key.rsplit(":", 1)
        warm = next((p for p in points if p[0] >= warm_t), points[-1])
        growth, allowed = points[-1][1] - warm[1], max(RSS_ALLOWED_KIB, RSS_ALLOWED_FRACTION * warm[1])
        rows.append({
            "process": f"{name} {'main' if int(pid) == leaders.get(name) else 'child'}", "pid": int(pid),
            "start_kib": points[0][1], "warm_kib": warm[1], "end_kib": points[-1][1],
            "max_kib": max(kib for _, kib in points), "growth_kib": growth, "allowed_kib": round(allowed),
            "flat": growth <= allowed, "mib_per_hour": slope([p for p in points if p[0] >= warm[0]]),
            "whole_run": points[0][0] == first_t and points[-1][0] == last_t,
        })  # fmt: skip
    return sorted(rows, key=lambda row: (row["process"], row["pid"]))


def slope(points: list[tuple[float, int]]) -> float | None:
    """Least-squares trend of (seconds, KiB) points, in MiB per hour."""
    if len(points) < 3:
        return None
    mean_t, mean_k = (sum(p[i] for p in points) / len(points) for i in (0, 1))
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return round(sum((t - mean_t) * (k - mean_k) for t, k in points) / spread * 3600 / 1024, 1) if spread else None


def per_minute(soak: Soak, samples: list[dict], seconds: float) -> list[dict]:
    """Per minute of load (the last one may be shorter; requests sent as the load stopped count in it)."""
    rows = []
    for minute in range(max(1, -(-int(seconds) // 60))):
        low, high = 60 * minute, min(60 * (minute + 1), seconds)
        span, last = max(high - low, 1e-9), high >= seconds
        inside = [r for r in soak.requests if low <= r[0] < high or (last and r[0] >= high)]
        events = sum(n for t, n in soak.ingested if low <= t < high or (last and t >= high))

        def of(*groups, rows=inside):
            return [r for r in rows if r[1] in groups]

        rows.append({
            "minute": minute + 1, "events_per_s": round(events / span, 1),
            "ingest_requests": len(of("ingest")), "api_requests": len(of("api")), "page_requests": len(of("page")),
            "errors": sum(1 for r in inside if r[3] != 200),
            "ingest_p95_ms": _r(percentile([r[4] for r in of("ingest") if r[3]], 95)),
            "read_p95_ms": _r(percentile([r[4] for r in of("api", "page") if r[3]], 95)),
            "queued_max": max((s["queued"] for s in samples if low <= s["t"] < high), default=None),
        })  # fmt: skip
    return rows


def endpoints(requests: list[tuple]) -> list[dict]:
    by = defaultdict(list)
    for _, group, label, status, ms in requests:
        by[(group, label)].append((status, ms))
    return [
        {"group": group, "endpoint": label, "requests": len(done), "errors": sum(1 for s, _ in done if s != 200),
         "p50_ms": _r(percentile([ms for s, ms in done if s], 50)),
         "p95_ms": _r(percentile([ms for s, ms in done if s], 95)), "max_ms": _r(max(ms for _, ms in done))}
        for (group, label), done in sorted(by.items())
    ]  # fmt: skip


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def checks(result: dict) -> dict[str, bool]:
    """The soak's verdict, check by check: True when it holds."""
    v, ingest, recalcs, purges = result["verification"], result["ingest"], result["recalcs"], result["purges"]
    return {
        "no HTTP error, no rejected event": result["errors"]["count"] == 0 and ingest["rejected"] == 0
        and ingest["events_accepted"] > 0,
        "every accepted event, run and chat message stored": all(
            v[name]["accepted"] > 0 and v[name]["missing"] == 0 for name in ("events", "runs", "messages")
        ) and v["runs"]["stored"] == v["runs"]["accepted"],
        "nothing left of the old traces": v["old"]["runs_accepted"] > 0
        and v["old"]["runs_left"] == v["old"]["events_left"] == 0,
        f"every purge started within {MAX_WAIT_S:.0f} s, old runs deleted during the load": purges["requested"] > 0
        and purges["done"] >= purges["requested"] + 1 and purges["deleted_during_load"] > 0
        and all(wait is not None and wait <= MAX_WAIT_S for wait in purges["waits_s"]),
        f"every recalculation started within {MAX_WAIT_S:.0f} s and done": recalcs["requested"] > 0
        and recalcs["done"] == recalcs["requested"]
        and all(wait is not None and wait <= MAX_WAIT_S for wait in recalcs["waits_s"]),
        "every soak-model run at the last price": recalcs["priced_runs"] > 0 and recalcs["wrong_cost"] == 0,
        "no process exited or was replaced": not result["exited"] and all(r["whole_run"] for r in result["rss"]),
        "no Traceback, ERROR or CRITICAL in the processes' logs": not any(
            found["count"] for name, found in result["logs"].items() if not name.startswith("postgres")
        ),
        "RSS flat after the warm-up": all(r["flat"] for r in result["rss"]),
    }  # fmt: skip


# --- the whole soak --------------------------------------------------------------------------------


def run(
    *,
    seconds: float = 1800.0,
    database_url: str | None = None,
    redis_url: str = "redis://127.0.0.1:6379/11",
    rate: float = 500.0,
    batch_size: int = 50,
    ingest_threads: int = 4,
    api_readers: int = 2,
    page_readers: int = 2,
    think: float = 0.5,
    recalc_every: float | None = None,
    purge_every: float | None = None,
    sample_every: float | None = None,
    warmup: float = 0.2,
    web_workers: int = 2,
    worker_concurrency: int = 2,
    seed: int = 1,
    workdir: str | Path | None = None,
    json_path: str | Path | None = None,
    quiet: bool = False,
) -> dict:
    """Start the stack, load it for `seconds`, verify; returns (and writes) the result.

    The recalculation and purge intervals default to a quarter and a third of the run, within
    15-120 s and 20-180 s; the RSS sampling interval to a sixtieth, within 1-10 s.
    """
    settings = {
        "seconds": seconds, "rate": rate, "batch_size": batch_size, "ingest_threads": ingest_threads,
        "api_readers": api_readers, "page_readers": page_readers, "think_s": think,
        "recalc_every_s": recalc_every or max(15.0, min(120.0, seconds / 4)),
        "purge_every_s": purge_every or max(20.0, min(180.0, seconds / 3)),
        "sample_every_s": sample_every or max(1.0, min(10.0, seconds / 60)), "warmup": warmup,
        "web_workers": web_workers, "worker_concurrency": worker_concurrency, "seed": seed,
        "redis_url": redis_url, "private_cluster": database_url is None,
    }  # fmt: skip
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="soak-"))
    postgres, result = None, None
    try:
        if database_url is None:
            postgres = Postgres(work / "pg").init()
            postgres.start()
            database_url = postgres.create_database("observatory")
        redis.Redis.from_url(redis_url).flushdb()  # the soak's own database: nothing queued from before
        env = {"OBSERVATORY_RATE_LIMIT_PER_MINUTE": "0"}
        with Stack(database_url=database_url, redis_url=redis_url, workdir=work / "logs", env=env) as stack:
            result = soak_stack(stack, postgres, database_url, settings, quiet)
    finally:
        if postgres is not None:
            postgres.destroy()
        if result is not None and result["passed"] and not workdir:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(quiet, f"the processes' logs are in {work / 'logs'}")
    return publish(result, report, json_path, quiet)


def soak_stack(stack: Stack, postgres: Postgres | None, database_url: str, settings: dict, quiet: bool) -> dict:
    s = settings
    key = stack.setup(APP, ORG)
    password = secrets.token_urlsafe(16)
    stack.manage("add_member", ORG, VIEWER, "--password", password)
    stack.manage("set_model_cost", MODEL, "--prompt", price(0)[0], "--completion", price(0)[1])
    db = Database(database_url)
    db.execute("UPDATE tenancy_app SET retention_days = %s WHERE slug = %s", [RETENTION_DAYS, APP])
    app_pk = db.app_for_key(key)[0]
    stack.start_worker("worker", s["worker_concurrency"])
    stack.start_beat()
    url = stack.start_web(s["web_workers"])
    worker_log = stack.workdir / "worker.log"
    wait_until(lambda: " ready." in worker_log.read_text(errors="replace"), timeout=120, what="the Celery worker")
    soak = Soak(url, key, login(url, VIEWER, password), think=s["think_s"])
    tag, since = f"s{secrets.token_hex(3)}-", _iso(datetime.now(UTC) - timedelta(minutes=1))
    operator, samples = Operator(soak, stack, s["recalc_every_s"], s["purge_every_s"]), []
    per_client = s["rate"] / s["ingest_threads"]
    threads = [
        *(threading.Thread(target=ingester, args=(soak, n), kwargs={"rate": per_client, "batch_size": s["batch_size"],
          "seed": s["seed"] * 1000 + n, "tag": tag}) for n in range(s["ingest_threads"])),
        *(threading.Thread(target=api_reader, args=(soak, n, since)) for n in range(s["api_readers"])),
        *(threading.Thread(target=page_reader, args=(soak, n)) for n in range(s["page_readers"])),
        threading.Thread(target=operator.loop),
        threading.Thread(target=sampler, args=(soak, stack, database_url, s["sample_every_s"], samples)),
    ]  # fmt: skip
    log(quiet, f"soak: {s['seconds']:.0f} s on {url}, {s['rate']:.0f} events/s, logs in {stack.workdir}")
    for thread in threads:
        thread.start()
    try:
        while (left := s["seconds"] - soak.now()) > 0:
            time.sleep(min(left, 60.0))
            if samples:
                log(quiet, f"  {soak.now():6.0f} s: {sum(n for _, n in soak.ingested):,} events accepted, queue "
                    f"{samples[-1]['queued']:,}, {sum(1 for r in soak.requests if r[3] != 200)} errors, RSS "
                    + " ".join(f"{k}={v // 1024}M" for k, v in samples[-1]["rss"].items()))  # fmt: skip
    finally:  # also when interrupted: the threads stop before the stack does
        soak.stop.set()
        stopped_at = time.time()
        for thread in threads:
            thread.join()
    loaded = soak.now()

    log(quiet, "load stopped: draining the queue, waiting for the recalculations and purges")
    drain = wait_for_assembly(db, stall_seconds=120)
    pending = "SELECT 1 FROM costs_recalculation WHERE state IN ('queued', 'running')"
    late = [what for what, done in [("recalculations", lambda: not db.query(pending)),
                                    ("purges", lambda: len(purges_done(stack)) >= len(operator.purges))]
            if not settle(done, quiet)]  # fmt: skip
    stack.manage("shell", "-c", PURGE)  # the old events applied since the last purge
    if not settle(lambda: len(purges_done(stack)) > len(operator.purges), quiet):
        late.append("the last purge")
    waited = soak.now() - loaded
    samples.append({"t": round(soak.now(), 1), "rss": stack.rss(), "queued": 0})

    accepted = sum(n for _, n in soak.ingested)
    exited = [name for name, process in stack.processes.items() if process.poll() is not None]
    errors = [r for r in soak.requests if r[3] != 200]
    result = {
        "benchmark": "soak",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": db.server_version(),
        "machine": machine_info(),
        "settings": s,
        "load_seconds": round(loaded, 1),
        "ingest": {
            "events_sent": soak.sent, "events_accepted": accepted, "rejected": soak.rejected,
            "requests": sum(1 for r in soak.requests if r[1] == "ingest"),
            "events_per_s": round(accepted / loaded, 1), "old_runs_accepted": len(soak.accepted["old_runs"]),
        },  # fmt: skip
        "reads": {group: sum(1 for r in soak.requests if r[1] == group) for group in ("api", "page")},
        "errors": {"count": len(errors), "samples": soak.error_samples},
        "minutes": per_minute(soak, samples, s["seconds"]),
        "endpoints": endpoints(soak.requests),
        "drain_s": round(drain, 1),
        "after_load_s": round(waited, 1),
        "not_done_after_load": late,
        "queued_max": max(sample["queued"] for sample in samples),
        "rss": rss_figures(samples, {n: p.pid for n, p in stack.processes.items()}, s["warmup"] * s["seconds"]),
        "exited": exited,
        "recalcs": costs(db, app_pk, operator.recalcs),
        "purges": purge_figures(operator.purges, purges_done(stack), stopped_at),
        "verification": verify(db, app_pk, soak.accepted, tag),
        "logs": log_errors(stack, postgres),
        "samples": samples,  # RSS (KiB) of every process and the queue, every sample_every_s
        "stored": dict(zip(("runs", "events", "database_mib"), db.query(
            "SELECT (SELECT count(*) FROM tracing_run), (SELECT count(*) FROM tracing_event), "
            "pg_database_size(current_database()) / 1048576")[0], strict=True)),
    }  # fmt: skip
    db.close()
    result["checks"] = checks(result)
    result["passed"] = all(result["checks"].values())
    return result


def report(result: dict) -> str:
    s, ingest, v = result["settings"], result["ingest"], result["verification"]
    recalcs, purges = result["recalcs"], result["purges"]
    columns = ["minute", "events_per_s", "ingest_requests", "api_requests", "page_requests", "errors",
               "ingest_p95_ms", "read_p95_ms", "queued_max"]  # fmt: skip
    minutes = [[m[c] for c in columns] for m in result["minutes"]]
    columns = ["group", "endpoint", "requests", "errors", "p50_ms", "p95_ms", "max_ms"]
    calls = [[e[c] for c in columns] for e in result["endpoints"]]
    columns = ["start_kib", "warm_kib", "end_kib", "growth_kib", "allowed_kib"]
    rss = [[r["process"], r["pid"], *(round(r[c] / 1024, 1) for c in columns), r["mib_per_hour"],
            "flat" if r["flat"] else "GREW"] for r in result["rss"]]  # fmt: skip
    log_lines = [f"  {name}: {found['count']} line(s)" + "".join(f"\n    {line[:200]}" for line in found["sample"])
                 for name, found in result["logs"].items() if found["count"]]  # fmt: skip
    return "\n".join([
        f"Soak: {result['load_seconds']:,.0f} s of load on gunicorn ({s['web_workers']} workers), a Celery worker "
        f"(concurrency {s['worker_concurrency']}) and beat, worker assembly ({result['database']}, "
        f"{result['machine']['cpus']} CPUs)",
        f"ingestion: {s['ingest_threads']} clients, batches of {s['batch_size']}, target {s['rate']:,.0f} events/s: "
        f"{ingest['events_accepted']:,} events accepted ({ingest['events_per_s']:,.0f}/s), {ingest['rejected']} "
        f"rejected; reads: {result['reads']['api']:,} API, {result['reads']['page']:,} pages; "
        f"HTTP errors: {result['errors']['count']}",
        "",
        table(["min", "events/s", "posts", "api", "pages", "errors", "post p95 ms", "read p95 ms", "queue max"],
              minutes),
        "",
        table(["group", "endpoint", "requests", "errors", "p50 ms", "p95 ms", "max ms"], calls),
        "",
        f"RSS (MiB; warm = first sample after {s['warmup']:.0%} of the run; allowed growth max(20 MiB, 10 %)):",
        table(["process", "pid", "start", "warm", "end", "growth", "allowed", "MiB/h", "verdict"], rss),
        "",
        f"recalculations: {recalcs['requested']} requested, {recalcs['done']} done ({', '.join(recalcs['states'])})"
        f", started after {recalcs['waits_s']} s, took {recalcs['took_s']} s; {recalcs['changed']:,} costs changed; "
        f"{recalcs['priced_runs']:,} {MODEL} runs, {recalcs['wrong_cost']} not at the last price "
        f"({recalcs['last_price']['prompt']} / {recalcs['last_price']['completion']})",
        f"purges: {purges['requested']} during the load + 1 after, {purges['done']} done, started after "
        f"{purges['waits_s']} s, took {purges['took_s']} s; runs deleted {purges['deleted']}, "
        f"{purges['deleted_during_load']:,} by purges started during the load; old traces sent "
        f"{v['old']['runs_accepted']:,} runs, left {v['old']['runs_left']} runs and {v['old']['events_left']} events",
        "stored: " + ", ".join(f"{n}: {v[n]['accepted']:,} accepted, {v[n]['missing']} missing"
                               for n in ("events", "runs", "messages"))
        + f"; {result['stored']['runs']:,} runs, {result['stored']['events']:,} events, "
        f"{result['stored']['database_mib']:,} MiB in the database",
        f"after the load: queue drained in {result['drain_s']} s (its peak {result['queued_max']:,} events), "
        f"all done in {result['after_load_s']} s"
        + (f"; not done {SETTLE_S:.0f} s after it: {', '.join(result['not_done_after_load'])}"
           if result["not_done_after_load"] else ""),
        *(["", "errors:", *(f"  {e[:300]}" for e in result["errors"]["samples"][:10])] if result["errors"]["samples"]
          else []),
        *(["", "log lines:", *log_lines] if log_lines else []),
        "",
        "checks:",
        *(f"  {'ok  ' if ok else 'FAIL'} {name}" for name, ok in result["checks"].items()),
        "",
        f"verdict: {'PASS' if result['passed'] else 'FAIL'}",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1800.0, help="how long the load lasts (default 30 min)")
    parser.add_argument("--database-url", help="a fresh database (default: a private PostgreSQL cluster)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11", help="the soak's own; flushed")
    parser.add_argument("--rate", type=float, default=500.0, help="events/s posted, all clients together")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--ingest-threads", type=int, default=4)
    parser.add_argument("--api-readers", type=int, default=2)
    parser.add_argument("--page-readers", type=int, default=2)
    parser.add_argument("--think", type=float, default=0.5, help="seconds a reader waits between requests")
    parser.add_argument("--recalc-every", type=float, help="seconds between price changes (default: see run())")
    parser.add_argument("--purge-every", type=float, help="seconds between purges")
    parser.add_argument("--sample-every", type=float, help="seconds between RSS samples")
    parser.add_argument("--warmup", type=float, default=0.2, help="fraction of the run before RSS is judged")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", help="keep the logs (and the private cluster while it runs) here")
    parser.add_argument("--json", default=str(RESULTS_DIR / "soak.json"), help="where to write the results")
    args = parser.parse_args(argv)
    if args.seconds < 10 or not 0 <= args.warmup < 1:
        parser.error("--seconds must be at least 10 and --warmup a fraction of the run (0 to 1)")
    return run(
        seconds=args.seconds, database_url=args.database_url, redis_url=args.redis_url, rate=args.rate,
        batch_size=args.batch_size, ingest_threads=args.ingest_threads, api_readers=args.api_readers,
        page_readers=args.page_readers, think=args.think, recalc_every=args.recalc_every,
        purge_every=args.purge_every, sample_every=args.sample_every, warmup=args.warmup,
        web_workers=args.web_workers, worker_concurrency=args.worker_concurrency, seed=args.seed,
        workdir=args.workdir, json_path=args.json,
    )  # fmt: skip


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the stack and the cluster on the way out
    sys.exit(0 if main()["passed"] else 1)
