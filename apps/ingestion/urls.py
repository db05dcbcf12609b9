from django.urls import re_path

from apps.ingestion.api.views import ReportView

urlpatterns = [
    re_path(r"^api/report/?$", ReportView.as_view(), name="report"),
]
