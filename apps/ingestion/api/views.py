from __future__ import annotations

import orjson
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.parsers import JSONParser
from rest_framework.views import APIView

from apps.ingestion.api.interop import legacy_report
from apps.ingestion.api.serializers import BatchResultSerializer, ReportSerializer
from apps.ingestion.parsing import BatchRejected, parse_body, read_body
from apps.ingestion.services import ingest_batch
from apps.ingestion.throttling import ApiKeyRateThrottle
from apps.tenancy.api.schema import ErrorSerializer
from apps.tenancy.authentication import BearerKeyAuthentication


def _json(data: dict, status: int) -> HttpResponse:
    return HttpResponse(orjson.dumps(data), status=status, content_type="application/json")


class ReportView(APIView):
    """POST /api/report: a batch of events (SPEC §2). Thin: read body -> parse -> ingest -> answer."""

    authentication_classes = [BearerKeyAuthentication]
    # Without a key, only apps with legacy ingestion by app id (the LLMonitor SDK) take events.
    permission_classes: list = []
    throttle_classes = [ApiKeyRateThrottle]
    parser_classes = [JSONParser]  # for the schema: the body is read and parsed below, faster

    @extend_schema(
        request=ReportSerializer,
        responses={
            200: BatchResultSerializer,
            207: OpenApiResponse(BatchResultSerializer, "Some events were rejected; the others are stored."),
            400: ErrorSerializer,
            401: ErrorSerializer,
            413: ErrorSerializer,
            429: ErrorSerializer,
            503: ErrorSerializer,
        },
        examples=[
            OpenApiExample(
                "agent start",
                request_only=True,
                value={
                    "events": [
                        {
                            "name": "agent_start",
                            "type": "agent",
                            "run_id": "01HXYZ",
                            "timestamp": "2026-05-29T08:42:11.123Z",
                            "input": {"prompt": "..."},
                            "metadata": {"agent": "claims-approval"},
                        }
                    ]
                },
            )
        ],
        summary="Report a batch of events",
    )
    def post(self, request) -> HttpResponse:
        if request.auth is None:
            return legacy_report(request)
        try:
            body = read_body(request)
            parsed = parse_body(body, settings.OBSERVATORY_MAX_BATCH_EVENTS)
        except BatchRejected as exc:
            return _json({"error": exc.message}, exc.status)
        result = ingest_batch(app=request.auth.app, raw_events=parsed.events, lenient=parsed.lenient)
        return _json(result.as_json(), 207 if result.errors else 200)
