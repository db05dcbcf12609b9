"""`manage.py load_demo`: realistic demo traffic, written through the real ingestion pipeline.

Agents run chains that call tools and LLMs over several models; a few runs fail, a few
never finish; users chat in threads (with and without a thread_id) and leave feedback.
Deterministic for a given seed, spread over the last week.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.costs.models import ModelCost
from apps.costs.pricing import PriceBook
from apps.ingestion.assembly import assemble_pending
from apps.ingestion.services import ingest_batch
from apps.tenancy.services import AppLookupError, get_or_create_app

BATCH_EVENTS = 500

# model: (prompt, completion) USD per 1K tokens, used only when the cost table cannot price the model.
DEMO_MODELS = {
    "gpt-4o": ("0.0025", "0.01"),
    "gpt-4o-mini": ("0.00015", "0.0006"),
    "claude-3-5-sonnet-20241022": ("0.003", "0.015"),
    "claude-3-5-haiku-20241022": ("0.0008", "0.004"),
    "gemini-1.5-pro": ("0.00125", "0.005"),
    "mistral-large-latest": ("0.002", "0.006"),
}
AGENTS = {
    "support-triage": ["classify-ticket", "draft-reply"],
    "claims-approval": ["extract-claim", "check-policy", "decide"],
    "research-assistant": ["plan", "search", "summarise"],
}
TOOLS = ["web_search", "kb_lookup", "sql_query", "calculator", "crm_fetch"]
USERS = [f"user-{n:03d}" for n in range(1, 13)]
TAGS = ["production", "beta", "eu", "us", "vip", "high-risk"]
QUESTIONS = [
    "Why was my card charged twice?",
    "Can you summarise the policy on water damage?",
    "What were our top 3 products last quarter?",
    "Is claim CL-2291 covered?",
    "Translate the refund notice into German.",
    "Compare plan A and plan B for a family of four.",
]


def ensure_demo_prices() -> None:
    """Give the demo's models a price when the cost table cannot price them, so demo traces show costs."""
    prices = PriceBook.for_models(DEMO_MODELS)
    for model, (prompt, completion) in DEMO_MODELS.items():
        if prices.row_for(model, None) is None:
            ModelCost.objects.create(model=model, prompt_price=Decimal(prompt), completion_price=Decimal(completion))


class DemoTraffic:
    def __init__(self, *, seed: int = 7, now: datetime | None = None, days: int = 7) -> None:
        self.rng = random.Random(seed)
        self.now = now or timezone.now()
        self.days = days

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _ts(self, at: datetime) -> str:
        return at.isoformat().replace("+00:00", "Z")

    def traces(self, runs: int) -> Iterator[list[dict]]:
        """Lists of events, one list per trace, until about `runs` runs have been made."""
        made = 0
        while made < runs:
            events = self.trace()
            made += sum(1 for e in events if e["name"].endswith(("_start", "_call")))
            yield events

    def trace(self) -> list[dict]:
        agent = self.rng.choice(list(AGENTS))
        user = self.rng.choice(USERS)
        meta = {"agent": agent, "user_id": user, "user_email": f"{user}@example.com", "tags": self._tags()}
        start = self.now - timedelta(seconds=self.rng.uniform(60, self.days * 86400))
        root = self._id()
        question = self.rng.choice(QUESTIONS)
        events: list[dict] = []
        clock = start + timedelta(milliseconds=20)
        failed = False
        for chain in AGENTS[agent]:
            clock, chain_failed = self._chain(events, chain, root, meta, clock)
            failed = failed or chain_failed
            if chain_failed:
                break
        events.insert(0, self._event("agent_start", root, None, start, meta, input={"question": question}))
        if self.rng.random() < 0.03:
            return events  # still running (or crashed without an end): shows as started / timed out
        end = {"output": {"answer": self._answer(question)}} if not failed else {"status": "error"}
        if failed:
            end["error"] = {"type": "ToolError", "message": "upstream tool failed; see child run"}
        events.append(self._event("agent_end", root, None, clock + timedelta(milliseconds=15), meta, **end))
        events += self._conversation(agent, user, root, question, start, clock)
        if self.rng.random() < 0.05:
            events.append({"name": "saved", "run_id": root, "timestamp": self._ts(clock + timedelta(minutes=5))})
        return events

    def _chain(self, events, name, parent, meta, clock) -> tuple[datetime, bool]:
        run_id, start = self._id(), clock
        clock += timedelta(milliseconds=5)
        children_failed = False
        for _ in range(self.rng.randint(1, 2)):
            clock = self._llm(events, run_id, meta, clock)
            if self.rng.random() < 0.6:
                clock, tool_failed = self._tool(events, run_id, meta, clock)
                children_failed = children_failed or tool_failed
        events.append(self._event("chain_start", run_id, parent, start, meta, run_name=name, input={"step": name}))
        end = {"status": "error", "error": "child tool failed"} if children_failed else {"output": {"ok": True}}
        events.append(self._event("chain_end", run_id, parent, clock, meta, **end))
        return clock + timedelta(milliseconds=5), children_failed

    def _tool(self, events, parent, meta, clock) -> tuple[datetime, bool]:
        run_id, tool = self._id(), self.rng.choice(TOOLS)
        duration = timedelta(seconds=self.rng.lognormvariate(-1.2, 0.8))
        events.append(self._event("tool_start", run_id, parent, clock, meta, run_name=tool, input={"query": "…"}))
        if self.rng.random() < 0.05:
            error = {"type": "TimeoutError", "message": f"{tool} timed out after 30s", "stack": "Traceback ..."}
            events.append(self._event("tool_error", run_id, parent, clock + duration, meta, error=error))
            return clock + duration, True
        events.append(self._event("tool_end", run_id, parent, clock + duration, meta, output={"rows": 3}))
        return clock + duration, False

    def _llm(self, events, parent, meta, clock) -> datetime:
        model = self.rng.choice(list(DEMO_MODELS))
        prompt, completion = self.rng.randint(200, 4000), self.rng.randint(20, 900)
        duration = timedelta(seconds=min(30.0, self.rng.lognormvariate(0.6, 0.7) + completion / 400))
        events.append(
            self._event(
                "llm_call",
                self._id(),
                parent,
                clock + duration,
                meta,
                model=model,
                prompt_tokens=prompt,
                completion_tokens=completion,
                latency_s=duration.total_seconds(),
                input=[{"role": "user", "content": self.rng.choice(QUESTIONS)}],
                output={"role": "assistant", "content": "Here is what I found: <b>not bold</b> & more."},
            )  # fmt: skip
        )
        return clock + duration

    def _conversation(self, agent, user, root, question, start, end) -> list[dict]:
        """Chat messages of the trace's conversation, and now and then a feedback."""
        thread = {"thread_id": f"conv-{self.rng.randint(1, 40)}"} if self.rng.random() < 0.5 else {}
        meta = {"agent": agent, "user_id": user}
        user_msg, bot_msg = self._id(), self._id()
        events = [
            {"name": "chat", "role": "user", "content": question, "message_id": user_msg,
             "timestamp": self._ts(start), "metadata": meta, **thread},
            {"name": "chat", "role": "assistant", "content": self._answer(question), "message_id": bot_msg,
             "run_id": root, "timestamp": self._ts(end), "metadata": meta, **thread},
        ]  # fmt: skip
        if self.rng.random() < 0.25:
            rating = "positive" if self.rng.random() < 0.7 else "negative"
            comment = "Exactly right" if rating == "positive" else "That is not what I asked"
            events.append({"name": "feedback", "message_id": bot_msg, "rating": rating, "comment": comment,
                           "timestamp": self._ts(end + timedelta(seconds=20))})  # fmt: skip
        return events

    def _event(self, name, run_id, parent, at, meta, **fields) -> dict:
        return {
            "name": name, "run_id": run_id, "parent_run_id": parent, "timestamp": self._ts(at),
            "metadata": dict(meta), **fields,
        }  # fmt: skip

    def _tags(self) -> list[str]:
        return self.rng.sample(TAGS, self.rng.randint(0, 2))

    def _answer(self, question: str) -> str:
        return f"About “{question[:40]}”: here is a short answer with <script>alert('x')</script> escaped."


class Command(BaseCommand):
    help = "Fill an app with realistic demo traces, threads and feedback, through the real ingestion pipeline."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--app", default="demo", help="app slug (created in the `default` organization if missing)")
        parser.add_argument("--org", default=None, help="organization slug of the app")
        parser.add_argument("--runs", type=int, default=400, help="about how many runs to make (default 400)")
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args, app: str, org: str | None, runs: int, seed: int, **options) -> None:
        if runs < 1:
            raise CommandError("--runs must be at least 1")
        try:
            target = get_or_create_app(app_slug=app, org_slug=org, create=True)
        except AppLookupError as exc:
            raise CommandError(str(exc)) from None
        ensure_demo_prices()
        batch: list[dict] = []
        accepted = 0
        for trace in DemoTraffic(seed=seed).traces(runs):
            batch += trace
            if len(batch) >= BATCH_EVENTS:
                accepted += self._send(target, batch)
                batch = []
        if batch:
            accepted += self._send(target, batch)
        assemble_pending()  # with OBSERVATORY_ASSEMBLY=worker: apply now, so the demo is complete on return
        self.stdout.write(f"Loaded {accepted} demo events into app '{target.slug}' ({target.public_id}).")

    def _send(self, app, events: list[dict]) -> int:
        result = ingest_batch(app=app, raw_events=events)
        if result.errors:
            raise CommandError(f"demo data was rejected: {result.as_json()['errors'][:3]}")
        return result.accepted
