"""/healthz and /metrics: the event queue's depth and age, read from the database by any web process."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.tracing.models import QueuedBatch
from tests.helpers import report

EVENTS = [{"name": "chain_start", "run_id": f"r{i}", "timestamp": "2026-05-01T10:00:00Z"} for i in range(3)]


@pytest.fixture
def queued(acme_client, settings):
    """Three events accepted in worker mode and not applied (no worker runs in the test)."""
    settings.OBSERVATORY_ASSEMBLY = "worker"
    report(acme_client, *EVENTS)
    QueuedBatch.objects.update(received_at=timezone.now() - timedelta(seconds=90))  # accepted 90 s ago


def test_healthz_answers_ok_with_an_empty_queue(client, db):
    assert client.get("/healthz").json() == {
        "status": "ok",
        "assembly": "inline",
        "queue": {"depth": 0, "oldest_age_s": None},
    }


def test_healthz_shows_how_many_events_wait_and_for_how_long(client, queued):
    body = client.get("/healthz").json()
    assert (body["status"], body["assembly"], body["queue"]["depth"]) == ("ok", "worker", 3)
    assert 90 <= body["queue"]["oldest_age_s"] < 120


def test_healthz_takes_no_posts(client, db):
    assert client.post("/healthz").status_code == 405


def metric(text: str, name: str) -> str:
    return next(line.split(" ", 1)[1] for line in text.splitlines() if line.startswith(name + " "))


def test_metrics_are_the_queue_in_the_prometheus_format(client, queued):
    response = client.get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    assert "# TYPE observatory_queue_depth gauge" in text
    assert float(metric(text, "observatory_queue_depth")) == 3.0
    assert 90 <= float(metric(text, "observatory_queue_oldest_age_seconds")) < 120
    assert 'observatory_info{assembly="worker"} 1.0' in text


def test_metrics_of_an_empty_queue_are_zeros(client, db):
    text = client.get("/metrics").content.decode()
    assert float(metric(text, "observatory_queue_depth")) == 0.0
    assert float(metric(text, "observatory_queue_oldest_age_seconds")) == 0.0


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Bearer s3cret-but-longer", "s3cret"])
def test_with_a_token_metrics_refuse_everyone_else(client, db, settings, header):
    settings.OBSERVATORY_METRICS_TOKEN = "s3cret"
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.get("/metrics", **extra)
    assert response.status_code == 401
    assert "OBSERVATORY_METRICS_TOKEN" in response.json()["error"]
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
