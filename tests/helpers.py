"""Small helpers shared by tests: report events through the real API, read back what it built, and
run work at once on other database connections."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from django.db import connections, transaction

from apps.tracing.models import Run

T = TypeVar("T")


def report(client, *events, expect: int | None = 200, **extra):
    # The standard encoder, so that tests can send what orjson would refuse (integers over 64 bits).
    body = json.dumps({"events": list(events)})
    response = client.post("/api/report", body, content_type="application/json", **extra)
    if expect is not None:
        assert response.status_code == expect, response.content
    return response


def post_raw(client, body: bytes, *, gzipped: bool = False, **extra):
    if gzipped:
        extra["HTTP_CONTENT_ENCODING"] = "gzip"
        body = gzip.compress(body)
    return client.post("/api/report", body, content_type="application/json", **extra)


def run(run_id: str, app=None) -> Run:
    runs = Run.objects.with_cost().filter(run_id=run_id)
    return (runs.filter(app=app) if app is not None else runs).get()


def ingest(app, *events):
    """Write events through the real ingestion service (no HTTP), failing on any rejected event."""
    from apps.ingestion.services import ingest_batch

    result = ingest_batch(app=app, raw_events=list(events))
    assert not result.errors, result.errors
    return result


# --- concurrency: other connections, in threads (tests marked django_db(transaction=True)) ---------


def at_once(work: Callable[[], T], times: int) -> list[T]:
    """Run `work` in `times` threads released together, each on its own database connection;
    their results, once all are done (the first exception raised, if any)."""
    start, results, errors = threading.Barrier(times), [], []

    def thread() -> None:
        try:
            start.wait(5)
            results.append(work())
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=thread) for _ in range(times)]
    for each in threads:
        each.start()
    for each in threads:
        each.join()
    if errors:
        raise errors[0]
    return results


@contextmanager
def uncommitted_batch(app, *events, hold: float = 0.5) -> Iterator[Callable[[], None]]:
    """Ingest `events` in a transaction of another connection and keep it open.

    The `with` body runs once they are written; it calls the `release` it is given when it starts
    the work that must run into the open transaction, which commits `hold` seconds later. Leaving
    the block waits for that commit (and raises the batch's exception, if any).
    """
    written, released, errors = threading.Event(), threading.Event(), []

    def batch() -> None:
        try:
            with transaction.atomic():
                ingest(app, *events)
                written.set()
                released.wait(5)
                time.sleep(hold)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=batch)
    thread.start()
    try:
        assert written.wait(5), errors
        yield released.set
    finally:
        released.set()
        thread.join()
    if errors:
        raise errors[0]
