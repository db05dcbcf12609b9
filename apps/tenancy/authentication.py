"""`Authorization: Bearer <key>` authentication for the API."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from apps.tenancy.models import ApiKey


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
        key = ApiKey.objects.for_raw_key(raw_key)
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        key.touch()
        return KeyUser(key), key

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) with `WWW-Authenticate: Bearer` when no credentials are given.
        return self.keyword
