from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets

from apps.tenancy.api.schema import READ_ERRORS
from apps.tenancy.api.serializers import AppSerializer
from apps.tenancy.models import App


@extend_schema_view(
    list=extend_schema(responses={200: AppSerializer(many=True), 401: READ_ERRORS[401]}),
    retrieve=extend_schema(responses={200: AppSerializer, 401: READ_ERRORS[401], 404: READ_ERRORS[404]}),
)
class AppViewSet(viewsets.ReadOnlyModelViewSet):
    """The apps the caller can reach: a key's organization, or the logged-in user's organizations."""

    serializer_class = AppSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "app_id"
    pagination_class = None

    def get_queryset(self):
        return App.objects.restrict(user=self.request.user, key=self.request.auth).select_related("organization")
