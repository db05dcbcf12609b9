"""Applying queued events in batches (OBSERVATORY_ASSEMBLY=worker).

/api/report validates a batch, queues it as one row (QueuedBatch) and answers at once;
workers take the oldest rows, up to OBSERVATORY_ASSEMBLY_BATCH events a transaction, store
their events (de-duplicated exactly as inline ingestion does) and apply them with the same
`apply()`. The rows are deleted in that transaction: if a worker dies, it rolls back and
the rows are claimed again; if it commits, they never are. Concurrent workers skip each
other's claimed rows (PostgreSQL SKIP LOCKED), and also the events of a run or conversation
another worker is applying (its advisory lock is taken): waiting for that lock would make
the workers take turns batch by batch, since consecutive batches share the traces at their
boundary. Those events are queued again, as a new row, for the next claim (at worst the
beat's, every 10 s); the run merge does not depend on order.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import orjson
from django.conf import settings
from django.db import transaction
from django.db.models import Min, Sum
from django.utils import timezone

from apps.ingestion.services import apply, drop_repeats, lock_names, queue
from apps.ingestion.validation import EventInvalid, validate_event
from apps.tenancy.models import App
from apps.tracing.events import EventIn
from apps.tracing.models import Event, QueuedBatch
from apps.tracing.services import EVENT_COLUMNS, find_parent_cycles, store_events
from apps.tracing.sql import try_advisory_lock, upsert

logger = logging.getLogger(__name__)
TYPICAL_BATCH = 100  # events per queued row to expect before any is read (the SDK's batch size)


def assemble_pending(*, limit: int | None = None, seconds: float | None = None) -> int:
    """Apply queued events, oldest first, about `limit` per transaction, until none are left or
    (with `seconds`) that long has passed, the rest left for the next call; returns how many."""
    limit = limit or settings.OBSERVATORY_ASSEMBLY_BATCH
    deadline = None if seconds is None else time.monotonic() + seconds
    done = 0
    while True:
        with transaction.atomic():
            taken, events, new_keys = claim(limit)
            if not taken:
                return done
            _drop_cyclic_parents(events)
            apply(events, new_keys)
        done += taken
        if deadline is not None and time.monotonic() >= deadline:
            return done


def claim(limit: int) -> tuple[int, list[EventIn], set[str]]:
    """Take the oldest queued rows, up to `limit` events (at least one row), store their events
    and lock what they write; returns (how many events were taken, the valid ones, the dedup keys
    that take effect for the first time).

    The rows are deleted with the transaction's commit. Events whose run or conversation
    another transaction holds are queued again (see the module's docstring).
    """
    rows = _lock_rows(limit)
    if not rows:
        return 0, [], set()
    items = [(received_at, stored, item) for _, received_at, stored, body, _ in rows for item in orjson.loads(body)]
    apps = App.objects.in_bulk({app_pk for _, _, (app_pk, _, _) in items})
    events, unreadable, stored_keys = [], [], set()
    for received_at, stored, (app_pk, dedup_key, raw) in items:
        if app_pk not in apps:  # deleted since, with everything of its own
            continue
        try:
            event = validate_event(raw, len(events), received_at)
        except EventInvalid as exc:  # accepted by an older version of the rules: stored, nothing applied
            logger.warning("queued event %s no longer validates (%s); stored, not applied", dedup_key, exc)
            unreadable.append((app_pk, dedup_key, raw, received_at))
            continue
        event.app, event.dedup_key, event.received_at = apps[app_pk], dedup_key, received_at
        events.append(event)
        if stored:
            stored_keys.add(dedup_key)
    events = drop_repeats(events)
    names = {event.index: lock_names([event]) for event in events}
    busy = try_advisory_lock(set().union(*names.values()))
    waiting = [e for e in events if names[e.index] & busy]
    events = [e for e in events if not names[e.index] & busy]
    QueuedBatch.objects.filter(pk__in=[pk for pk, *_ in rows]).delete()
    # Not woken for: the worker applying their runs claims them next (woken, a worker would spin on them).
    queue([e for e in waiting if e.dedup_key not in stored_keys], wake=False)
    queue([e for e in waiting if e.dedup_key in stored_keys], stored=True, wake=False)
    _store_unreadable(unreadable)
    new_keys = set(store_events([e for e in events if e.dedup_key not in stored_keys])) | stored_keys
    return len(items) - len(waiting), events, new_keys  # repeats count as taken, as a request counts them accepted


def _lock_rows(limit: int) -> list[tuple]:
    """(pk, received_at, stored, body, size) of the oldest queued rows no other worker holds,
    about `limit` events' worth: one query, a second when the rows were smaller than expected."""
    rows: list[tuple] = []
    events, per_row = 0, TYPICAL_BATCH
    while events < limit:
        wanted = max(1, math.ceil((limit - events) / per_row))
        found = list(
            QueuedBatch.objects.select_for_update(skip_locked=True)  # skip_locked: PostgreSQL; SQLite ignores it
            .filter(pk__gt=rows[-1][0] if rows else 0)
            .order_by("pk")
            .values_list("pk", "received_at", "stored", "body", "size")[:wanted]
        )
        rows += found
        events += sum(row[4] for row in found)
        if len(found) < wanted:
            break
        per_row = max(1, events // len(rows))
    return rows


def _store_unreadable(items: list[tuple]) -> None:
    """Keep events that no longer validate as they were accepted (run_id and name as far as readable)."""
    rows = []
    for app_pk, dedup_key, raw, received_at in items:
        raw_dict = raw if isinstance(raw, dict) else {}
        run_id, name = raw_dict.get("run_id"), raw_dict.get("name")
        run_id = run_id[:128] if isinstance(run_id, str) else None
        rows.append((app_pk, run_id, str(name or "")[:100], received_at, received_at, dedup_key, raw))
    upsert(Event, EVENT_COLUMNS, rows, conflict=["app", "dedup_key"])


def _drop_cyclic_parents(events: list[EventIn]) -> None:
    """A parent that became a cycle only because of events queued after it was accepted is ignored."""
    cyclic = find_parent_cycles(events)
    for event in events:
        if event.index in cyclic:
            logger.warning("event of run %r: %s; its parent is ignored", event.run_id, cyclic[event.index])
            event.parent_run_id = None


def pending_count() -> int:
    """Accepted events not applied yet."""
    return queue_stats().depth


@dataclass(frozen=True, slots=True)
class QueueStats:
    """The queue of accepted events not applied yet: how many, and how long the oldest has waited."""

    depth: int
    oldest_age_s: float | None  # None: the queue is empty


def queue_stats() -> QueueStats:
    """One query over the queue's rows (one per request, their bodies stored apart)."""
    stats = QueuedBatch.objects.aggregate(depth=Sum("size"), oldest=Min("received_at"))
    oldest = stats["oldest"]
    age = None if oldest is None else max(0.0, (timezone.now() - oldest).total_seconds())
    return QueueStats(depth=stats["depth"] or 0, oldest_age_s=age)
