"""GET /api/analytics/{usage,models,agents,errors}: the runs API's auth, app scoping, filters and
errors (docs/ANALYTICS.md); the figures come from analytics.selectors."""

from __future__ import annotations

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.response import Response

from apps.analytics import selectors
from apps.analytics.api.serializers import (
    AgentsSerializer,
    ErrorsSerializer,
    ModelsSerializer,
    UsageSerializer,
    plain_buckets,
    plain_rows,
)
from apps.analytics.filters import AnalyticsFilterSet
from apps.tenancy.api.mixins import AppScopedMixin
from apps.tenancy.api.schema import APP_ID, READ_ERRORS
from apps.tracing.models import Run
from apps.tracing.selectors import runs_of


def _schema(serializer, summary: str, description: str):
    return extend_schema(
        filters=True, parameters=[APP_ID], responses={200: serializer, **READ_ERRORS}, summary=summary,
        description=description + " See docs/ANALYTICS.md.",
    )  # fmt: skip


class AnalyticsViewSet(AppScopedMixin, viewsets.GenericViewSet):
    """Aggregates of one app's runs over a window (default: the last 7 days)."""

    model, selector = Run, runs_of
    filterset_class = AnalyticsFilterSet
    filter_backends = [DjangoFilterBackend]  # for the schema: selectors.analytics_filter applies the filters
    pagination_class = None

    @_schema(UsageSerializer, "Usage per interval", "Runs, cost, tokens and errors per interval and key.")
    def usage(self, request):
        return self._answer("buckets", selectors.usage, as_json=plain_buckets)

    @_schema(ModelsSerializer, "Stats per model", "Calls, errors, latency percentiles, cost and tokens per model.")
    def models(self, request):
        return self._answer("models", selectors.model_stats)

    @_schema(AgentsSerializer, "Stats per agent", "The same per agent, over its root runs, with LLM calls per run.")
    def agents(self, request):
        return self._answer("agents", selectors.agent_stats)

    @_schema(ErrorsSerializer, "Most frequent errors", "The 20 most frequent normalised error messages.")
    def errors(self, request):
        return self._answer("errors", selectors.top_errors)

    def _answer(self, name: str, selector, as_json=plain_rows) -> Response:
        query = selectors.analytics_filter(self.app, self.request.query_params)
        return Response({name: as_json(selectors.answer(query, selector))})
