from django.urls import path

from apps.tracing.api.datasets import DatasetExportViewSet
from apps.tracing.api.views import RunViewSet

# The spellings of SPEC §3, plus the other trailing-slash form of each (kept out of the schema).
urlpatterns = [
    path("run/", RunViewSet.as_view({"get": "list"}), name="run-list"),
    path("run/compare", RunViewSet.as_view({"post": "compare"}), name="run-compare"),
    path("run/compare/", RunViewSet.as_view({"post": "compare"}, schema=None)),
    path("run/<str:run_id>/", RunViewSet.as_view({"get": "retrieve"}), name="run-detail"),
    path("run/<str:run_id>", RunViewSet.as_view({"get": "retrieve"}, schema=None)),
    path("datasets/export", DatasetExportViewSet.as_view({"get": "export"}), name="dataset-export"),
    path("datasets/export/", DatasetExportViewSet.as_view({"get": "export"}, schema=None)),
]
