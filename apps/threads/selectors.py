"""Reads of threads: the threads of an app, and one thread as a conversation (its messages with their
runs' latency, tokens, cost and feedback)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Q

from apps.threads.models import Thread, ThreadMessage
from apps.tracing.models import Feedback
from apps.tracing.selectors import subtree_totals


def threads_of(app):
    """The threads of one app: what the threads list filters and pages."""
    return Thread.objects.for_app(app)


@dataclass
class MessageView:
    message: ThreadMessage
    latency_s: float | None
    tokens: int | None
    cost: Decimal | None
    feedback: list[Feedback] = field(default_factory=list)

    def __getattr__(self, name):
        return getattr(self.message, name)


def conversation(thread: Thread, app) -> list[MessageView]:
    """The messages in time order. A message linked to a run shows that run's latency and its whole
    trace's tokens and cost; otherwise the time since the previous message and its own tokens.
    Feedback on the message, or on its run, shows next to it. Three queries, whatever the length."""
    messages = list(thread.messages.order_by("timestamp", "id"))
    runs = subtree_totals(app, {m.run_id for m in messages if m.run_id})
    feedback = _feedback_by_target(app, messages)
    views, previous = [], None
    for message in messages:
        tokens, cost, latency = runs.get(message.run_id, (message.total_tokens, message.cost, None))
        if latency is None and message.run_id not in runs and previous is not None:
            latency = (message.timestamp - previous.timestamp).total_seconds()
        notes = feedback.get(("message", message.message_id), []) + feedback.get(("run", message.run_id), [])
        views.append(MessageView(message, latency, tokens, cost, sorted(set(notes), key=lambda f: f.timestamp)))
        previous = message
    return views


def _feedback_by_target(app, messages: list[ThreadMessage]) -> dict[tuple[str, str], list[Feedback]]:
    message_ids = {m.message_id for m in messages if m.message_id}
    run_ids = {m.run_id for m in messages if m.run_id}
    if not (message_ids or run_ids):
        return {}
    grouped: dict[tuple[str, str], list[Feedback]] = defaultdict(list)
    for item in Feedback.objects.for_app(app).filter(Q(message_id__in=message_ids) | Q(run_id__in=run_ids)):
        if item.message_id in message_ids:
            grouped[("message", item.message_id)].append(item)
        if item.run_id in run_ids:
            grouped[("run", item.run_id)].append(item)
    return grouped
