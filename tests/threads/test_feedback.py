"""Feedback lands on its run or message, whichever arrives first, and shows where it belongs."""

from apps.threads.models import Thread
from apps.tracing.models import Event, Feedback, Run
from tests.helpers import ingest, report

RUN = {"name": "llm_call", "run_id": "r1", "timestamp": "2026-05-01T10:00:00Z", "model": "m"}
MESSAGE = {"name": "chat", "role": "assistant", "content": "answer", "message_id": "msg-1", "run_id": "r1",
           "thread_id": "t", "timestamp": "2026-05-01T10:00:01Z"}  # fmt: skip
ON_RUN = {"name": "feedback", "run_id": "r1", "rating": "positive", "comment": "great"}
ON_MESSAGE = {"name": "feedback", "message_id": "msg-1", "rating": "negative", "comment": "wrong"}


def flags() -> tuple[bool, bool]:
    run = Run.objects.get(run_id="r1")
    return run.positive_feedback, run.negative_feedback


def test_feedback_on_a_run_after_the_run(acme_app):
    ingest(acme_app, RUN)
    ingest(acme_app, ON_RUN)
    assert flags() == (True, False)


def test_feedback_on_a_run_before_the_run(acme_app):
    ingest(acme_app, ON_RUN)
    assert Feedback.objects.get().run_id == "r1"
    ingest(acme_app, RUN)
    assert flags() == (True, False)


def test_feedback_on_a_message_rates_the_messages_run_in_any_order(acme_app):
    orders = [
        [RUN, MESSAGE, ON_MESSAGE],
        [ON_MESSAGE, MESSAGE, RUN],
        [MESSAGE, ON_MESSAGE, RUN],
        [ON_MESSAGE, RUN, MESSAGE],
    ]
    for order in orders:
        for model in (Run, Thread, Feedback, Event):
            model.objects.all().delete()
        for event in order:
            ingest(acme_app, event)
        assert flags() == (False, True), order
        assert Thread.objects.get().has_feedback


def test_feedback_on_a_run_shows_on_the_message_linked_to_it(acme_client, acme_app):
    ingest(acme_app, RUN, MESSAGE, ON_RUN, ON_MESSAGE)
    thread = Thread.objects.get()
    message = acme_client.get(f"/api/threads/{thread.pk}/").json()["messages"][0]
    assert sorted((f["rating"], f["comment"]) for f in message["feedback"]) == [
        ("negative", "wrong"),
        ("positive", "great"),
    ]
    run = acme_client.get("/api/run/r1/").json()
    assert sorted(f["rating"] for f in run["feedback"]) == ["negative", "positive"]


def test_redelivered_feedback_is_stored_once(acme_app):
    ingest(acme_app, RUN, ON_RUN)
    ingest(acme_app, ON_RUN, ON_RUN)
    assert Feedback.objects.count() == 1


def test_an_invalid_rating_is_a_per_event_error(acme_client, acme_app):
    response = report(acme_client, RUN, {**ON_RUN, "rating": "5 stars"}, expect=207)
    assert response.json()["errors"] == [{"index": 1, "error": "rating: must be 'positive' or 'negative'"}]
    assert not Feedback.objects.exists()


def test_the_runs_api_filters_by_feedback(acme_client, acme_app):
    ingest(
        acme_app,
        {**RUN, "run_id": "good"}, {**RUN, "run_id": "bad"}, {**RUN, "run_id": "none"}, {**RUN, "run_id": "both"},
        {**ON_RUN, "run_id": "good"}, {**ON_RUN, "run_id": "both"},
        {**ON_MESSAGE, "run_id": "bad", "message_id": None}, {**ON_MESSAGE, "run_id": "both", "message_id": None},
    )  # fmt: skip

    def ids(query):
        return sorted(r["run_id"] for r in acme_client.get(f"/api/run/?{query}").json()["results"])

    assert ids("has_feedback=true") == ["bad", "both", "good"]
    assert ids("has_feedback=false") == ["none"]
    assert ids("feedback=positive") == ["both", "good"]
    assert ids("feedback=negative") == ["bad", "both"]
    assert acme_client.get("/api/run/?feedback=meh").json()["error"].startswith("feedback: ")
    assert acme_client.get("/api/run/?has_feedback=perhaps").status_code == 400
