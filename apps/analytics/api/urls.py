from django.urls import path

from apps.analytics.api.views import AnalyticsViewSet

# Each endpoint without a trailing slash, plus the other form (kept out of the schema).
urlpatterns = [
    route
    for name in ("usage", "models", "agents", "errors")
    for route in (
        path(f"analytics/{name}", AnalyticsViewSet.as_view({"get": name}), name=f"analytics-{name}"),
        path(f"analytics/{name}/", AnalyticsViewSet.as_view({"get": name}, schema=None)),
    )
]
