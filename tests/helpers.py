"""Small helpers shared by tests: report events through the real API and read back what it built."""

from __future__ import annotations

import gzip
import json

from apps.tracing.models import Run


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
