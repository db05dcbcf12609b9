"""A small known data set for the analytics tests, written through the real ingestion pipeline.

Prices: gpt-4o $0.01 and claude $0.05 per 1K tokens (prompt and completion alike).

    run  type   parent  agent    model   started (UTC)         latency  tokens p+c   cost    status
    a1   agent  -       support  -       2026-05-01 10:00:00   10       -            0       success  user u1
    l1   llm    a1      support  gpt-4o  2026-05-01 10:00:01   1        1000+1000    0.02    success  (u1)
    l2   llm    a1      support  gpt-4o  2026-05-01 10:00:02   2        500+500      0.01    error    (u1)
    a2   agent  -       support  -       2026-05-02 09:00:00   4        -            0       success  user u2
    l3   llm    a2      support  claude  2026-05-02 09:00:01   3        1000+0       0.05    success  (u2)
    l4   llm    -       -        gpt-4o  2026-05-02 03:30:00   4        100+100      0.002   error    user u3
    l5   llm    -       -        claude  2026-05-03 12:00:00   5        2000+2000    0.2     error    user u1, tags beta
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.costs.models import ModelCost
from tests.helpers import ingest

WINDOW = "from=2026-05-01T00:00:00Z&to=2026-05-03T23:59:59Z"


def llm(run_id: str, ended: str, latency: float, model: str, prompt: int, completion: int, **extra) -> dict:
    return {"name": "llm_call", "run_id": run_id, "timestamp": ended, "latency_s": latency, "model": model,
            "prompt_tokens": prompt, "completion_tokens": completion, **extra}  # fmt: skip


@pytest.fixture
def dataset(acme_app):
    for model, price in (("gpt-4o", Decimal("0.01")), ("claude", Decimal("0.05"))):
        ModelCost.objects.update_or_create(
            model=model, defaults={"prompt_price": price, "completion_price": price, "cached_prompt_price": None}
        )
    u1 = {"agent": "support", "user_id": "u1", "user_email": "u1@example.com"}
    u2 = {"agent": "support", "user_id": "u2", "user_email": "u2@example.com"}
    ingest(
        acme_app,
        {"name": "agent_start", "run_id": "a1", "timestamp": "2026-05-01T10:00:00Z", "metadata": u1},
        {"name": "agent_end", "run_id": "a1", "timestamp": "2026-05-01T10:00:10Z"},
        llm("l1", "2026-05-01T10:00:02Z", 1, "gpt-4o", 1000, 1000, parent_run_id="a1"),
        llm("l2", "2026-05-01T10:00:04Z", 2, "gpt-4o", 500, 500, parent_run_id="a1",
            error={"message": "Rate limit reached for gpt-4o in org-abc123 on 429", "stack": "..."}),
        {"name": "agent_start", "run_id": "a2", "timestamp": "2026-05-02T09:00:00Z", "metadata": u2},
        {"name": "agent_end", "run_id": "a2", "timestamp": "2026-05-02T09:00:04Z"},
        llm("l3", "2026-05-02T09:00:04Z", 3, "claude", 1000, 0, parent_run_id="a2"),
        llm("l4", "2026-05-02T03:30:04Z", 4, "gpt-4o", 100, 100, metadata={"user_id": "u3"},
            error={"message": "Rate limit reached for gpt-4o in org-xyz789 on 429"}),
        llm("l5", "2026-05-03T12:00:05Z", 5, "claude", 2000, 2000, metadata={"user_id": "u1"}, tags=["beta"],
            error="Timeout after 30 seconds"),
    )  # fmt: skip
    return acme_app
