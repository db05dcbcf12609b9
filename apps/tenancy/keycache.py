"""Where the API caches key lookups (see `authentication.cached_key`), and how keys leave it.

Entries are named by the key's SHA-256 only, so the cache never holds a secret. The models
drop a key's entry themselves whenever the key is saved, revoked or deleted, also when it
goes with its app or organization (a cascade bypasses `ApiKey.delete()`): see `forget` and
`forgetting`. This module imports no model, so that both models.py and authentication.py
can use it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.core.cache import cache
from django.db.models import QuerySet
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


def entry(key_hash: str) -> str:
    return f"apikey:{key_hash}"


def forget(key_hashes: Iterable[str]) -> None:
    """Drop the cached lookups of these keys, so that the next request reads the database."""
    entries = [entry(key_hash) for key_hash in key_hashes]
    if not entries:
        return
    try:
        cache.delete_many(entries)
    except RedisError as exc:  # the entries expire on their own, within OBSERVATORY_API_KEY_CACHE_SECONDS
        logger.warning("could not drop %d API key(s) from the cache (%s)", len(entries), exc)


@contextmanager
def forgetting(keys: QuerySet) -> Iterator[None]:
    """Around a deletion: after the block, forget the keys that `keys` matched before it."""
    key_hashes = list(keys.values_list("key_hash", flat=True))
    yield
    forget(key_hashes)
