"""The ingestion pipeline: validate -> resolve apps -> de-duplicate -> store -> apply, one batch atomically."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.ingestion.validation import EventInvalid, check_payload, validate_event
from apps.tenancy.models import App
from apps.threads.services import (
    apply_chat_events,
    chat_lock_names,
    link_message_feedback,
    refresh_touched_threads,
)
from apps.tracing.events import EventIn, of_kind
from apps.tracing.models import QueuedBatch
from apps.tracing.services import (
    apply_feedback_events,
    apply_run_events,
    find_parent_cycles,
    mark_run_feedback,
    run_lock_names,
    store_events,
)
from apps.tracing.sql import advisory_lock


@dataclass
class BatchResult:
    accepted: int = 0
    errors: dict[int, str] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return len(self.errors)

    def as_json(self) -> dict:
        errors = [{"index": index, "error": message} for index, message in sorted(self.errors.items())]
        return {"accepted": self.accepted, "rejected": self.rejected, "errors": errors}


def ingest_batch(
    *, app: App, raw_events: list, lenient: bool = False, received_at: datetime | None = None
) -> BatchResult:
    """Store a batch of reported events and apply their effects; invalid events are reported, not stored.

    `app` is the default app (the API key's); events may name another app of its organization.
    Exactly-once: each event has a de-duplication key, stored under a unique constraint, and
    every effect is either an idempotent merge (runs) or applied only for events stored for
    the first time (thread messages, feedback). The whole batch is one transaction.

    With OBSERVATORY_ASSEMBLY=worker neither is done here: the valid events are queued, as one
    row, for the workers, which store and apply them (apps.ingestion.assembly).
    """
    received_at = received_at or timezone.now()
    result = BatchResult()
    events = _validate(raw_events, lenient, received_at, result.errors)
    events = _resolve_apps(events, app, result.errors)
    if settings.OBSERVATORY_ASSEMBLY == "inline":
        with transaction.atomic():
            lock(events)
            result.errors.update(find_parent_cycles(events))
            events = drop_repeats([e for e in events if e.index not in result.errors])
            apply(events, set(store_events(events)))
    else:
        # Queued events meet the stored runs only in the workers, which drop a cyclic parent
        # there (assembly._drop_cyclic_parents); here a cycle within the batch is refused.
        result.errors.update(find_parent_cycles(events, stored=False))
        queue(drop_repeats([e for e in events if e.index not in result.errors]))  # one INSERT: atomic alone
    result.accepted = len(raw_events) - result.rejected
    return result


def lock(events: list[EventIn]) -> None:
    """Lock what these events will write, so that concurrent batches take turns on it."""
    advisory_lock(lock_names(events))


def lock_names(events: list[EventIn]) -> set[str]:
    """What these events write: their runs, and the conversations they add messages to."""
    return run_lock_names(events) | chat_lock_names(events)


def apply(events: list[EventIn], new_keys: set[str]) -> None:
    """The effects of stored events, in the caller's transaction; each step hands the next what it needs.

    Merges (runs) take every event: redelivery cannot change them. Effects that are not
    idempotent (a thread message, a feedback) take only the events stored for the first
    time, those whose dedup key is in `new_keys`.
    """
    new = [e for e in events if e.dedup_key in new_keys]
    feedback = of_kind(new, "feedback")
    created = apply_run_events(of_kind(events, "run"), of_kind(new, "saved"))  # first: messages read run costs
    apply_chat_events(of_kind(new, "chat"))
    apply_feedback_events(feedback)
    rated = link_message_feedback(new)  # feedback on a message rates the message's run too
    refresh_touched_threads(events, new)  # thread aggregates after everything above
    mark_run_feedback(feedback, created, rated)  # new runs may have had feedback waiting


def queue(events: list[EventIn], *, stored: bool = False, wake: bool = True) -> None:
    """Queue events for the assembly workers, one row per receipt time, and (with `wake`) wake one
    once this transaction commits. The workers store them (de-duplicated) and apply them; `stored`:
    they are in tracing_event already (see QueuedBatch)."""
    from apps.ingestion.tasks import schedule_assembly

    batches: dict = {}
    for event in events:
        batches.setdefault(event.received_at, []).append(event)
    for received_at, batch in batches.items():
        QueuedBatch.objects.create(
            received_at=received_at,
            size=len(batch),
            run_keys="\n".join(dict.fromkeys(f"{e.app.id}:{e.run_id}" for e in batch if e.run_id)),
            body=orjson.dumps([[e.app.id, e.dedup_key, e.raw] for e in batch]),
            stored=stored,
        )
    if batches and wake:
        transaction.on_commit(schedule_assembly)


def _validate(raw_events: list, lenient: bool, now: datetime, errors: dict[int, str]) -> list[EventIn]:
    events = []
    max_bytes, max_depth = settings.OBSERVATORY_MAX_EVENT_BYTES, settings.OBSERVATORY_MAX_JSON_DEPTH
    for index, raw in enumerate(raw_events):
        try:
            check_payload(raw, max_bytes=max_bytes, max_depth=max_depth, strict_walk=lenient)
            event = validate_event(raw, index, now)
            event.received_at = now
            events.append(event)
        except EventInvalid as exc:
            errors[index] = str(exc)
    return events


def _resolve_apps(events: list[EventIn], default_app: App, errors: dict[int, str]) -> list[EventIn]:
    """App of each event: its app_id (top level or metadata), else the default; never another organization's."""
    wanted = {e.app_ref for e in events if e.app_ref and e.app_ref != str(default_app.public_id)}
    apps = {str(default_app.public_id): default_app}
    if wanted:
        same_org = App.objects.filter(organization_id=default_app.organization_id, public_id__in=_uuids(wanted))
        apps.update((str(app.public_id), app) for app in same_org)
    resolved = []
    for event in events:
        app = apps.get(_canonical_uuid(event.app_ref)) if event.app_ref else default_app
        if app is None:
            errors[event.index] = f"app_id: no app {event.app_ref!r} in this key's organization"
            continue
        event.app = app
        event.dedup_key = dedup_key(event)
        resolved.append(event)
    return resolved


def _canonical_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _uuids(values: set[str]) -> list[str]:
    return [u for u in map(_canonical_uuid, values) if u]


def dedup_key(event: EventIn) -> str:
    """The client's event id when given, else a hash of the event's identifying fields (SPEC §2)."""
    if event.client_id is not None:
        parts = ["id", event.client_id]
    else:
        parts = ["fields", event.run_id, event.name]
        # Without a client timestamp the server's clock would make every redelivery look new,
        # so the event's whole content identifies it instead.
        parts.append(event.raw.get("timestamp") if event.timestamp_given else _content(event.raw))
        if event.kind == "chat":
            parts += [event.role, _content(event.content), event.message_id]
    return hashlib.sha256(orjson.dumps([event.app.pk, *parts])).hexdigest()


def _content(value) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def drop_repeats(events: list[EventIn]) -> list[EventIn]:
    """Drop repeats of an event within the batch (they count as accepted, like any duplicate)."""
    seen: set[str] = set()
    unique = []
    for event in events:
        if event.dedup_key not in seen:
            seen.add(event.dedup_key)
            unique.append(event)
    return unique
