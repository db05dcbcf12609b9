"""GET /api/datasets/export: an app's saved runs as a JSON-lines download (docs/DATASETS.md)."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import viewsets
from rest_framework.negotiation import BaseContentNegotiation

from apps.tenancy.api.mixins import AppScopedMixin
from apps.tenancy.api.schema import APP_ID, READ_ERRORS
from apps.tracing import datasets
from apps.tracing.models import Run
from observatory.renderers import ORJSONRenderer


class ErrorsAsJSON(BaseContentNegotiation):
    """`format` is this endpoint's own parameter (jsonl / openai), not DRF's renderer override (which
    would answer 404 to `format=jsonl`): the body is the export, and errors are always JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class DatasetExportViewSet(AppScopedMixin, viewsets.GenericViewSet):
    """The saved runs of one app, filtered like the runs list, streamed in id order."""

    model, selector = Run, datasets.saved_runs
    filterset_class = datasets.DatasetFilterSet
    filter_backends = [DjangoFilterBackend]  # for the schema: datasets.export_of_app applies the filters
    renderer_classes = [ORJSONRenderer]
    content_negotiation_class = ErrorsAsJSON
    pagination_class = None

    @extend_schema(
        summary="Export saved runs as a dataset",
        description=(
            "The app's saved runs matching the runs list's filters, as JSON lines, streamed in id order. "
            "`jsonl`: one line per run (run_id, name, type, model, input, output, metadata, tags, feedback). "
            '`openai`: chat fine-tuning examples (`{"messages": [...]}`) for runs whose input is chat '
            "messages and whose output is an answer; the others are skipped and counted in "
            f"`{datasets.SKIPPED_HEADER}`. See docs/DATASETS.md."
        ),
        filters=True,
        parameters=[
            APP_ID,
            OpenApiParameter("format", OpenApiTypes.STR, enum=list(datasets.FORMATS), default=datasets.DEFAULT_FORMAT),
            OpenApiParameter(
                datasets.SKIPPED_HEADER,
                OpenApiTypes.INT,
                OpenApiParameter.HEADER,
                response=[200],
                description="`format=openai`: the runs left out because they do not fit the format.",
            ),
        ],
        responses={
            (200, datasets.CONTENT_TYPE): OpenApiResponse(OpenApiTypes.STR, "JSON lines, one per run."),
            **READ_ERRORS,
        },
    )
    def export(self, request):
        dataset = datasets.export_of_app(self.app, request.query_params, request.query_params.get("format"))
        response = StreamingHttpResponse(dataset.lines(), content_type=datasets.CONTENT_TYPE)
        response["Content-Disposition"] = f'attachment; filename="{dataset.filename}"'
        if dataset.skipped is not None:
            response[datasets.SKIPPED_HEADER] = str(dataset.skipped)
        return response
