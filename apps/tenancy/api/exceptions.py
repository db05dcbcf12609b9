"""One shape for every API error: `{"error": "field: message"}` (plus `fields` for validation)."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler


def _flatten(detail, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        return [line for key, value in detail.items() for line in _flatten(value, f"{prefix}{key}: ")]
    if isinstance(detail, list):
        return [line for item in detail for line in _flatten(item, prefix)]
    return [f"{prefix}{detail}"]


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        response.data = {"error": "; ".join(_flatten(exc.detail)), "fields": exc.detail}
    elif isinstance(exc, exceptions.APIException):
        response.data = {"error": "; ".join(_flatten(exc.detail))}
    return response
