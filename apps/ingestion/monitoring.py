"""What operators watch (docs/OPERATIONS.md): `/healthz` for load balancers and people, `/metrics`
for Prometheus. Both read the database at each request and keep nothing in the process, so any
web process answers the same."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

from apps.ingestion.assembly import queue_stats


@require_GET
def healthz(request):
    """200 while the database answers (503 via the middleware otherwise), with the event queue's
    state: a queue that grows or ages means the workers are behind or down, not that this web
    process is unhealthy, so it never turns the answer into an error."""
    stats = queue_stats()
    queue = {"depth": stats.depth, "oldest_age_s": stats.oldest_age_s}
    return JsonResponse({"status": "ok", "assembly": settings.OBSERVATORY_ASSEMBLY, "queue": queue})


class QueueCollector:
    """The queue's gauges, read from the database at each scrape (no per-process counters to merge)."""

    def collect(self):
        stats, assembly = queue_stats(), settings.OBSERVATORY_ASSEMBLY
        yield InfoMetricFamily("observatory", "How this server applies events.", value={"assembly": assembly})
        yield GaugeMetricFamily("observatory_queue_depth", "Accepted events not applied yet.", value=stats.depth)
        yield GaugeMetricFamily(
            "observatory_queue_oldest_age_seconds",
            "How long the oldest queued event has waited; 0 when the queue is empty.",
            value=stats.oldest_age_s or 0.0,
        )


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(QueueCollector())


@require_GET
def metrics(request):
    """The Prometheus text format. With OBSERVATORY_METRICS_TOKEN set, only for `Authorization:
    Bearer <token>`; without, open (the figures are the server's, no tenant's data)."""
    token = settings.OBSERVATORY_METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), token.encode()):
            return JsonResponse({"error": "Authorization: Bearer <OBSERVATORY_METRICS_TOKEN> required"}, status=401)
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
