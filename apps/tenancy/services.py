"""Writes that span tenancy models."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from apps.tenancy.models import ApiKey, App, Membership, Organization


class AppLookupError(Exception):
    """The app named by a command or form does not exist or is ambiguous."""


@transaction.atomic
def get_or_create_app(*, app_slug: str, org_slug: str | None = None, create: bool = False) -> App:
    """Find an app by slug (within `org_slug` when given); with `create`, make it and its organization."""
    apps = App.objects.select_related("organization").filter(slug=app_slug)
    if org_slug:
        apps = apps.filter(organization__slug=org_slug)
    found = list(apps[:2])
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise AppLookupError(f"app '{app_slug}' exists in several organizations; pass --org")
    if not create:
        where = f" in organization '{org_slug}'" if org_slug else ""
        raise AppLookupError(f"no app '{app_slug}'{where}; pass --create to make it")
    org_slug = org_slug or "default"
    organization, _ = Organization.objects.get_or_create(slug=org_slug, defaults={"name": org_slug.title()})
    return App.objects.create(organization=organization, name=app_slug.replace("-", " ").title(), slug=app_slug)


def issue_api_key(*, app: App, name: str = "") -> tuple[ApiKey, str]:
    return ApiKey.issue(app=app, name=name)


@transaction.atomic
def add_member(
    *,
    organization: Organization,
    username: str,
    role: str = Membership.Role.MEMBER,
    email: str = "",
    password: str | None = None,
):
    """Create the user when missing and make them a member (or update their role)."""
    user, created = get_user_model().objects.get_or_create(username=username, defaults={"email": email})
    if created:
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
    Membership.objects.update_or_create(organization=organization, user=user, defaults={"role": role})
    return user, created


class MembershipError(Exception):
    """A member cannot be added as asked (unknown user, already a member); the message says why."""


@transaction.atomic
def add_existing_member(*, organization: Organization, username: str, role: str = Membership.Role.MEMBER):
    """Make an existing user a member of `organization` (the Settings page: it never creates users).

    Unknown usernames and users who are already members are refused, so that a typo cannot
    create an account and an owner cannot change someone's role by accident.
    """
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise MembershipError(
            f"There is no user “{username}”. Only existing accounts can be added: create it first, in the "
            f"admin or with `manage.py add_member {organization.slug} <username> --password …` (which adds it too)."
        )
    membership, created = Membership.objects.get_or_create(
        organization=organization, user=user, defaults={"role": role}
    )
    if not created:
        raise MembershipError(f"{user.username} is already a member of {organization.name} ({membership.role}).")
    return membership
