"""The SDK against a live Observatory: what a traced app sends is what the server shows."""

import time
from decimal import Decimal

import flowxobservatory as fo
import pytest

from apps.costs.models import ModelCost
from apps.threads.models import Thread
from apps.tracing.models import Feedback, Run
from tests.conftest import key_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def traced(live_server, acme_key, monkeypatch):
    """The SDK configured against the live server with the Acme key, shut down afterwards."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    fo.configure(api_url=live_server.url, api_key=acme_key, tracing=True, flush_interval=0.05, timeout=10)
    yield
    fo.shutdown(timeout=5)


def deliver() -> None:
    assert fo.flush(timeout=15), "the SDK could not deliver its events"
    assert fo.get_client().stats.dropped == 0


def test_an_agent_appears_as_one_trace_with_parents_timing_tokens_and_cost(traced, acme_key):
    ModelCost.objects.update_or_create(
        model="gpt-4o",
        valid_from=None,
        defaults={"prompt_price": Decimal("0.0025"), "completion_price": Decimal("0.01")},
    )

    @fo.tool("search")
    def search(query: str) -> list[str]:
        time.sleep(0.05)
        return [f"doc about {query}"]

    @fo.chain("answer")
    def answer(question: str) -> str:
        docs = search(question)
        with fo.llm_call("gpt-4o", input=[{"role": "user", "content": question}]) as call:
            time.sleep(0.1)
            call.set_usage({"prompt_tokens": 2000, "completion_tokens": 500})
            call.set_output("It is sunny.")
        return f"{docs[0]}: It is sunny."

    @fo.agent("weather-bot", user_id="u-7", tags=["live"])
    def bot(question: str) -> str:
        return answer(question)

    assert bot("weather in Paris?") == "doc about weather in Paris?: It is sunny."
    deliver()

    agent = Run.objects.get(type="agent")
    trace = key_client(acme_key).get(f"/api/run/{agent.run_id}/").json()
    assert (trace["name"], trace["status"], trace["agent"], trace["user_id"]) == (
        "weather-bot",
        "success",
        "weather-bot",
        "u-7",
    )
    assert trace["input"] == {"question": "weather in Paris?"} and trace["tags"] == ["live"]
    [chain] = trace["children"]
    assert (chain["type"], chain["name"], chain["parent_run_id"]) == ("chain", "answer", agent.run_id)
    tool, llm = chain["children"]
    assert (tool["type"], tool["name"], tool["output"]) == ("tool", "search", ["doc about weather in Paris?"])
    assert (llm["type"], llm["model"], llm["prompt_tokens"], llm["completion_tokens"]) == ("llm", "gpt-4o", 2000, 500)
    assert llm["cost"] == pytest.approx(0.01) and trace["subtree_cost"] == pytest.approx(0.01)
    assert tool["latency_s"] >= 0.05 and llm["latency_s"] >= 0.1
    assert trace["latency_s"] >= chain["latency_s"] >= tool["latency_s"] + llm["latency_s"]
    assert {run["agent"] for run in (chain, tool, llm)} == {"weather-bot"}


def test_saved_chat_and_feedback_land(traced):
    @fo.agent("support")
    def reply(message: str) -> str:
        fo.track_event("chat", role="user", content=message, thread_id="conv-1", message_id="m1")
        fo.track_event("chat", role="assistant", content="<b>Hello</b>", thread_id="conv-1", message_id="m2")
        return "Hello"

    reply("hi")
    deliver()
    run = Run.objects.get(type="agent")
    fo.track_event("saved", run_id=run.run_id)
    fo.track_event("feedback", message_id="m2", rating="positive", comment="thanks")
    fo.track_event("feedback", run_id=run.run_id, rating="negative")
    deliver()

    run.refresh_from_db()
    assert run.saved and run.positive_feedback and run.negative_feedback
    thread = Thread.objects.get(thread_id="conv-1")
    assert thread.message_count == 2 and thread.preview == "<b>Hello</b>" and thread.has_feedback
    assert set(thread.messages.values_list("run_id", flat=True)) == {run.run_id}
    assert Feedback.objects.count() == 2


def test_an_exception_shows_as_an_error_run_and_the_app_sees_the_original(traced):
    failure = ValueError("no such city")

    @fo.tool("geocode")
    def geocode(city: str) -> None:
        raise failure

    with pytest.raises(ValueError) as raised:
        geocode("Atlantis")
    assert raised.value is failure
    deliver()
    run = Run.objects.get(type="tool")
    assert run.status == "error" and run.name == "geocode"
    assert run.error["type"] == "ValueError" and run.error["message"] == "no such city"
    assert "raise failure" in run.error["stack"]
