"""Chat events become thread messages; thread aggregates and feedback flags follow (SPEC §5).

Called by the ingestion pipeline inside the batch's transaction, after the runs are written.
A fixed number of queries per app per batch, whatever the number of messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

import orjson
from django.db import connection, transaction
from django.db.models import Count, Exists, Max, Min, OuterRef, Q, Subquery

from apps.costs.pricing import PriceBook, Usage
from apps.threads.models import PREVIEW_CHARS, WINDOW, Thread, ThreadMessage
from apps.tracing.events import EventIn, by_app, of_kind
from apps.tracing.models import Feedback, Run, RunCost
from apps.tracing.retention import protected_run_ids, run_batches
from apps.tracing.services import RunIds, with_ancestors
from apps.tracing.sql import run_tree, try_advisory_lock, update_rows, upsert

MESSAGE_COLUMNS = [
    "thread", "app", "dedup_key", "message_id", "role", "content", "preview", "timestamp", "run_id",
    "total_tokens", "cost",
]  # fmt: skip


def user_of(event: EventIn) -> str | None:
    return event.user_id or event.user_email


def chat_lock_names(events: Sequence[EventIn]) -> set[str]:
    """The conversations this batch adds to: two batches must not both open the same new thread."""
    return {
        f"thread:{e.app.pk}:{e.thread_id}" if e.thread_id else f"window:{e.app.pk}:{e.agent}:{user_of(e)}"
        for e in events
        if e.kind == "chat"
    }


# --- placing messages -------------------------------------------------------------------------


def apply_chat_events(chats: Sequence[EventIn]) -> None:
    """Each chat event (stored for the first time) becomes a message of its thread."""
    for app, app_chats in by_app(chats).items():
        placed = _place(app, sorted(app_chats, key=lambda e: e.timestamp))
        prices = PriceBook.for_models(e.model for e in app_chats if e.model)
        rows = [
            (thread.pk, app.pk, e.dedup_key, e.message_id, e.role, e.content,
             preview_of(e.content), e.timestamp, e.run_id, e.total_tokens,
             _own_cost(e, prices))
            for thread, e in placed
        ]  # fmt: skip
        upsert(ThreadMessage, MESSAGE_COLUMNS, rows, conflict=["app", "dedup_key"])


def _place(app, chats: list[EventIn]) -> list[tuple[Thread, EventIn]]:
    """Pick or open the thread of each message (in time order); new threads are inserted."""
    candidates = _candidate_threads(app, chats)
    by_client_id = {t.thread_id: t for t in candidates if t.thread_id}
    windows = [t for t in candidates if not t.thread_id]
    placed, opened, changed = [], [], []
    for event in chats:
        thread = by_client_id.get(event.thread_id) if event.thread_id else _window_thread(windows, event)
        if thread is None:
            thread = Thread(app=app, thread_id=event.thread_id, started_at=event.timestamp, ended_at=event.timestamp)
            opened.append(thread)
            (by_client_id.__setitem__(event.thread_id, thread) if event.thread_id else windows.append(thread))
        elif thread.pk and _fill_identity(thread, event) and thread not in changed:
            changed.append(thread)
        _fill_identity(thread, event)
        thread.started_at, thread.ended_at = (
            min(thread.started_at, event.timestamp),
            max(thread.ended_at, event.timestamp),
        )
        placed.append((thread, event))
    Thread.objects.bulk_create(opened)
    if changed:
        Thread.objects.bulk_update(changed, ["agent", "user_id", "user_email"])
    return placed


def _candidate_threads(app, chats: list[EventIn]) -> list[Thread]:
    """Threads named by the batch, and window threads of its agents and users near its times, in one query."""
    client_ids = {e.thread_id for e in chats if e.thread_id}
    loose = [e for e in chats if not e.thread_id]
    wanted = Q(thread_id__in=client_ids) if client_ids else Q(pk__in=[])
    if loose:
        near = Q(
            thread_id__isnull=True,
            agent__in={e.agent for e in loose if e.agent},
            ended_at__gte=min(e.timestamp for e in loose) - WINDOW,
            started_at__lte=max(e.timestamp for e in loose) + WINDOW,
        )
        if any(e.agent is None for e in loose):
            near |= Q(thread_id__isnull=True, agent__isnull=True)
        wanted |= near
    return list(Thread.objects.for_app(app).filter(wanted))


def _window_thread(threads: Iterable[Thread], event: EventIn) -> Thread | None:
    """The most recent thread of the event's agent and user whose span, widened by the window,
    contains the message: for messages in order, "the last message is at most 30 minutes older"."""
    user = user_of(event)
    matches = [
        t
        for t in threads
        if t.agent == event.agent
        and (t.user_id or t.user_email) == user
        and t.started_at - WINDOW <= event.timestamp <= t.ended_at + WINDOW
    ]
    return max(matches, key=lambda t: t.ended_at, default=None)


def _fill_identity(thread: Thread, event: EventIn) -> bool:
    """Give a thread the agent and user of its messages when it has none yet; True if it changed."""
    changed = False
    for name in ("agent", "user_id", "user_email"):
        if getattr(thread, name) is None and getattr(event, name) is not None:
            setattr(thread, name, getattr(event, name))
            changed = True
    return changed


def preview_of(content) -> str:
    if content is None:
        return ""
    text = content if isinstance(content, str) else orjson.dumps(content).decode()
    return " ".join(text.split())[:PREVIEW_CHARS]


def _own_cost(event: EventIn, prices: PriceBook) -> Decimal | None:
    """The cost of the tokens a chat event carries itself (used when it links no run)."""
    if event.total_tokens is None:
        return None
    usage = Usage(event.model, event.prompt_tokens, event.completion_tokens, event.total_tokens, event.timestamp)
    return prices.price(usage)[0]


# --- aggregates and feedback flags ---------------------------------------------------------------


def link_message_feedback(new: Sequence[EventIn]) -> RunIds:
    """Feedback given on a message also rates the message's run: resolve its run_id.

    Either may arrive first, so this runs for new feedback and for new messages alike.
    Returns the runs that gain feedback, for tracing.mark_run_feedback.
    """
    rated: RunIds = {}
    for app, app_new in by_app(of_kind(new, "chat", "feedback")).items():
        message_ids = {e.message_id for e in app_new if e.message_id}
        if not message_ids:
            continue
        run_of_message = ThreadMessage.objects.filter(
            app=app, message_id=OuterRef("message_id"), run_id__isnull=False
        ).values("run_id")[:1]
        unresolved = Feedback.objects.for_app(app).filter(run_id__isnull=True, message_id__in=message_ids)
        if unresolved.update(run_id=Subquery(run_of_message)):
            resolved = unresolved.model.objects.for_app(app).filter(message_id__in=message_ids, run_id__isnull=False)
            rated[app] = set(resolved.values_list("run_id", flat=True))
    return rated


def refresh_touched_threads(events: Sequence[EventIn], new: Sequence[EventIn]) -> None:
    """Recompute the aggregates of every thread that these runs, or the `new` messages or feedback, touch.

    A run touches the threads of messages linked to it or to any of its ancestors: a message's
    totals are its run's whole subtree, which a late descendant (or a late parent linking stored
    runs under it) changes."""
    new_by_app = by_app(new)
    for app, app_events in by_app(events).items():
        app_new = new_by_app.get(app, [])
        feedback = [e for e in app_new if e.kind == "feedback"]
        wanted = {
            "run_id__in": with_ancestors(app, {e.run_id for e in app_events if e.kind == "run"})
            | {e.run_id for e in feedback if e.run_id},
            "dedup_key__in": {e.dedup_key for e in app_new if e.kind == "chat"},
            "message_id__in": {e.message_id for e in feedback if e.message_id},
        }
        # A UNION of one lookup per index: ORed, the planner scanned the whole table below ~100,000 messages.
        messages = ThreadMessage.objects.for_app(app).values_list("thread_id", flat=True)
        lookups = [messages.filter(**{name: ids}) for name, ids in wanted.items() if ids]
        if lookups:
            refresh_threads(set(lookups[0].union(*lookups[1:])))


def refresh_threads_with_runs(*, app=None, batch: int = 1000) -> int:
    """Refresh every thread whose messages link runs (of `app`, or of every app); returns how many.

    After a cost recalculation: any repriced run may sit anywhere in the trace of a linked
    run, and finding those ancestors for millions of runs costs more than refreshing the
    threads, which are far fewer.
    """
    messages = ThreadMessage.objects.filter(run_id__isnull=False)
    if app is not None:
        messages = messages.for_app(app)
    threads = sorted(set(messages.values_list("thread_id", flat=True).distinct()))
    for start in range(0, len(threads), batch):
        refresh_threads(set(threads[start : start + batch]))
    return len(threads)


def message_is_rated() -> Q:
    """For a ThreadMessage row: some feedback names its message id, or its run.

    Two EXISTS, each probing its own partial index (feedback_app_message, feedback_app_run). One
    EXISTS with the OR inside made PostgreSQL join every message of the app to the app's feedback:
    61 s for 200 threads at 81,000 messages and 13,700 feedback rows (bench/soak.py found it).
    """
    feedback = Feedback.objects.filter(app=OuterRef("app"))
    return Q(Exists(feedback.filter(message_id=OuterRef("message_id")))) | Q(
        Exists(feedback.filter(run_id=OuterRef("run_id")))
    )


def refresh_threads(thread_pks: set[int]) -> None:
    """Recompute message count, span, preview, tokens, cost and has_feedback of these threads.

    The threads' rows are locked first (in id order, so two refreshes never wait on each other in
    a circle), then read: a refresh that waited for another transaction's refresh of the same
    thread reads what that one committed instead of overwriting it with an older view (READ
    COMMITTED gives each statement a fresh snapshot). SQLite has one writer at a time anyway.
    """
    if not thread_pks:
        return
    with transaction.atomic(savepoint=False):
        locked = Thread.objects.filter(pk__in=thread_pks).order_by("pk").select_for_update()
        list(locked.values_list("pk", flat=True))
        _refresh_locked_threads(thread_pks)


def _refresh_locked_threads(thread_pks: set[int]) -> None:
    messages = ThreadMessage.objects.filter(thread=OuterRef("pk"))
    aggregates = Thread.objects.filter(pk__in=thread_pks).annotate(
        n=Count("messages"),
        first=Min("messages__timestamp"),
        last=Max("messages__timestamp"),
        last_preview=Subquery(messages.order_by("-timestamp", "-id").values("preview")[:1]),
        rated=Exists(messages.filter(message_is_rated())),
    )
    totals = thread_usage(thread_pks)
    rows = [
        (pk, n, preview or "", rated, first or started_at, last or ended_at, *totals.get(pk, (0, Decimal(0))))
        for pk, n, preview, rated, first, last, started_at, ended_at in aggregates.values_list(
            "pk", "n", "last_preview", "rated", "first", "last", "started_at", "ended_at"
        )
    ]
    fields = ["message_count", "preview", "has_feedback", "started_at", "ended_at", "total_tokens", "total_cost"]
    update_rows(Thread, fields, rows)


def thread_usage(thread_pks: set[int]) -> dict[int, tuple[int, Decimal]]:
    """Tokens and cost per thread: every run linked by its messages, with the run's whole subtree,
    each run counted once; plus the messages' own token fields where they link no known run."""
    run_table, message_table, cost_table = Run._meta.db_table, ThreadMessage._meta.db_table, RunCost._meta.db_table
    ids = ", ".join(["%s"] * len(thread_pks))
    seed = f"""
        SELECT m.thread_id, m.app_id, m.run_id, r.parent_run_id FROM {message_table} m
        JOIN {run_table} r ON r.app_id = m.app_id AND r.run_id = m.run_id WHERE m.thread_id IN ({ids})
    """  # noqa: S608 - table names and placeholders only
    linked = f"""
        {run_tree("linked", seed, carry=["thread_id"])}
        SELECT l.thread_id, COALESCE(SUM(r.total_tokens), 0), COALESCE(SUM(c.cost), 0)
        FROM linked l JOIN {run_table} r ON r.app_id = l.app_id AND r.run_id = l.run_id
        LEFT JOIN {cost_table} c ON c.run_pk = r.id
        GROUP BY l.thread_id
    """  # noqa: S608 - table names and placeholders only
    own = f"""
        SELECT m.thread_id, COALESCE(SUM(m.total_tokens), 0), COALESCE(SUM(m.cost), 0) FROM {message_table} m
        WHERE m.thread_id IN ({ids}) AND NOT EXISTS (
            SELECT 1 FROM {run_table} r WHERE r.app_id = m.app_id AND r.run_id = m.run_id
        )
        GROUP BY m.thread_id
    """  # noqa: S608
    totals: dict[int, tuple[int, Decimal]] = {}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and not connection.get_autocommit():
            # The recursive step's row estimate passes jit_above_cost: compiling took ~29 ms of a
            # query that runs in ~6 (docs/PERFORMANCE.md, "OTLP ingestion"). For this transaction.
            cursor.execute("SET LOCAL jit = off")
        for sql in (linked, own):
            cursor.execute(sql, list(thread_pks))
            for thread_pk, tokens, cost in cursor.fetchall():
                before = totals.get(thread_pk, (0, Decimal(0)))
                totals[thread_pk] = (before[0] + int(tokens), before[1] + Decimal(str(cost)))
    return totals


# --- retention (tracing.retention, docs/RETENTION.md) ---------------------------------------------

# Conversations per transaction of the purge: it holds their advisory locks and those of the runs
# their messages link (PostgreSQL's lock table is shared by every transaction: keep it small).
THREADS_PER_BATCH = 200


def purge_expired_messages(app, cutoff, *, dry_run: bool = False, batch_size: int = 5000, tally) -> None:
    """Delete the app's messages older than `cutoff` that no saved trace protects, with their feedback;
    delete the threads left without messages and refresh the aggregates of the others.

    A message is protected when its run is in the trace of a saved run (tracing.retention.
    protected_run_ids): it stays, and so does its thread. Threads are walked by their last
    activity (the `thread_app_activity` index) from the oldest, THREADS_PER_BATCH (at most
    `batch_size`) per transaction; a conversation that an ingestion batch is writing is left for
    the next purge (`_conversations_being_written`). Counts go to `tally`.
    """
    size = max(1, min(THREADS_PER_BATCH, batch_size))

    def step(cursor):
        threads = Thread.objects.for_app(app).filter(started_at__lt=cutoff)
        if cursor is not None:
            threads = threads.filter(ended_at__gte=cursor[0]).exclude(ended_at=cursor[0], pk__lte=cursor[1])
        rows = list(
            threads.order_by("ended_at", "pk").values_list(
                "pk", "ended_at", "thread_id", "agent", "user_id", "user_email"
            )[:size]
        )
        if not rows:
            return {}, None
        pks = {row[0] for row in rows}
        if not dry_run:
            pks -= _conversations_being_written(app, rows)
        return _purge_messages_of(app, cutoff, pks, dry_run=dry_run), (rows[-1][1], rows[-1][0])

    run_batches(app, step, dry_run=dry_run, tally=tally)


def _conversations_being_written(app, rows) -> set[int]:
    """Lock the threads of `rows` for this transaction as ingestion would; the pks of those it holds.

    An ingestion batch refreshes a thread when it adds a message (holding the conversation's lock)
    and when it writes a run that a message of the thread links (holding only that run's lock):
    both are taken here, without waiting, so that no refresh computed before the purge's
    deletions is written after them. The threads whose locks another transaction holds are left.
    """
    names = {pk: {_conversation_lock_name(app, thread_id, agent, user_id or user_email)}
             for pk, _, thread_id, agent, user_id, user_email in rows}  # fmt: skip
    linked = ThreadMessage.objects.filter(thread__in=names, run_id__isnull=False).values_list("thread_id", "run_id")
    for pk, run_id in linked.distinct():
        names[pk].add(f"run:{app.pk}:{run_id}")  # the name tracing.services.run_lock_names gives it
    held = try_advisory_lock(set().union(*names.values()))
    return {pk for pk, wanted in names.items() if wanted & held}


def _conversation_lock_name(app, thread_id: str | None, agent: str | None, user: str | None) -> str:
    """The advisory lock name that `chat_lock_names` gives an ingestion batch adding to this conversation."""
    return f"thread:{app.pk}:{thread_id}" if thread_id else f"window:{app.pk}:{agent}:{user}"


def _purge_messages_of(app, cutoff, thread_pks: set[int], *, dry_run: bool) -> dict[str, int]:
    if not thread_pks:
        return {}
    messages = list(
        ThreadMessage.objects.filter(thread__in=thread_pks, timestamp__lt=cutoff).values_list(
            "pk", "thread_id", "run_id", "message_id"
        )
    )
    protected = protected_run_ids(app, {run_id for _, _, run_id, _ in messages})
    doomed = [(pk, thread, message_id) for pk, thread, run_id, message_id in messages if run_id not in protected]
    if not doomed:
        return {}
    doomed_pks = [pk for pk, _, _ in doomed]
    touched = {thread for _, thread, _ in doomed}
    # Feedback on a doomed message goes with it, unless it also rates a run that stays (it goes with
    # that run) or another message, kept, has the same message id.
    feedback = (
        Feedback.objects.for_app(app)
        .filter(message_id__in={message_id for _, _, message_id in doomed if message_id})
        .filter(
            Q(run_id__isnull=True) | ~Exists(Run.objects.filter(app=app, run_id=OuterRef("run_id"))),
            ~Exists(
                ThreadMessage.objects.filter(app=app, message_id=OuterRef("message_id")).exclude(pk__in=doomed_pks)
            ),
        )
    )
    counts = {"messages": len(doomed)}
    if dry_run:
        counts["feedback"] = feedback.count()
        left = dict(
            ThreadMessage.objects.filter(thread__in=touched).exclude(pk__in=doomed_pks)
            .values("thread").annotate(n=Count("pk")).values_list("thread", "n")
        )  # fmt: skip
        counts["threads_deleted"] = len(touched - left.keys())
        counts["threads_refreshed"] = len(touched & left.keys())
        return counts
    counts["feedback"] = feedback.delete()[0]  # one DELETE each: nothing refers to feedback or messages
    ThreadMessage.objects.filter(pk__in=doomed_pks).delete()
    gone = _delete_empty_threads(touched)
    refresh_threads(touched - gone)
    counts["threads_deleted"], counts["threads_refreshed"] = len(gone), len(touched - gone)
    return counts


def _delete_empty_threads(thread_pks: set[int]) -> set[int]:
    """Delete those of these threads that have no message left (one statement); their pks."""
    table, messages = connection.ops.quote_name(Thread._meta.db_table), ThreadMessage._meta.db_table
    ids = ", ".join(["%s"] * len(thread_pks))
    sql = (
        f"DELETE FROM {table} WHERE id IN ({ids}) "  # noqa: S608 - table names and placeholders only
        f"AND NOT EXISTS (SELECT 1 FROM {messages} m WHERE m.thread_id = {table}.id) RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, list(thread_pks))
        return {row[0] for row in cursor.fetchall()}


def refresh_threads_of_purged_runs(app, run_ids: set[str], *, cutoff, dry_run: bool = False) -> dict[str, int]:
    """After the retention purge deleted these runs: refresh the threads whose messages linked them.

    Their expired messages are gone already (purge_expired_messages runs first); what is left links
    the runs from a message younger than the cutoff, whose thread's totals counted the run's tokens.
    In the purge's transaction, holding the conversations' advisory locks (as ingestion does); a
    conversation an ingestion batch holds is left to that batch, which refreshes it once the purge
    has committed (it may be waiting for a run the purge holds: waiting for it would deadlock).
    """
    linked = ThreadMessage.objects.for_app(app).filter(run_id__in=run_ids)
    if dry_run:  # the expired messages are still there: count the threads the refresh would reach
        linked = linked.filter(timestamp__gte=cutoff)
    threads = list(
        Thread.objects.filter(pk__in=set(linked.values_list("thread_id", flat=True))).values_list(
            "pk", "thread_id", "agent", "user_id", "user_email"
        )
    )
    if threads and not dry_run:
        names = {pk: _conversation_lock_name(app, thread_id, agent, user_id or user_email)
                 for pk, thread_id, agent, user_id, user_email in threads}  # fmt: skip
        held = try_advisory_lock(names.values())
        threads = [row for row in threads if names[row[0]] not in held]
        refresh_threads({pk for pk, *_ in threads})
    return {"threads_refreshed": len(threads)} if threads else {}
