"""What every page view shares: the current app's presets, page URLs, the empty state, number formats."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.http import QueryDict
from django.urls import reverse
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


def state_url(route: str, params: list[str], state: dict[str, list[str]], changes: dict) -> str:
    """The URL of page `route` for `state` with `changes` (None drops a parameter), `params` in order."""
    merged = {**state, **{name: [value] for name, value in changes.items() if value is not None}}
    for name in [name for name, value in changes.items() if value is None]:
        merged.pop(name, None)
    return f"{reverse(route)}?{urlencode([(name, value) for name in params for value in merged.get(name, [])])}"


def usd(value) -> str:
    """$1.50; below a dollar three significant digits ($0.120, $0.00213), never an exponent."""
    if value is None:
        return "—"
    value = Decimal(str(value))
    if not value:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:.{min(max(2, 2 - value.adjusted()), 10)}f}"  # costs are stored with 10 decimals


def seconds(value, unit: str = " s") -> str:
    """A duration: two decimals below 100 s, whole seconds above; "—" when unknown."""
    return "—" if value is None else f"{value:.2f}{unit}" if value < 100 else f"{value:,.0f}{unit}"
