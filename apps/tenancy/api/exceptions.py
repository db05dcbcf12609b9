"""One shape for every API error: `{"error": "field: message"}` (plus `fields` for validation)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler


def error_lines(detail, prefix: str = "") -> list[str]:
    """A DRF error detail as "field: message" lines (the API's `error`; the pages show the same)."""
    if isinstance(detail, dict):
        return [line for key, value in detail.items() for line in error_lines(value, f"{prefix}{key}: ")]
    if isinstance(detail, list):
        return [line for item in detail for line in error_lines(item, prefix)]
    return [f"{prefix}{detail}"]


def exception_handler(exc, context):
    # Django's own 404 and 403 in the same shape as DRF's (DRF converts them only for its response).
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        response.data = {"error": "; ".join(error_lines(exc.detail)), "fields": exc.detail}
    elif isinstance(exc, exceptions.APIException):
        response.data = {"error": "; ".join(error_lines(exc.detail))}
    return response
