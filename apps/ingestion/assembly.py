"""Applying queued events in batches (OBSERVATORY_ASSEMBLY=worker).

/api/report stores and queues events (PendingEvent) and answers at once; workers take the
oldest queued events, a batch at a time, and apply them with the same `apply()` as inline
ingestion. Claiming deletes the queue rows inside the batch's transaction: if a worker
dies, the transaction rolls back and the events are claimed again; if it commits, they
never are. Concurrent workers skip each other's claimed rows (PostgreSQL SKIP LOCKED),
and also the events of a run or conversation another worker is applying (its advisory
lock is taken): waiting for that lock would make the workers take turns batch by batch,
since consecutive batches share the traces at their boundary. Skipped events stay queued
for the next claim (at worst the beat's, every 10 s); the run merge does not depend on order.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from apps.ingestion.services import apply, lock_names
from apps.ingestion.validation import EventInvalid, validate_event
from apps.tenancy.models import App
from apps.tracing.events import EventIn
from apps.tracing.models import Event, PendingEvent
from apps.tracing.services import find_parent_cycles
from apps.tracing.sql import try_advisory_lock

logger = logging.getLogger(__name__)


def assemble_pending(*, limit: int | None = None) -> int:
    """Apply queued events, oldest first, `limit` per transaction, until none are left; returns how many."""
    limit = limit or settings.OBSERVATORY_ASSEMBLY_BATCH
    done = 0
    while True:
        with transaction.atomic():
            claimed, events = claim(limit)
            if not claimed:
                return done
            _drop_cyclic_parents(events)
            apply(events, {e.dedup_key for e in events})
        done += claimed


def claim(limit: int) -> tuple[int, list[EventIn]]:
    """Take up to `limit` queued events and lock what they write; returns (how many, the valid ones).

    Their queue rows are deleted with the transaction's commit. Events whose run or
    conversation another transaction holds are left queued (see the module's docstring).
    """
    table = PendingEvent._meta.db_table
    skip_locked = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT event_id FROM {table} ORDER BY event_id LIMIT %s{skip_locked}",  # noqa: S608 - table name only
            [limit],
        )
        ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return 0, []
    rows = list(
        Event.objects.filter(pk__in=ids)
        .order_by("pk")
        .annotate(text=Cast("payload", TextField()))  # parsed below by orjson, not the JSONField's json
        .values_list("pk", "app_id", "dedup_key", "received_at", "text")
    )
    apps = App.objects.in_bulk({app_id for _, app_id, _, _, _ in rows})
    events, taken = [], []
    for pk, app_id, dedup_key, received_at, text in rows:
        try:
            event = validate_event(_load(text), len(events), received_at)
        except EventInvalid as exc:  # accepted by an older version of the rules: keep it stored, apply nothing
            logger.warning("queued event %s no longer validates (%s); skipped", pk, exc)
            taken.append(pk)
            continue
        event.app, event.dedup_key, event.index = apps[app_id], dedup_key, pk  # unique: cycles are keyed by index
        events.append(event)
    names = {event.index: lock_names([event]) for event in events}
    busy = try_advisory_lock(set().union(*names.values()))
    events = [e for e in events if not names[e.index] & busy]
    taken += [e.index for e in events]
    PendingEvent.objects.filter(pk__in=taken).delete()
    return len(taken), events


def _load(text: str):
    """A stored payload: orjson (a quarter of the standard parser's time, which was 6 % of a worker's),
    else the standard parser, for what orjson refuses and the request's lenient parsing let in."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _drop_cyclic_parents(events: list[EventIn]) -> None:
    """A parent that became a cycle only because of events queued after it was accepted is ignored."""
    cyclic = find_parent_cycles(events)
    for event in events:
        if event.index in cyclic:
            logger.warning("event of run %r: %s; its parent is ignored", event.run_id, cyclic[event.index])
            event.parent_run_id = None


def pending_count() -> int:
    return PendingEvent.objects.count()


@dataclass(frozen=True, slots=True)
class QueueStats:
    """The queue of accepted events not applied yet: how many, and how long the oldest has waited."""

    depth: int
    oldest_age_s: float | None  # None: the queue is empty


def queue_stats() -> QueueStats:
    """Two queries: the count, and the receipt time of the event workers claim first (the lowest id)."""
    oldest = PendingEvent.objects.order_by("event_id").values_list("event__received_at", flat=True).first()
    age = None if oldest is None else max(0.0, (timezone.now() - oldest).total_seconds())
    return QueueStats(depth=pending_count(), oldest_age_s=age)
