"""The Settings page: the user's apps (owners edit name and retention), the API keys and the members
of the current app's organization (owners create and revoke keys, add members).

Every POST names its app or key by id; one outside the user's organizations is a 404 (never
confirmed to exist), one of an organization the user belongs to without owning it is a 403.
A new key is shown once, in the response to the POST that created it (never stored, not
even in the session, and sent with `Cache-Control: no-store`); reloading does not show it again.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.views.decorators.http import require_POST

from apps.tenancy.models import ApiKey, App, Membership
from apps.tenancy.scoping import remember_app
from apps.tenancy.services import MembershipError, add_existing_member, issue_api_key
from apps.web.forms import ApiKeyForm, AppSettingsForm, MemberForm
from apps.web.scoping import page_app, user_apps


@login_required
def settings_page(request):
    return _render(request)


@login_required
@require_POST
def edit_app(request, app_id: uuid.UUID):
    app = _owned(request, _user_app(request, str(app_id)))
    form = AppSettingsForm(request.POST, instance=app)
    if not form.is_valid():
        return _render(request, app_forms={app.pk: form}, status=400)
    form.save()
    messages.success(request, f"Saved {app.name}.")
    return redirect("settings")


@login_required
@require_POST
def create_key(request):
    app = _owned(request, _user_app(request, request.POST.get("app", "")))
    form = ApiKeyForm(request.POST, apps=_org_apps(request, app))
    if not form.is_valid():
        return _render(request, app=app, key_form=form, status=400)
    key, raw_key = issue_api_key(app=app, name=form.cleaned_data["name"])
    response = _render(request, app=app, new_key={"key": key, "raw": raw_key}, status=201)
    # The only response that ever holds the key: no cache, no back/forward copy.
    add_never_cache_headers(response)
    patch_cache_control(response, no_store=True, private=True)
    return response


@login_required
@require_POST
def revoke_key(request, pk: int):
    key = ApiKey.objects.filter(pk=pk, organization__memberships__user=request.user).select_related("app").first()
    if key is None:
        raise Http404("No such key.")
    if key.organization_id not in _owned_orgs(request):
        raise PermissionDenied("Only the organization's owners revoke keys.")
    key.revoke()  # drops the cached lookup too: the API refuses the key from the next request
    messages.success(request, f"Revoked {key.prefix}… ({key.name or key.app.name}). Clients using it now get 401.")
    return redirect(f"{reverse('settings')}?app={key.app.public_id}")


@login_required
@require_POST
def add_member(request):
    app = _owned(request, _user_app(request, request.POST.get("app", "")))
    form = MemberForm(request.POST)
    if form.is_valid():
        try:
            membership = add_existing_member(organization=app.organization, **form.cleaned_data)
        except MembershipError as exc:
            form.add_error("username", str(exc))
        else:
            messages.success(
                request, f"Added {membership.user.username} to {app.organization.name} as {membership.role}."
            )
            return redirect(f"{reverse('settings')}?app={app.public_id}")
    return _render(request, app=app, member_form=form, status=400)


def _render(
    request, *, app: App | None = None, app_forms=None, key_form=None, member_form=None, new_key=None, status=200
):
    """The page for the organization of `app` (else of the current app), with any bound forms in place.

    Six queries: session, user, the user's apps, the organizations they own, keys, members.
    """
    apps = user_apps(request)
    current = page_app(request)
    if app is not None and current is not None and app.organization_id != current.organization_id:
        remember_app(request, app)  # the page shows app's organization: so does the header
        request._page_app = app
    app = app or current
    owned = _owned_orgs(request)
    context = {
        "apps": [
            {
                "app": a,
                "form": ((app_forms or {}).get(a.pk) or AppSettingsForm(instance=a))
                if a.organization_id in owned
                else None,
            }
            for a in apps
        ],
        "new_key": new_key,
    }
    if app is not None:
        organization = app.organization
        is_owner = organization.pk in owned
        org_apps = _org_apps(request, app)
        context.update(
            organization=organization,
            is_owner=is_owner,
            keys=ApiKey.objects.filter(organization=organization)
            .select_related("app")
            .order_by(F("revoked_at").desc(nulls_first=True), "-created_at"),
            members=Membership.objects.filter(organization=organization)
            .select_related("user")
            .order_by("user__username"),
            settings_app=app,
            key_form=key_form or (ApiKeyForm(apps=org_apps, initial={"app": str(app.public_id)}) if is_owner else None),
            member_form=member_form or (MemberForm() if is_owner else None),
        )
    return render(request, "web/settings.html", context, status=status)


def _user_app(request, public_id: str) -> App:
    """One of the user's apps by public id; anything else, malformed or another organization's, is a 404."""
    try:
        wanted = uuid.UUID(public_id)
    except ValueError:
        raise Http404("No such app.") from None
    app = next((a for a in user_apps(request) if a.public_id == wanted), None)
    if app is None:
        raise Http404("No such app.")
    return app


def _owned(request, app: App) -> App:
    if app.organization_id not in _owned_orgs(request):
        raise PermissionDenied("Only the organization's owners change its settings.")
    return app


def _owned_orgs(request) -> set[int]:
    if not hasattr(request, "_owned_orgs"):
        request._owned_orgs = set(
            Membership.objects.filter(user=request.user, role=Membership.Role.OWNER).values_list(
                "organization_id", flat=True
            )
        )
    return request._owned_orgs


def _org_apps(request, app: App) -> list[App]:
    return [a for a in user_apps(request) if a.organization_id == app.organization_id]
