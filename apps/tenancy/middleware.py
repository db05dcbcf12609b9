"""Turns a lost database into a 503 with Retry-After instead of a 500."""

from __future__ import annotations

import logging

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
