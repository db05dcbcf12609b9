"""Worker-mode ingestion as it runs in production: queued events applied by a real Celery worker on Redis."""

import time

import pytest
from django.core.cache import cache

from apps.ingestion.assembly import pending_count
from apps.ingestion.tasks import WAKE_FLAG
from apps.tracing.models import Run
from tests.helpers import report

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_a_worker_applies_what_the_api_queued(acme_client, celery_worker, settings):
    settings.OBSERVATORY_ASSEMBLY = "worker"
    cache.delete(WAKE_FLAG)  # a wake-up left by another run would wait for a beat this test has not
    events = [{"name": "llm_call", "run_id": f"r{n}", "model": "m", "total_tokens": 5} for n in range(50)]
    report(acme_client, *events)
    deadline = time.monotonic() + 30
    while pending_count() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pending_count() == 0
    assert Run.objects.filter(type="llm").count() == 50
