"""Langfuse scores (POST /api/public/scores, and score-create items of /api/public/ingestion) as feedback."""

from __future__ import annotations

import base64

import orjson
import pytest

from apps.tracing.models import Feedback, Run
from tests.helpers import run
from tests.interop.otlp import TRACE, post_protobuf, protobuf, run_id, span

ROOT, GENERATION = "d000000000000001", "d000000000000002"


@pytest.fixture
def langfuse(client, acme_key, acme_client):
    """The Langfuse SDK's client: Basic auth, its public key as the user name and our key as the secret."""
    post_protobuf(acme_client, protobuf(span(ROOT, "answer"), span(GENERATION, "llm", parent=ROOT)))
    client.defaults["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(f"pk-lf-x:{acme_key}".encode()).decode()
    return client


def score(client, body, *, expect: int = 200):
    response = client.post("/api/public/scores", orjson.dumps(body), content_type="application/json")
    assert response.status_code == expect, response.content
    return response.json()


@pytest.mark.parametrize(
    ("value", "data_type", "rating"),
    [(0.9, "NUMERIC", "positive"), (0.2, None, "negative"), (4, "NUMERIC", "positive"), (1, "BOOLEAN", "positive"),
     (False, "BOOLEAN", "negative"), ("correct", "CATEGORICAL", "positive"), ("bad", "CATEGORICAL", "negative")],
)  # fmt: skip
def test_a_score_on_an_observation_is_feedback_on_its_run(langfuse, value, data_type, rating):
    body = {"name": "quality", "value": value, "traceId": TRACE, "observationId": GENERATION, "comment": "ok"}
    if data_type:
        body["dataType"] = data_type
    answer = score(langfuse, body)
    assert answer["id"]
    feedback = Feedback.objects.get()
    assert (feedback.run_id, feedback.rating, feedback.comment, feedback.score_name) == (
        run_id(GENERATION),
        rating,
        "ok",
        "quality",
    )
    assert feedback.score_value == (value if data_type != "BOOLEAN" else bool(value))
    stored = run(run_id(GENERATION))
    assert stored.positive_feedback == (rating == "positive") and stored.negative_feedback == (rating == "negative")


def test_a_score_on_a_trace_rates_its_root_run(langfuse):
    score(langfuse, {"name": "helpfulness", "value": 0.9, "traceId": TRACE})
    assert Feedback.objects.get().run_id == run_id(ROOT) and run(run_id(ROOT)).positive_feedback


def test_the_same_score_twice_is_stored_once(langfuse):
    body = {"id": "score-1", "name": "helpfulness", "value": 0.9, "traceId": TRACE}
    score(langfuse, body)
    score(langfuse, body)
    assert Feedback.objects.count() == 1


def test_the_score_api_shows_on_the_runs_api(langfuse, acme_client):
    score(langfuse, {"name": "correctness", "value": "correct", "traceId": TRACE, "observationId": GENERATION})
    detail = acme_client.get(f"/api/run/{run_id(GENERATION)}").json()
    assert detail["feedback"][0] | {"timestamp": None} == {
        "rating": "positive", "comment": "", "score_name": "correctness", "score_value": "correct",
        "message_id": None, "timestamp": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ([1], 400, "body: expected a score object"),
        ({"value": 1, "traceId": TRACE}, 400, "name: required"),
        ({"name": "q", "traceId": TRACE}, 400, "value: expected a number, a boolean or a string"),
        ({"name": "q", "value": {"a": 1}, "traceId": TRACE}, 400, "value: expected a number, a boolean or a string"),
        ({"name": "q", "value": "maybe", "traceId": TRACE}, 400, "value: 'maybe' does not say positive or negative"),
        ({"name": "q", "value": 1, "dataType": "VECTOR", "traceId": TRACE}, 400, "dataType: must be one of"),
        ({"name": "q", "value": 1, "sessionId": "s"}, 400, "traceId: required"),
        ({"name": "q", "value": 1, "traceId": "f" * 32}, 404, "traceId: no trace"),
    ],
)
def test_bad_scores(langfuse, body, status, message):
    answer = score(langfuse, body, expect=status)
    assert answer["message"].startswith(message)
    assert not Feedback.objects.exists()


def test_scores_need_a_key(client, acme_app):
    response = client.post("/api/public/scores", b'{"name": "q"}', content_type="application/json")
    assert response.status_code == 401


def test_score_create_items_of_the_ingestion_batch(langfuse):
    batch = [
        {"id": "e1", "type": "score-create", "timestamp": "2026-06-01T10:00:00Z",
         "body": {"id": "s1", "name": "valid_format", "value": 1, "dataType": "BOOLEAN", "traceId": TRACE,
                  "observationId": GENERATION}},
        {"id": "e2", "type": "score-create", "body": {"name": "q", "value": "maybe", "traceId": TRACE}},
        {"id": "e3", "type": "trace-create", "body": {"id": TRACE}},
    ]  # fmt: skip
    response = langfuse.post("/api/public/ingestion", orjson.dumps({"batch": batch}), content_type="application/json")
    assert response.status_code == 207
    body = response.json()
    assert body["successes"] == [{"id": "e1", "status": 201}]
    assert [(error["id"], error["status"]) for error in body["errors"]] == [("e2", 400), ("e3", 400)]
    assert Feedback.objects.get().score_name == "valid_format"
    assert Run.objects.count() == 2
