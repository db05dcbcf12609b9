"""Per-key request rate limit for /api/report, counted in the shared cache (Redis in production)."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

WINDOW_S = 60


class ApiKeyRateThrottle(BaseThrottle):
    """A fixed one-minute window per key: one atomic INCR per request, nothing kept in the process.

    DRF's SimpleRateThrottle keeps a list of timestamps per client, read and rewritten on
    every request — racy across web processes and costly at thousands of requests a minute.
    """

    def allow_request(self, request, view) -> bool:
        limit = settings.OBSERVATORY_RATE_LIMIT_PER_MINUTE
        if not limit or request.auth is None:
            return True
        window = int(time.time()) // WINDOW_S
        self.window_ends = (window + 1) * WINDOW_S
        cache_key = f"ratelimit:report:{request.auth.pk}:{window}"
        cache.add(cache_key, 0, timeout=WINDOW_S * 2)
        try:
            count = cache.incr(cache_key)
        except ValueError:  # evicted between add and incr
            cache.set(cache_key, 1, timeout=WINDOW_S * 2)
            count = 1
        return count <= limit

    def wait(self) -> float:
        return max(1.0, self.window_ends - time.time())
