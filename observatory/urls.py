from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import JsonResponse
from django.templatetags.static import static
from django.urls import include, path
from django.views import defaults
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

urlpatterns = [
    # Browsers ask for /favicon.ico on pages that name none (the admin's).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("apps.ingestion.urls")),
    path("api/", include("apps.tenancy.api.urls")),
    path("api/", include("apps.tracing.api.urls")),
    path("api/", include("apps.analytics.api.urls")),
    path("api/", include("apps.threads.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI's script is a file (the split view), but it styles itself with <style> elements: allowed
    # on this page only, which shows our schema and no one's data.
    path(
        "api/docs/",
        csp_update({"style-src": [UNSAFE_INLINE]})(SpectacularSwaggerSplitView.as_view(url_name="schema")),
        name="api-docs",
    ),
    path("", include("apps.web.urls")),
]


def not_found(request, exception):
    """A path no route matches: the API's JSON error for API clients (`/api/`, `/v1/`), else the page."""
    if request.path.startswith(("/api/", "/v1/")):
        return JsonResponse({"error": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


handler404 = not_found
