"""`Authorization: Bearer <key>` authentication for the API."""

from __future__ import annotations

import base64
import binascii
import logging

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError
from rest_framework import authentication, exceptions

from apps.tenancy import keycache
from apps.tenancy.models import ApiKey, hash_key

logger = logging.getLogger(__name__)


def cached_key(raw_key: str) -> ApiKey | None:
    """The active key for `raw_key`, from the cache when OBSERVATORY_API_KEY_CACHE_SECONDS allows.

    Every API request starts here, and the lookup (one query and three model instances)
    was a sixth of an ingestion request's time. Entries are found by the key's SHA-256
    only, so the cache never holds a secret; saving, revoking or deleting a key drops its
    entry at once (the models call `keycache.forget`). Unknown keys are never cached.
    """
    if not settings.OBSERVATORY_API_KEY_CACHE_SECONDS:
        return ApiKey.objects.for_raw_key(raw_key)
    entry = keycache.entry(hash_key(raw_key))
    try:
        key = cache.get(entry)
    except RedisError as exc:  # the cache is a shortcut: without it, ask the database
        logger.warning("API key cache unavailable (%s); looking the key up in the database", exc)
        return ApiKey.objects.for_raw_key(raw_key)
    if key is None:
        key = ApiKey.objects.for_raw_key(raw_key)
        if key is not None:
            remember_key(key)
    return key


def remember_key(key: ApiKey) -> None:
    try:
        cache.set(keycache.entry(key.key_hash), key, settings.OBSERVATORY_API_KEY_CACHE_SECONDS)
    except RedisError as exc:
        logger.warning("API key cache unavailable (%s)", exc)


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
        return self.authenticate_key(raw_key)

    def authenticate_key(self, raw_key: str) -> tuple[KeyUser, ApiKey]:
        key = cached_key(raw_key)
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        if key.touch() and settings.OBSERVATORY_API_KEY_CACHE_SECONDS:
            remember_key(key)  # with its new last_used_at, so that the next minute writes nothing
        return KeyUser(key), key

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) with `WWW-Authenticate: Bearer` when no credentials are given.
        return self.keyword


class BasicKeyAuthentication(BearerKeyAuthentication):
    """Our key as the password of HTTP Basic (the user name is ignored), after Bearer in a view's list.

    For clients that can only send Basic: the Langfuse SDK sends its public and secret keys
    that way, so `LANGFUSE_SECRET_KEY=<our key>` is all it needs.
    """

    keyword = "Basic"

    def authenticate(self, request) -> tuple[KeyUser, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            _, _, password = base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise exceptions.AuthenticationFailed("Authorization: Basic credentials are not valid base64.") from None
        if not password:
            raise exceptions.AuthenticationFailed(
                "Authorization: Basic credentials have no password: send the key there."
            )
        return self.authenticate_key(password)
