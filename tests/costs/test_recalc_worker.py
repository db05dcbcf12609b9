"""The recalculation as it runs in production: enqueued on a real Redis broker, executed by a real Celery worker."""

import os
import time
import uuid
from decimal import Decimal

import pytest
import redis
from celery.contrib.testing.worker import start_worker

from apps.costs.models import ModelCost, Recalculation
from apps.costs.recalc import request_recalculation
from apps.tracing.models import Run
from observatory.celery import app as celery_app
from tests.helpers import ingest

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker():
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs a real Redis broker: set REDIS_URL (CI does)")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at REDIS_URL is not reachable: {exc}")
    saved = dict(celery_app.conf)
    # A queue of its own, so that the test never consumes (or leaves) anyone else's messages.
    celery_app.conf.update(broker_url=url, task_always_eager=False, task_default_queue=f"test-{uuid.uuid4().hex}")
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield
    celery_app.conf.update(saved)


def wait_for(job: Recalculation, timeout: float = 30) -> Recalculation:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.state in (Recalculation.State.DONE, Recalculation.State.FAILED):
            return job
        time.sleep(0.1)
    raise AssertionError(f"recalculation #{job.pk} still {job.state} after {timeout}s")


def test_a_worker_reprices_runs_from_the_broker(acme_app, worker):
    ModelCost.objects.create(model="m", prompt_price=Decimal("1"), completion_price=Decimal("1"))
    ingest(acme_app, *[{"name": "llm_call", "run_id": f"r{n}", "model": "m", "prompt_tokens": 1000,
                        "completion_tokens": 0} for n in range(20)])  # fmt: skip
    ModelCost.objects.update(prompt_price=Decimal("5"))
    job = wait_for(request_recalculation(model="m", reason="worker test"))
    assert (job.state, job.changed, job.cost_after) == (Recalculation.State.DONE, 20, Decimal(100))
    assert set(Run.objects.with_cost().values_list("cost", flat=True)) == {Decimal(5)}
