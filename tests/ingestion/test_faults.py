"""Faults around ingestion: what a client sees, and that nothing accepted is lost."""

import json
import socket
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

import pytest
from django.core.cache import cache

from apps.ingestion.assembly import assemble_pending, pending_count
from apps.tracing.models import Event, QueuedBatch, Run
from tests.helpers import report

# Nothing listens on port 1: every call to this "Redis" is refused at once.
DEAD_REDIS = {"default": {"BACKEND": "observatory.cache.PooledClientRedisCache", "LOCATION": "redis://127.0.0.1:1/0"}}
EVENT = {"name": "llm_call", "run_id": "during-outage", "model": "m", "total_tokens": 5}


@pytest.fixture
def redis_down(settings):
    settings.CACHES = DEAD_REDIS
    settings.OBSERVATORY_API_KEY_CACHE_SECONDS = 60  # the key's lookup goes to the cache first
    settings.OBSERVATORY_RATE_LIMIT_PER_MINUTE = 100  # and so does the rate limit's counter


def test_with_redis_down_events_are_accepted_and_queued(
    acme_client, redis_down, settings, caplog, django_capture_on_commit_callbacks
):
    settings.OBSERVATORY_ASSEMBLY = "worker"
    with django_capture_on_commit_callbacks(execute=True):
        assert report(acme_client, EVENT).json() == {"accepted": 1, "rejected": 0, "errors": []}
    assert pending_count() == 1  # in the database, safe
    for message in ("API key cache unavailable", "rate limit unavailable", "could not wake an assembly worker"):
        assert message in caplog.text
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}  # Redis is back
    cache.clear()
    assert assemble_pending() == 1 and Run.objects.filter(run_id="during-outage").exists()


def test_with_redis_down_inline_ingestion_applies_at_once(acme_client, redis_down):
    report(acme_client, EVENT)
    assert Run.objects.filter(run_id="during-outage").exists()


def test_with_redis_down_the_pages_and_health_still_answer(client, alice, acme_app, redis_down):
    client.force_login(alice)
    assert client.get(f"/?app={acme_app.public_id}").status_code == 200
    assert client.get("/healthz").json()["status"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_a_client_that_disconnects_mid_body_stores_nothing(live_server, acme_key):
    events = [{**EVENT, "run_id": f"cut-{n}"} for n in range(50)]
    body = json.dumps({"events": events}).encode()
    address = urlsplit(live_server.url)
    head = (
        f"POST /api/report HTTP/1.1\r\nHost: {address.hostname}\r\nAuthorization: Bearer {acme_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(head.encode() + body[: len(body) // 2])
        connection.shutdown(socket.SHUT_WR)  # the client goes away halfway through its body
        answer = connection.recv(200)
    assert answer.startswith(b"HTTP/1.1 400")  # half a body is not JSON: refused, nothing written
    assert not Event.objects.exists() and not QueuedBatch.objects.exists() and not Run.objects.exists()
    headers = {"Authorization": f"Bearer {acme_key}", "Content-Type": "application/json"}
    request = Request(f"{live_server.url}/api/report", body, headers)
    with urlopen(request, timeout=10) as response:  # the server goes on serving
        assert response.status == 200
    assert Run.objects.filter(run_id__startswith="cut-").count() == 50
