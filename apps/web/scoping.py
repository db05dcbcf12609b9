"""Which app a page shows: the one its `?app=` names among the user's apps, else the one they last chose.

One query per request (the user's apps with their organizations), shared by the view and
the header's app switcher. Another organization's app is a 404, like one that does not exist.
"""

from __future__ import annotations

import uuid

from django.http import Http404

from apps.tenancy.models import App
from apps.tenancy.scoping import SESSION_KEY, remember_app


def user_apps(request) -> list[App]:
    if not hasattr(request, "_user_apps"):
        request._user_apps = list(
            App.objects.for_user(request.user).select_related("organization").order_by("organization__name", "name")
        )
    return request._user_apps


def page_app(request) -> App | None:
    """The current app, remembered in the session; None when the user has no apps yet."""
    if hasattr(request, "_page_app"):
        return request._page_app
    apps = user_apps(request)
    wanted = request.GET.get("app")
    if wanted:
        try:
            wanted = str(uuid.UUID(wanted))
        except ValueError:
            raise Http404("No such app.") from None
        app = next((a for a in apps if str(a.public_id) == wanted), None)
        if app is None:
            raise Http404("No such app.")
    else:
        chosen = request.session.get(SESSION_KEY)
        app = next((a for a in apps if str(a.public_id) == chosen), apps[0] if apps else None)
    if app is not None and request.session.get(SESSION_KEY) != str(app.public_id):
        remember_app(request, app)
    request._page_app = app
    return app
