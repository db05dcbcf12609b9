"""The one way an API view is scoped to a tenant: resolve the requested app first, then read only its rows."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError

from apps.tenancy.scoping import requested_app


class AppScopedMixin:
    """For viewsets over one app's rows: `self.app` is the app the request names (`app_id` in
    the query string, or in the JSON body for `body_actions`) if the caller may see it, else
    the caller's default (see scoping.requested_app); the queryset is `selector(app)`.

    Subclasses set `model` (for the schema generator, which has no request) and `selector`,
    a function from an app to its queryset (the app's selectors module).
    """

    model = None
    selector = None
    body_actions: tuple[str, ...] = ()

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.app = requested_app(request, self.requested_app_id(request))

    def requested_app_id(self, request) -> str | None:
        if self.action not in self.body_actions:
            return request.query_params.get("app_id")
        if not isinstance(request.data, dict):
            raise ValidationError({"body": ["Must be a JSON object."]})
        return request.data.get("app_id")

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.model.objects.none()
        return type(self).selector(self.app)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "app": getattr(self, "app", None)}
