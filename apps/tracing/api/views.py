from __future__ import annotations

from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from apps.tenancy.api.mixins import AppScopedMixin
from apps.tenancy.api.schema import APP_ID, READ_ERRORS
from apps.tracing.api.pagination import RunPagination
from apps.tracing.api.serializers import (
    CompareRequestSerializer,
    RunDetailSerializer,
    RunSerializer,
    TraceNodeSerializer,
)
from apps.tracing.filters import RunFilterSet
from apps.tracing.models import Run
from apps.tracing.selectors import TraceNode, cost_rows_for, differences, load_trace, runs_of


class RunFilterBackend(DjangoFilterBackend):
    """Also hands the validated ordering to the view, for the keyset paginator."""

    def get_filterset_kwargs(self, request, queryset, view):
        return {**super().get_filterset_kwargs(request, queryset, view), "app": getattr(view, "app", None)}

    def filter_queryset(self, request, queryset, view):
        filterset = self.get_filterset(request, queryset, view)
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        view.ordering = filterset.requested_ordering
        return filterset.qs


class RunViewSet(AppScopedMixin, viewsets.GenericViewSet):
    """Runs of one app: the filtered list, one run with its trace, and a comparison of two runs."""

    model, selector, body_actions = Run, runs_of, ("compare",)
    serializer_class = RunSerializer
    filterset_class = RunFilterSet
    filter_backends = [RunFilterBackend]
    pagination_class = RunPagination
    lookup_field = "run_id"
    lookup_value_regex = "[^/]+"
    parser_classes = [JSONParser]

    @extend_schema(parameters=[APP_ID], responses={200: RunSerializer(many=True), **READ_ERRORS}, summary="List runs")
    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        parameters=[APP_ID],
        responses={200: RunDetailSerializer, **READ_ERRORS},
        summary="A run with its events and trace",
    )
    def retrieve(self, request, run_id: str):
        root = self._trace(run_id, with_events=True)
        context = {**self.get_serializer_context(), "cost_rows": cost_rows_for(root)}
        return Response(RunDetailSerializer(root, context=context).data)

    @extend_schema(
        request=CompareRequestSerializer,
        responses={
            200: inline_serializer(
                "RunComparison",
                {"a": TraceNodeSerializer(), "b": TraceNodeSerializer(), "differences": serializers.ListField()},
            ),
            **READ_ERRORS,
        },
        summary="Compare two runs",
    )
    @action(detail=False, methods=["post"], url_path="compare")
    def compare(self, request):
        body = CompareRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        a, b = self._trace(body.validated_data["run_id_a"]), self._trace(body.validated_data["run_id_b"])
        context = {**self.get_serializer_context(), "cost_rows": cost_rows_for(a, b)}
        return Response(
            {
                "a": TraceNodeSerializer(a, context=context).data,
                "b": TraceNodeSerializer(b, context=context).data,
                "differences": differences(a, b),
            }
        )

    def _trace(self, run_id: str, with_events: bool = False) -> TraceNode:
        root = load_trace(self.app, run_id, with_events=with_events)
        if root is None:
            raise Http404(f"No run {run_id!r} in this app.")
        return root
