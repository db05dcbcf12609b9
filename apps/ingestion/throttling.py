"""Per-key request rate limit for ingestion (per app for legacy ingestion), counted in the shared cache."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger(__name__)
WINDOW_S = 60


class ApiKeyRateThrottle(BaseThrottle):
    """A fixed one-minute window per key: one atomic INCR per request, nothing kept in the process.

    DRF's SimpleRateThrottle keeps a list of timestamps per client, read and rewritten on
    every request — racy across web processes and costly at thousands of requests a minute.
    """

    def allow_request(self, request, view) -> bool:
        if request.auth is None:
            return True
        allowed, self.window_ends = within_limit(f"report:{request.auth.pk}")
        return allowed

    def wait(self) -> float:
        return max(1.0, self.window_ends - time.time())


def within_limit(identity: str) -> tuple[bool, int]:
    """(whether one more request of `identity` fits this minute's limit, when the minute ends)."""
    limit = settings.OBSERVATORY_RATE_LIMIT_PER_MINUTE
    window = int(time.time()) // WINDOW_S
    if not limit:
        return True, (window + 1) * WINDOW_S
    cache_key = f"ratelimit:{identity}:{window}"
    try:
        cache.add(cache_key, 0, timeout=WINDOW_S * 2)
        try:
            count = cache.incr(cache_key)
        except ValueError:  # evicted between add and incr
            cache.set(cache_key, 1, timeout=WINDOW_S * 2)
            count = 1
    except RedisError as exc:  # a protection, not a reason to refuse events: without Redis, no limit
        logger.warning("rate limit unavailable (%s); request allowed", exc)
        return True, (window + 1) * WINDOW_S
    return count <= limit, (window + 1) * WINDOW_S
