"""The clients users already run, each at the address it posts to: OTLP/HTTP traces (OpenTelemetry,
the Langfuse SDK), Langfuse scores, and Lunary's ingestion. Each view translates the client's
format with apps.interop and hands the events to the one pipeline of /api/report (`ingest_batch`):
same validation, run assembly, exactly-once, costs, threads and limits. docs/INTEROP.md.
"""

from __future__ import annotations

import logging
import time
import uuid

import orjson
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.views import APIView

from apps.ingestion.parsing import BatchRejected, BodyTooLarge, read_body
from apps.ingestion.services import ingest_batch
from apps.ingestion.throttling import ApiKeyRateThrottle, within_limit
from apps.interop import langfuse, lunary, otlp
from apps.interop.spans import Span, SpanInvalid, span_events
from apps.tenancy.api.schema import ErrorSerializer, RpcStatusSerializer
from apps.tenancy.authentication import BasicKeyAuthentication, BearerKeyAuthentication
from apps.tenancy.models import App

logger = logging.getLogger(__name__)
MAX_MESSAGES = 5  # rejected spans named in partialSuccess.errorMessage


class ProtobufParser(BaseParser):
    media_type = otlp.PROTOBUF  # for the schema and content negotiation: the view reads the body itself


def ingest_items(owners: list[int], events: list[dict], app) -> dict[int, str]:
    """Ingest `events`, each from the item `owners[i]` of the request: {item: first error} of the rejected."""
    if not events:
        return {}
    result = ingest_batch(app=app, raw_events=events)
    rejected: dict[int, str] = {}
    for index, message in sorted(result.errors.items()):
        rejected.setdefault(owners[index], message)
    return rejected


class ClientView(APIView):
    """What every other client's route shares: our key as Bearer or Basic, the per-key rate limit, JSON."""

    authentication_classes = [BearerKeyAuthentication, BasicKeyAuthentication]
    throttle_classes = [ApiKeyRateThrottle]
    parser_classes = [JSONParser]  # for the schema: each view reads its body itself


class OtlpTracesView(ClientView):
    """POST /v1/traces (and /api/public/otel/v1/traces): an OTLP/HTTP ExportTraceServiceRequest."""

    parser_classes = [ProtobufParser, JSONParser]

    @extend_schema(
        request={otlp.PROTOBUF: OpenApiTypes.BINARY, otlp.JSON: OpenApiTypes.OBJECT},
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT, "ExportTraceServiceResponse; partialSuccess counts rejected spans."
            ),
            **{status: RpcStatusSerializer for status in (400, 401, 413, 415, 429, 503)},
        },
        summary="Export OpenTelemetry traces (OTLP/HTTP)",
        tags=["interop"],
    )
    def post(self, request) -> HttpResponse:
        encoding = self.encoding
        if encoding is None:
            return self._error(415, f"Content-Type {request.content_type!r} is not {otlp.PROTOBUF} or {otlp.JSON}")
        try:
            items = otlp.decode(read_body(request), encoding)
        except BatchRejected as exc:
            return self._error(exc.status, exc.message)
        except otlp.RequestInvalid as exc:
            return self._error(400, str(exc))
        limit = settings.OBSERVATORY_MAX_BATCH_EVENTS
        if len(items) > limit:
            return self._error(413, f"{len(items)} spans is more than the limit of {limit} per request")
        rejected: dict[int, str] = {}
        owners: list[int] = []
        events: list[dict] = []
        for position, item in enumerate(items):
            try:
                if not isinstance(item, Span):
                    raise item
                mapped = span_events(item)
            except SpanInvalid as exc:
                rejected[position] = str(exc)
                continue
            events += mapped
            owners += [position] * len(mapped)
        rejected |= ingest_items(owners, events, request.auth.app)
        lines = [f"span {position}: {message}" for position, message in sorted(rejected.items())[:MAX_MESSAGES]]
        if len(rejected) > MAX_MESSAGES:
            lines.append(f"and {len(rejected) - MAX_MESSAGES} more")
        body = otlp.success_body(len(rejected), "; ".join(lines), encoding)
        return HttpResponse(body, status=200, content_type=encoding)

    @property
    def encoding(self) -> str | None:
        return otlp.encoding_of(self.request.META.get("CONTENT_TYPE", ""))

    def _error(self, status: int, message: str, headers: dict | None = None) -> HttpResponse:
        encoding = self.encoding or otlp.JSON
        response = HttpResponse(otlp.error_body(status, message, encoding), status=status, content_type=encoding)
        for name, value in (headers or {}).items():
            response[name] = value
        return response

    def handle_exception(self, exc):
        """401, 429 and 503 in OTLP's shape (a google.rpc.Status in the request's encoding)."""
        if isinstance(exc, OperationalError | InterfaceError):
            logger.exception("database unavailable while receiving OTLP traces")
            return self._error(
                503, "database unavailable, retry later", {"Retry-After": str(settings.OBSERVATORY_RETRY_AFTER_S)}
            )
        response = super().handle_exception(exc)
        headers = {name: response[name] for name in ("WWW-Authenticate", "Retry-After") if response.has_header(name)}
        return self._error(response.status_code, response.data.get("error", "request refused"), headers)


class LunaryIngestView(ClientView):
    """POST /v1/runs/ingest: a batch of Lunary SDK events (`{"events": [...]}`), our key as its Bearer token."""

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={
            200: OpenApiTypes.OBJECT,
            207: OpenApiTypes.OBJECT,
            400: ErrorSerializer,
            401: ErrorSerializer,
            413: ErrorSerializer,
            429: ErrorSerializer,
            503: ErrorSerializer,
        },  # fmt: skip
        summary="Report Lunary SDK events",
        tags=["interop"],
    )
    def post(self, request) -> HttpResponse:
        try:
            raw_events = _events_of(read_body(request))
        except BatchRejected as exc:
            return _json({"error": exc.message}, exc.status)
        owners, events, rejected = lunary.translate_all(raw_events)
        rejected |= ingest_items(owners, events, request.auth.app)
        errors = [{"index": index, "error": message} for index, message in sorted(rejected.items())]
        body = {"accepted": len(raw_events) - len(rejected), "rejected": len(rejected), "errors": errors}
        return _json(body, 207 if rejected else 200)


class LunaryScoreView(ClientView):
    """PATCH /v1/runs/<run_id>/score: `lunary.score(run_id, label, value, comment)`, as feedback on the run."""

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT, 400: ErrorSerializer, 401: ErrorSerializer},
        summary="Score a Lunary run (stored as feedback)",
        tags=["interop"],
    )
    def patch(self, request, run_id: str) -> HttpResponse:
        try:
            body = _document(read_body(request))
            event = lunary.score_event(run_id, body, key=_raw_key(request), app=request.auth.app)
        except BatchRejected as exc:
            return _message_error(exc.message, exc.status)
        except lunary.EventInvalid as exc:
            return _message_error(str(exc), 400)
        return _score_answer(request.auth.app, event, {})


class LangfuseScoresView(ClientView):
    """POST /api/public/scores: one Langfuse score, as feedback on the run it is about."""

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT, 400: ErrorSerializer, 401: ErrorSerializer, 404: ErrorSerializer},
        summary="Create a Langfuse score (stored as feedback)",
        tags=["interop"],
    )
    def post(self, request) -> HttpResponse:
        try:
            score = _document(read_body(request))
            event = langfuse.score_event(score, request.auth.app)
        except BatchRejected as exc:
            return _message_error(exc.message, exc.status)
        except langfuse.ScoreInvalid as exc:
            return _message_error(str(exc), exc.status)
        return _score_answer(request.auth.app, event, {"id": event["id"]})


class LangfuseIngestionView(ClientView):
    """POST /api/public/ingestion: the Langfuse SDK's batch endpoint, for its `score-create` items.

    Traces come over OTLP (/api/public/otel/v1/traces); other item types are answered with a
    per-item 400 saying so, in Langfuse's 207 shape `{successes, errors}`.
    """

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={207: OpenApiTypes.OBJECT, 400: ErrorSerializer, 401: ErrorSerializer, 413: ErrorSerializer},
        summary="Langfuse batch ingestion (scores)",
        tags=["interop"],
    )
    def post(self, request) -> HttpResponse:
        try:
            document = _document(read_body(request))
            items = document.get("batch") if isinstance(document, dict) else None
            if not isinstance(items, list):
                raise BatchRejected('body must be {"batch": [...]}')
            if len(items) > settings.OBSERVATORY_MAX_BATCH_EVENTS:
                raise BodyTooLarge(
                    f"{len(items)} items is more than the limit of {settings.OBSERVATORY_MAX_BATCH_EVENTS}"
                )
        except BatchRejected as exc:
            return _message_error(exc.message, exc.status)
        ids, events, errors = [], [], []
        for item in items:
            item_id = str(item.get("id", "")) if isinstance(item, dict) else ""
            try:
                if not isinstance(item, dict) or item.get("type") != "score-create":
                    raise langfuse.ScoreInvalid("type: only score-create is stored here; send traces over OTLP")
                events.append(langfuse.score_event(item.get("body"), request.auth.app))
                ids.append(item_id)
            except langfuse.ScoreInvalid as exc:
                errors.append({"id": item_id, "status": exc.status, "message": str(exc)})
        rejected = ingest_batch(app=request.auth.app, raw_events=events).errors if events else {}
        errors += [{"id": ids[index], "status": 400, "message": message} for index, message in rejected.items()]
        successes = [{"id": item_id, "status": 201} for index, item_id in enumerate(ids) if index not in rejected]
        return _json({"successes": successes, "errors": errors}, 207)


def legacy_report(request) -> HttpResponse:
    """POST /api/report without a key: LLMonitor SDK events, each naming its app in `app`.

    Taken only for apps whose owner turned on legacy ingestion by app id; when no event
    names one, this is the usual 401. Answered exactly 200 whatever was rejected (listed in
    the body): the SDK knows no other answer. A batch whose request failed on the way, it
    re-sends nested one list deeper, flattened here and de-duplicated by ingest_batch.
    """
    if not App.objects.filter(legacy_ingestion=True).exists():  # the usual case: no body read without a key
        raise exceptions.NotAuthenticated()
    try:
        raw_events = _events_of(read_body(request))
    except BatchRejected as exc:
        return _json({"error": exc.message}, exc.status)
    named = [_app_id(raw) for raw in raw_events]
    apps = {str(app.public_id): app for app in App.objects.legacy_ingestion({n for n in named if n})}
    if not apps:
        raise exceptions.NotAuthenticated()
    rejected: dict[int, str] = {}
    by_app: dict[str, list[int]] = {}
    for position, app_id in enumerate(named):
        if app_id in apps:
            by_app.setdefault(app_id, []).append(position)
        else:
            rejected[position] = "app: no app takes events by this id without an API key"
    for app_id in by_app:
        allowed, window_ends = within_limit(f"legacy:{apps[app_id].pk}")
        if not allowed:
            retry_after = str(max(1, int(window_ends - time.time())))
            return _json({"error": "rate limit exceeded"}, 429, headers={"Retry-After": retry_after})
    for app_id, positions in by_app.items():
        owners, events, refused = lunary.translate_all([raw_events[position] for position in positions])
        rejected |= {positions[index]: message for index, message in refused.items()}
        refused = ingest_items(owners, events, apps[app_id])
        rejected |= {positions[index]: message for index, message in refused.items()}
    errors = [{"index": index, "error": message} for index, message in sorted(rejected.items())]
    return _json({"accepted": len(raw_events) - len(rejected), "rejected": len(rejected), "errors": errors}, 200)


def _app_id(raw) -> str | None:
    """An LLMonitor event's `app`, as the canonical text of a UUID (or None)."""
    try:
        return str(uuid.UUID(str(raw["app"])))
    except (TypeError, KeyError, ValueError):
        return None


def _score_answer(app, event: dict, answer: dict) -> HttpResponse:
    """Store one score's feedback event; `answer` (200) or the event's error (400)."""
    errors = ingest_batch(app=app, raw_events=[event]).errors
    return _message_error(errors[0], 400) if errors else _json(answer, 200)


def _raw_key(request) -> str:
    """The key as the client sent it (Lunary's SDK derives its run ids from it)."""
    scheme, _, credentials = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def _document(body: bytes):
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BatchRejected(f"body is not valid JSON: {exc}") from None


def _message_error(message: str, status: int) -> HttpResponse:
    # Langfuse and Lunary read `message`; our clients `error`: both, so either reads it.
    return _json({"message": message, "error": message}, status)


def _events_of(body: bytes) -> list:
    document = _document(body)
    events = document.get("events") if isinstance(document, dict) else document
    if not isinstance(events, list):
        raise BatchRejected('body must be {"events": [...]}')
    events = lunary.flatten(events)
    if len(events) > settings.OBSERVATORY_MAX_BATCH_EVENTS:
        raise BodyTooLarge(f"{len(events)} events is more than the limit of {settings.OBSERVATORY_MAX_BATCH_EVENTS}")
    return events


def _json(data: dict, status: int, headers: dict | None = None) -> HttpResponse:
    return HttpResponse(orjson.dumps(data), status=status, content_type="application/json", headers=headers)
