"""Who is asking: the client's address as the login limit counts it (django-axes)."""

from django.conf import settings


def client_ip(request) -> str:
    """The client's address: behind the TLS proxy (`BEHIND_TLS_PROXY`), the last address in
    `X-Forwarded-For`, the one the proxy itself appended (those before it come from the client and
    may be forged); else the connection's."""
    if settings.BEHIND_TLS_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.split(",")[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR", "")
