"""Organizations, their members, their apps and their API keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from apps.tenancy import keycache

KEY_PREFIX = "obs_"
# Visible part of a key, stored in clear for lookup and display ("obs_3fa9c1d2").
DISPLAY_PREFIX_LENGTH = len(KEY_PREFIX) + 8
LAST_USED_RESOLUTION = timedelta(minutes=1)


def default_retention_days() -> int | None:
    return settings.OBSERVATORY_DEFAULT_RETENTION_DAYS or None


class OrganizationQuerySet(models.QuerySet):
    def legacy_ingestion(self, public_ids: set[str]) -> AppQuerySet:
        """Of these app ids (canonical UUID text), the apps that take events without a key (docs/INTEROP.md)."""
        return self.filter(public_id__in=public_ids, legacy_ingestion=True) if public_ids else self.none()

    def delete(self) -> tuple[int, dict[str, int]]:
        with keycache.forgetting(ApiKey.objects.filter(organization__in=self.values("pk"))):
            return super().delete()


class Organization(models.Model):
    """A tenant: owns apps and keys; users see only the organizations they belong to."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="organizations")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrganizationQuerySet.as_manager()

    def __str__(self) -> str:
        return self.name

    def delete(self, *args, **kwargs) -> tuple[int, dict[str, int]]:
        with keycache.forgetting(self.api_keys.all()):  # the cascade bypasses ApiKey.delete()
            return super().delete(*args, **kwargs)


class Membership(models.Model):
    """A user's role in an organization."""

    class Role(models.TextChoices):
        OWNER = "owner"
        MEMBER = "member"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class TenantQuerySet(models.QuerySet):
    """The queryset of every model that belongs to an app: reads are scoped with `for_app`, never by hand."""

    def for_app(self, app: App) -> TenantQuerySet:
        return self.filter(app=app)

    def for_apps(self, apps) -> TenantQuerySet:
        return self.filter(app__in=apps)


class AppQuerySet(models.QuerySet):
    def for_user(self, user) -> AppQuerySet:
        if not user or not user.is_authenticated:
            return self.none()
        return self.filter(organization__memberships__user=user)

    def for_key(self, key: ApiKey) -> AppQuerySet:
        return self.filter(organization_id=key.organization_id)

    def restrict(self, *, user=None, key: ApiKey | None = None) -> AppQuerySet:
        """The apps a caller may reach: a key's organization, else the user's organizations."""
        if key is not None:
            return self.for_key(key)
        return self.for_user(user)

    def legacy_ingestion(self, public_ids: set[str]) -> AppQuerySet:
        """Of these app ids (canonical UUID text), the apps that take events without a key (docs/INTEROP.md)."""
        return self.filter(public_id__in=public_ids, legacy_ingestion=True) if public_ids else self.none()

    def delete(self) -> tuple[int, dict[str, int]]:
        with keycache.forgetting(ApiKey.objects.filter(app__in=self.values("pk"))):
            return super().delete()


class App(models.Model):
    """An instrumented application (the SDK's "project"); runs and threads belong to one app."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="apps")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100)
    retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        default=default_retention_days,
        help_text="Runs older than this many days are deleted (saved runs are kept). Empty: keep forever.",
    )
    legacy_ingestion = models.BooleanField(
        "legacy ingestion by app id",
        default=False,
        help_text=(
            "Accept events without an API key when they name this app's id, as the LLMonitor SDK sends them. "
            "The app id is not a secret: anyone who knows it can report to this app."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AppQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "slug"], name="app_slug_unique_in_org")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if not self.slug:
            self.slug = slugify(self.name)[:100] or "app"
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs) -> tuple[int, dict[str, int]]:
        with keycache.forgetting(self.api_keys.all()):  # the cascade bypasses ApiKey.delete()
            return super().delete(*args, **kwargs)


def hash_key(raw_key: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is enough: there is nothing to
    # brute-force, and a slow KDF would put hundreds of ms on every ingestion request.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True)

    def for_raw_key(self, raw_key: str) -> ApiKey | None:
        """The active key matching `raw_key`, compared in constant time, or None (see also `cached_key`)."""
        if not raw_key.startswith(KEY_PREFIX) or len(raw_key) <= DISPLAY_PREFIX_LENGTH:
            return None
        candidate = (
            self.active().select_related("organization", "app").filter(prefix=raw_key[:DISPLAY_PREFIX_LENGTH]).first()
        )
        if candidate is None or not hmac.compare_digest(candidate.key_hash, hash_key(raw_key)):
            return None
        return candidate

    def legacy_ingestion(self, public_ids: set[str]) -> AppQuerySet:
        """Of these app ids (canonical UUID text), the apps that take events without a key (docs/INTEROP.md)."""
        return self.filter(public_id__in=public_ids, legacy_ingestion=True) if public_ids else self.none()

    def delete(self) -> tuple[int, dict[str, int]]:
        with keycache.forgetting(self):
            return super().delete()


class ApiKey(models.Model):
    """A secret that lets a client report events and read its organization's data.

    Only the SHA-256 of the key and its short public prefix are stored; the full key is
    returned once by `ApiKey.issue` and never again. Saving, revoking or deleting a key
    drops its cached lookup (`keycache`), so a queryset `update()` must not change a
    key's validity: revoke keys with `revoke()`.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="api_keys", help_text="The default app.")
    name = models.CharField(max_length=200, blank=True)
    prefix = models.CharField(max_length=DISPLAY_PREFIX_LENGTH, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or self.app})"

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        keycache.forget([self.key_hash])

    def delete(self, *args, **kwargs) -> tuple[int, dict[str, int]]:
        result = super().delete(*args, **kwargs)
        keycache.forget([self.key_hash])
        return result

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def issue(cls, *, app: App, name: str = "") -> tuple[ApiKey, str]:
        """Create a key for `app`; returns the row and the full key, which is not stored."""
        key = cls(app=app, name=name)
        raw_key = key.generate_secret()
        key.save()
        return key, raw_key

    def generate_secret(self) -> str:
        """Give this unsaved key a fresh secret; returns the full key, which is not stored."""
        raw_key = KEY_PREFIX + secrets.token_hex(4) + "_" + secrets.token_urlsafe(32)
        self.organization_id = self.app.organization_id
        self.prefix = raw_key[:DISPLAY_PREFIX_LENGTH]
        self.key_hash = hash_key(raw_key)
        return raw_key

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])

    def touch(self) -> bool:
        """Record use, writing at most once a minute per key whatever the request rate; True if it wrote."""
        now = timezone.now()
        if self.last_used_at and now - self.last_used_at < LAST_USED_RESOLUTION:
            return False
        stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        # The condition makes concurrent web processes agree: only one of them writes.
        ApiKey.objects.filter(stale, pk=self.pk).update(last_used_at=now)
        self.last_used_at = now
        return True
