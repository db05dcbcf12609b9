"""The recalculation as it runs in production: enqueued on a real Redis broker, executed by a real Celery worker."""

import time
from decimal import Decimal

import pytest

from apps.costs.models import ModelCost, Recalculation
from apps.tracing.models import Run
from apps.tracing.repricing import request_recalculation
from tests.helpers import ingest

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def wait_for(job: Recalculation, timeout: float = 30) -> Recalculation:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.state in (Recalculation.State.DONE, Recalculation.State.FAILED):
            return job
        time.sleep(0.1)
    raise AssertionError(f"recalculation #{job.pk} still {job.state} after {timeout}s")


def test_a_worker_reprices_runs_from_the_broker(acme_app, celery_worker):
    ModelCost.objects.create(model="m", prompt_price=Decimal("1"), completion_price=Decimal("1"))
    ingest(acme_app, *[{"name": "llm_call", "run_id": f"r{n}", "model": "m", "prompt_tokens": 1000,
                        "completion_tokens": 0} for n in range(20)])  # fmt: skip
    ModelCost.objects.update(prompt_price=Decimal("5"))
    job = wait_for(request_recalculation(model="m", reason="worker test"))
    assert (job.state, job.changed, job.cost_after) == (Recalculation.State.DONE, 20, Decimal(100))
    assert set(Run.objects.with_cost().values_list("cost", flat=True)) == {Decimal(5)}
