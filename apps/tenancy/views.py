from django.db import connection
from django.http import JsonResponse


def healthz(request):
    """Load-balancer health check: 200 when the database answers (503 via the middleware otherwise)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
