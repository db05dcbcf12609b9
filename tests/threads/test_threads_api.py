"""GET /api/threads/ and /api/threads/<id>/."""

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.costs.models import ModelCost
from apps.threads.models import Thread
from tests.helpers import ingest

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def chat(content, minutes, **fields):
    meta = {"agent": fields.pop("agent", "bot"), "user_id": fields.pop("user", "u1"), "user_email": "u@example.com"}
    return {"name": "chat", "role": fields.pop("role", "user"), "content": content,
            "timestamp": (T0 + timedelta(minutes=minutes)).isoformat(), "metadata": meta, **fields}  # fmt: skip


@pytest.fixture
def conversations(acme_app):
    ModelCost.objects.create(model="m", prompt_price=Decimal("0.001"), completion_price=Decimal("0.001"))
    ingest(
        acme_app,
        chat("hello", 0, thread_id="support-1", message_id="a1"),
        {"name": "llm_call", "run_id": "r1", "timestamp": (T0 + timedelta(minutes=1)).isoformat(), "latency_s": 2.5,
         "model": "m", "prompt_tokens": 1000, "completion_tokens": 1000},
        chat("<b>hi</b>", 1, role="assistant", thread_id="support-1", message_id="a2", run_id="r1"),
        chat("thanks", 3, thread_id="support-1", message_id="a3"),
        {"name": "feedback", "message_id": "a2", "rating": "positive", "comment": "nice"},
        chat("sales question", 60, agent="sales", user="u2"),
        chat("later", 500, agent="bot", user="u3"),
    )  # fmt: skip


def listed(client, query=""):
    response = client.get(f"/api/threads/?{query}")
    assert response.status_code == 200, response.content
    return [t["preview"] for t in response.json()["results"]]


def test_the_list_is_newest_activity_first_with_the_spec_fields(acme_client, acme_app, conversations):
    body = acme_client.get("/api/threads/").json()
    assert [t["preview"] for t in body["results"]] == ["later", "sales question", "thanks"]
    support = body["results"][2]
    assert support == {
        "id": Thread.objects.get(thread_id="support-1").pk, "thread_id": "support-1", "app_id": str(acme_app.public_id),
        "agent": "bot", "user_id": "u1", "user_email": "u@example.com", "started_at": "2026-05-01T10:00:00Z",
        "ended_at": "2026-05-01T10:03:00Z", "message_count": 3, "total_tokens": 2000, "total_cost": 0.002,
        "preview": "thanks", "has_feedback": True,
    }  # fmt: skip
    assert body["results"][1]["thread_id"] is None


@pytest.mark.parametrize(
    "query,expected",
    [
        ("agent=sales", ["sales question"]),
        ("user_id=u1", ["thanks"]),
        ("user_email=u@example.com", ["later", "sales question", "thanks"]),
        ("has_feedback=true", ["thanks"]),
        ("has_feedback=false", ["later", "sales question"]),
        ("from=2026-05-01T11:00:00Z", ["later", "sales question"]),
        ("to=2026-05-01T11:00:00Z", ["sales question", "thanks"]),
        ("from=2026-05-01T10:03:00Z&to=2026-05-01T10:03:00Z", ["thanks"]),
    ],
)
def test_each_filter(acme_client, conversations, query, expected):
    assert listed(acme_client, query) == expected


@pytest.mark.parametrize("query", ["has_feedback=maybe", "from=yesterday", "limit=501", "cursor=x"])
def test_bad_values_are_a_400_naming_the_parameter(acme_client, conversations, query):
    response = acme_client.get(f"/api/threads/?{query}")
    assert response.status_code == 400 and response.json()["error"].startswith(query.split("=")[0] + ": ")


def test_cursor_pagination_walks_every_thread_once(acme_client, acme_app):
    ingest(acme_app, *[chat(f"m{n}", n, thread_id=f"t{n}") for n in range(25)])
    seen, url = [], "/api/threads/?limit=7"
    while url:
        body = acme_client.get(url).json()
        seen += [t["thread_id"] for t in body["results"]]
        url = body["next"]
    assert seen == [f"t{n}" for n in reversed(range(25))]


def test_the_detail_has_messages_with_latency_tokens_cost_and_feedback(acme_client, conversations):
    thread = Thread.objects.get(thread_id="support-1")
    messages = acme_client.get(f"/api/threads/{thread.pk}/").json()["messages"]
    assert [(m["message_id"], m["role"], m["content"]) for m in messages] == [
        ("a1", "user", "hello"), ("a2", "assistant", "<b>hi</b>"), ("a3", "user", "thanks")
    ]  # fmt: skip
    first, answer, thanks = messages
    assert first["latency_s"] is None and first["tokens"] is None
    assert (answer["run_id"], answer["latency_s"], answer["tokens"], answer["cost"]) == ("r1", 2.5, 2000, 0.002)
    assert thanks["latency_s"] == 120.0  # no run: the time since the previous message
    assert [(f["rating"], f["comment"]) for f in answer["feedback"]] == [("positive", "nice")]
    assert first["feedback"] == [] and answer["timestamp"] == "2026-05-01T10:01:00Z"


def test_another_organizations_thread_is_a_404(acme_client, globex_client, globex_app, conversations):
    thread = Thread.objects.get(thread_id="support-1")
    assert globex_client.get(f"/api/threads/{thread.pk}/").status_code == 404
    assert acme_client.get(f"/api/threads/?app_id={globex_app.public_id}").status_code == 404
    assert listed(globex_client) == []


def test_a_user_sees_their_organizations_threads(client, alice, bob, globex_app, conversations):
    client.force_login(bob)
    assert client.get("/api/threads/").json()["results"] == []
    client.force_login(alice)
    assert len(client.get("/api/threads/").json()["results"]) == 3


def test_pinned_query_counts(acme_client, acme_app, conversations, django_assert_num_queries):
    ingest(acme_app, *[chat(f"m{n}", n, thread_id=f"extra{n}", run_id=f"r{n}") for n in range(40)])
    thread = Thread.objects.get(thread_id="support-1")
    acme_client.get("/api/threads/")
    with django_assert_num_queries(2):  # key lookup, the page of threads
        assert len(acme_client.get("/api/threads/?limit=40").json()["results"]) == 40
    # key lookup, the thread, its messages, their runs' subtree totals, the feedback
    with django_assert_num_queries(5):
        acme_client.get(f"/api/threads/{thread.pk}/")


@pytest.mark.parametrize(
    "payload",
    [
        {"v": "2026-05-01T00:00:00+00:00", "id": 2**64 + 1},
        {"v": "9999-12-31T23:59:59-01:00", "id": 1},
        {"v": "0001-01-01T00:00:00+01:00", "id": 1},
    ],
)
def test_a_cursor_out_of_range_is_a_400(acme_client, conversations, payload):
    token = base64.urlsafe_b64encode(json.dumps({"o": "-ended_at", **payload}).encode()).decode().rstrip("=")
    response = acme_client.get(f"/api/threads/?cursor={token}")
    assert response.status_code == 400 and response.json()["error"].startswith("cursor: ")


@pytest.mark.parametrize("query", ["from=9999-12-31T23:59:59-01:00", "to=0001-01-01T00:00:00%2B01:00"])
def test_a_date_filter_past_the_calendar_is_a_400(acme_client, conversations, query):
    response = acme_client.get(f"/api/threads/?{query}")
    assert response.status_code == 400 and response.json()["error"].startswith(query.split("=")[0] + ": ")
