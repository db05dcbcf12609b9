from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render

from apps.tenancy.models import App


@login_required
def home(request):
    apps = App.objects.for_user(request.user).select_related("organization").order_by("organization__name", "name")
    return render(request, "tenancy/home.html", {"apps": apps})


def healthz(request):
    """Load-balancer health check: 200 when the database answers (503 via the middleware otherwise)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
