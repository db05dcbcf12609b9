"""HTTP concerns of the whole site: a lost database answers 503, every response says how long it took."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse

logger = logging.getLogger(__name__)


def database_unavailable_response(request) -> HttpResponse:
    retry_after = str(settings.OBSERVATORY_RETRY_AFTER_S)
    if request.path.startswith("/api/"):
        response = JsonResponse({"error": "database unavailable, retry later"}, status=503)
    else:
        response = HttpResponse("Database unavailable, retry later.", status=503, content_type="text/plain")
    response["Retry-After"] = retry_after
    return response


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, (OperationalError, InterfaceError)):
            logger.exception("database unavailable while serving %s", request.path)
            return database_unavailable_response(request)
        return None


class ServerTimingMiddleware:
    """`Server-Timing: app;dur=<ms>`: the time spent in Django, which benchmarks read apart
    from the network and the client (and browsers show in their network panel)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        began = time.perf_counter()
        response = self.get_response(request)
        response["Server-Timing"] = f"app;dur={(time.perf_counter() - began) * 1000:.1f}"
        return response
