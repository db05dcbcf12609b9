from rest_framework import viewsets

from apps.tenancy.api.serializers import AppSerializer
from apps.tenancy.models import App


class AppViewSet(viewsets.ReadOnlyModelViewSet):
    """The apps the caller can reach: a key's organization, or the logged-in user's organizations."""

    serializer_class = AppSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "app_id"
    pagination_class = None

    def get_queryset(self):
        return App.objects.restrict(user=self.request.user, key=self.request.auth).select_related("organization")
