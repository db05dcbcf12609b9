from django.urls import path

from apps.ingestion.api.views import ReportView

urlpatterns = [
    path("api/report", ReportView.as_view(), name="report"),
    # Accepted with a trailing slash too (a redirect would lose a POST body); not in the schema.
    path("api/report/", ReportView.as_view(schema=None)),
]
