"""Reads of threads: the threads of an app, and one thread as a conversation (its messages with their
runs' latency, tokens, cost and feedback); for the Threads page, a filtered keyset page of threads
and the app's agent names."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace

from django.db import connection
from django.db.models import Case, Count, OuterRef, Q, Subquery, When
from django.db.models.functions import Coalesce
from rest_framework.exceptions import ValidationError

from apps.tenancy.api.pagination import KeysetPagination
from apps.threads.filters import ThreadFilterSet
from apps.threads.models import Thread, ThreadMessage
from apps.tracing.models import Feedback, Rating
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


# --- the Threads page ------------------------------------------------------------------------------

THREAD_ORDERING = "-ended_at"  # as GET /api/threads/ (ThreadViewSet.ordering)
AGENT_CHOICES = 100


@dataclass
class ThreadPage:
    threads: list[Thread]  # each with `.positive` and `.negative`: its feedback counts
    next_cursor: str | None


def page_of_threads(app, data) -> ThreadPage:
    """One keyset page of the app's threads, most recent activity first, filtered by the API's own
    ThreadFilterSet on `data` (a QueryDict of the API's parameters, `cursor` and `limit` included).

    Paged by the API's KeysetPagination itself, so a cursor means the same on the page and in
    the API. An invalid value raises the API's ValidationError (a 400 naming the parameter).
    One query, whatever the page.
    """
    filterset = ThreadFilterSet(data, queryset=threads_of(app))
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    paginator = KeysetPagination()
    rows = paginator.paginate_queryset(
        _with_feedback_counts(filterset.qs),
        SimpleNamespace(query_params=data),  # what the paginator reads of a request: `cursor`, `limit`
        SimpleNamespace(ordering=THREAD_ORDERING),  # and of a view
    )
    return ThreadPage(rows, paginator.encode(paginator.last) if paginator.has_next else None)


def _with_feedback_counts(threads):
    """Annotate `positive` and `negative`: the feedback on the thread's messages or on their runs
    (each feedback once), computed by subqueries for the rows of the page only, and only for
    threads that have feedback at all."""
    messages = ThreadMessage.objects.filter(thread=OuterRef(OuterRef("pk")))

    def count(rating):
        rated = (
            Feedback.objects.for_app(OuterRef("app"))
            .filter(rating=rating)
            .filter(
                Q(message_id__in=messages.filter(message_id__isnull=False).values("message_id"))
                | Q(run_id__in=messages.filter(run_id__isnull=False).values("run_id"))
            )
            .order_by()
            .values("app")
            .annotate(n=Count("pk"))
            .values("n")[:1]
        )
        return Case(When(has_feedback=True, then=Coalesce(Subquery(rated), 0)), default=0)

    return threads.annotate(positive=count(Rating.POSITIVE), negative=count(Rating.NEGATIVE))


def agents_of(app, limit: int = AGENT_CHOICES) -> list[str]:
    """The app's distinct agent names, alphabetically, at most `limit`: the Threads page's agent choices.

    A loose index scan on (app, agent, ...): one index probe per name, so it costs the same
    with a thousand threads or ten million (a DISTINCT would read every thread of the app).
    """
    table = Thread._meta.db_table
    sql = f"""
        WITH RECURSIVE agents(name, n) AS (
            SELECT (SELECT MIN(agent) FROM {table} WHERE app_id = %s), 1
            UNION ALL
            SELECT (SELECT MIN(agent) FROM {table} WHERE app_id = %s AND agent > agents.name), n + 1
            FROM agents WHERE agents.name IS NOT NULL AND n < %s
        )
        SELECT name FROM agents WHERE name IS NOT NULL
    """  # noqa: S608 - only the table name is formatted in
    with connection.cursor() as cursor:
        cursor.execute(sql, [app.pk, app.pk, limit])
        return [name for (name,) in cursor.fetchall()]
