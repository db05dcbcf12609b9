"""`Authorization: Bearer <key>` authentication for the API."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from rest_framework import authentication, exceptions

from apps.tenancy.models import ApiKey, hash_key


def cached_key(raw_key: str) -> ApiKey | None:
    """The active key for `raw_key`, from the cache when OBSERVATORY_API_KEY_CACHE_SECONDS allows.

    Every API request starts here, and the lookup (one query and three model instances)
    was a sixth of an ingestion request's time. Entries are found by the key's SHA-256
    only, so the cache never holds a secret; saving, revoking or deleting a key drops its
    entry at once (`_forget_key`). Unknown keys are never cached.
    """
    seconds = settings.OBSERVATORY_API_KEY_CACHE_SECONDS
    if not seconds:
        return ApiKey.objects.for_raw_key(raw_key)
    entry = _cache_entry(hash_key(raw_key))
    key = cache.get(entry)
    if key is None:
        key = ApiKey.objects.for_raw_key(raw_key)
        if key is not None:
            cache.set(entry, key, seconds)
    return key


def _cache_entry(key_hash: str) -> str:
    return f"apikey:{key_hash}"


@receiver([post_save, post_delete], sender=ApiKey, dispatch_uid="forget-cached-api-key")
def _forget_key(sender, instance: ApiKey, **kwargs) -> None:
    cache.delete(_cache_entry(instance.key_hash))


class KeyUser:
    """The request.user of a key-authenticated request: authenticated, but no Django user."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    is_anonymous = False
    pk = id = None

    def __init__(self, key: ApiKey) -> None:
        self.key = key

    def __str__(self) -> str:
        return f"api-key:{self.key.prefix}"


class BearerKeyAuthentication(authentication.BaseAuthentication):
    """Sets request.auth to the ApiKey. A malformed, unknown or revoked key is a 401."""

    keyword = "Bearer"

    def authenticate(self, request) -> tuple[KeyUser, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw_key = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        raw_key = raw_key.strip()
        if not raw_key:
            raise exceptions.AuthenticationFailed("Authorization header has no key after 'Bearer'.")
        key = cached_key(raw_key)
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        if key.touch() and settings.OBSERVATORY_API_KEY_CACHE_SECONDS:
            cache.set(_cache_entry(key.key_hash), key, settings.OBSERVATORY_API_KEY_CACHE_SECONDS)
        return KeyUser(key), key

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) with `WWW-Authenticate: Bearer` when no credentials are given.
        return self.keyword
