from django.urls import path

from apps.ingestion.api.interop import (
    LangfuseIngestionView,
    LangfuseScoresView,
    LunaryIngestView,
    LunaryScoreView,
    OtlpTracesView,
)
from apps.ingestion.api.views import ReportView
from apps.ingestion.monitoring import healthz, metrics

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("api/report", ReportView.as_view(), name="report"),
    # Accepted with a trailing slash too (a redirect would lose a POST body); not in the schema.
    path("api/report/", ReportView.as_view(schema=None)),
    # The clients users already run, each where it posts (docs/INTEROP.md).
    path("v1/traces", OtlpTracesView.as_view(), name="otlp-traces"),
    path("api/public/otel/v1/traces", OtlpTracesView.as_view(), name="langfuse-otlp-traces"),
    path("api/public/scores", LangfuseScoresView.as_view(), name="langfuse-scores"),
    path("api/public/ingestion", LangfuseIngestionView.as_view(), name="langfuse-ingestion"),
    path("v1/runs/ingest", LunaryIngestView.as_view(), name="lunary-ingest"),
    path("v1/runs/<str:run_id>/score", LunaryScoreView.as_view(), name="lunary-score"),
]
