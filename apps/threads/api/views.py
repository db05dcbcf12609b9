from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.response import Response

from apps.tenancy.api.schema import APP_ID, READ_ERRORS
from apps.tenancy.scoping import requested_app
from apps.threads.api.serializers import ThreadDetailSerializer, ThreadSerializer
from apps.threads.conversation import conversation
from apps.threads.filters import ThreadFilterSet
from apps.threads.models import Thread
from apps.tracing.api.pagination import KeysetPagination


class ThreadViewSet(viewsets.ReadOnlyModelViewSet):
    """Conversations of one app, most recent activity first; one thread with its messages."""

    serializer_class = ThreadSerializer
    filterset_class = ThreadFilterSet
    filter_backends = [DjangoFilterBackend]
    pagination_class = KeysetPagination
    ordering = "-ended_at"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.app = requested_app(request, request.query_params.get("app_id"))

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Thread.objects.none()
        return Thread.objects.for_app(self.app)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "app": getattr(self, "app", None)}

    @extend_schema(
        parameters=[APP_ID], responses={200: ThreadSerializer(many=True), **READ_ERRORS}, summary="List threads"
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        parameters=[APP_ID],
        responses={200: ThreadDetailSerializer, **READ_ERRORS},
        summary="A thread with its messages",
    )
    def retrieve(self, request, *args, **kwargs):
        thread = self.get_object()
        thread.conversation = conversation(thread, self.app)
        return Response(ThreadDetailSerializer(thread, context=self.get_serializer_context()).data)
