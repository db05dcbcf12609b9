"""Which app a read request is about: the one it names, if the caller may see it, else the caller's default."""

from __future__ import annotations

import uuid

from django.http import Http404
from rest_framework.exceptions import ValidationError

from apps.tenancy.models import App

SESSION_KEY = "current_app_id"


def requested_app(request, app_id: str | None, *, param: str = "app_id") -> App:
    """The app named by `app_id` among the caller's, else the key's app / the user's current app.

    An app of another organization is a 404, exactly like one that does not exist: the API
    never confirms another tenant's ids. A malformed id is a 400 naming the parameter.
    """
    key = getattr(request, "auth", None)
    visible = App.objects.restrict(user=request.user, key=key).select_related("organization")
    if app_id:
        try:
            public_id = uuid.UUID(str(app_id))
        except ValueError:
            raise ValidationError({param: ["Must be a valid UUID."]}) from None
        app = visible.filter(public_id=public_id).first()
        if app is None:
            raise Http404("No such app.")
        return app
    if key is not None:
        return key.app
    return current_app(request, visible)


def current_app(request, visible=None) -> App:
    """The app the logged-in user last chose (kept in the session), else their first app."""
    visible = visible if visible is not None else App.objects.for_user(request.user).select_related("organization")
    chosen = request.session.get(SESSION_KEY)
    app = visible.filter(public_id=chosen).first() if chosen else None
    app = app or visible.order_by("organization__name", "name").first()
    if app is None:
        raise Http404("You have no apps yet.")
    return app


def remember_app(request, app: App) -> None:
    request.session[SESSION_KEY] = str(app.public_id)
