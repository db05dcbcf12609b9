"""What every page view shares: the login requirement, the current app, the empty state."""

from __future__ import annotations

from datetime import timedelta

from django.http import QueryDict
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from apps.tenancy.models import ApiKey

# The time presets of LLM Calls and Threads: `range=24h` is `from=<now - 24 hours>`.
RANGES = {
    "1h": timedelta(hours=1), "3h": timedelta(hours=3), "24h": timedelta(hours=24),
    "7d": timedelta(days=7), "1m": timedelta(days=30), "6m": timedelta(days=180),
}  # fmt: skip


def with_range(data: QueryDict) -> QueryDict:
    """`range` as `from`, unless the request gives its own `from` or `to` (a custom range wins);
    an unknown preset is the ValidationError the page shows. Threads and Analytics read it so."""
    preset = data.pop("range", [""])[-1]
    if not preset or data.get("from") or data.get("to"):
        return data
    if preset not in RANGES:
        raise ValidationError({"range": [f"Must be one of {', '.join(RANGES)}."]})
    data["from"] = (timezone.now() - RANGES[preset]).isoformat()
    return data


def empty_state(request, app, title: str) -> dict:
    """Context of templates/web/_empty_app.html: the API URL and the prefix of one of the app's keys."""
    key = ApiKey.objects.active().filter(app=app).order_by("-created_at").first() if app else None
    return {
        "empty_title": title,
        "api_url": request.build_absolute_uri("/").rstrip("/"),
        "key_prefix": key.prefix if key else None,
    }
