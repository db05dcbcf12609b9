from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.response import Response

from apps.tenancy.api.mixins import AppScopedMixin
from apps.tenancy.api.pagination import KeysetPagination
from apps.tenancy.api.schema import APP_ID, READ_ERRORS
from apps.threads.api.serializers import ThreadDetailSerializer, ThreadSerializer
from apps.threads.filters import ThreadFilterSet
from apps.threads.models import Thread
from apps.threads.selectors import conversation, threads_of


class ThreadViewSet(AppScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Conversations of one app, most recent activity first; one thread with its messages."""

    model, selector = Thread, threads_of
    serializer_class = ThreadSerializer
    filterset_class = ThreadFilterSet
    filter_backends = [DjangoFilterBackend]
    pagination_class = KeysetPagination
    ordering = "-ended_at"

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
