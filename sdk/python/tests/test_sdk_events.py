"""track_event (saved, chat, feedback, custom) and recording LLM calls."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

import pytest

import flowxobservatory as fo


def test_saved_defaults_to_the_current_run(sdk, flushed, find):
    @fo.agent("bot")
    def run():
        fo.track_event("saved")
        return fo.current_run_id()

    run_id = run()
    fo.track_event("saved", run_id="explicit-run")
    events = flushed()
    saved = [e for e in events if e["name"] == "saved"]
    assert [e["run_id"] for e in saved] == [run_id, "explicit-run"]
    assert saved[0]["metadata"]["agent"] == "bot"
    assert find(events, "agent_start")["run_id"] == run_id


def test_saved_without_a_run_is_not_sent(sdk, flushed, caplog):
    with caplog.at_level(logging.WARNING, logger="flowxobservatory"):
        fo.track_event("saved")
    assert "saved needs run_id" in caplog.text
    assert flushed() == []


def test_chat_messages_carry_role_content_thread_and_run(sdk, flushed):
    @fo.agent("support", user_id="u1")
    def run():
        fo.track_event(
            "chat", role="user", content="Where is my order?", thread_id="t-1", message_id="m-1"
        )
        fo.track_event(
            "chat", role="assistant", content="On its way.", thread_id="t-1", message_id="m-2"
        )
        return fo.current_run_id()

    run_id = run()
    fo.track_event("chat", role="user", content="thanks", thread_id="t-1")
    chats = [e for e in flushed() if e["name"] == "chat"]
    assert [(c["role"], c["content"], c["thread_id"]) for c in chats] == [
        ("user", "Where is my order?", "t-1"),
        ("assistant", "On its way.", "t-1"),
        ("user", "thanks", "t-1"),
    ]
    assert [c.get("message_id") for c in chats] == ["m-1", "m-2", None]
    assert [c.get("run_id") for c in chats] == [run_id, run_id, None]
    assert chats[0]["metadata"]["agent"] == "support"
    assert chats[0]["metadata"]["user_id"] == "u1"
    assert chats[0]["metadata"]["thread_id"] == "t-1"
    assert all(c["timestamp"].endswith("Z") for c in chats)


def test_feedback_on_a_run_or_a_message(sdk, flushed):
    @fo.agent("bot")
    def run():
        # Addressed to a message: the current run must not be attached as well.
        fo.track_event("feedback", message_id="m-2", rating="negative", comment="wrong")
        return fo.current_run_id()

    run_id = run()
    fo.track_event("feedback", run_id=run_id, rating="positive", comment="great")
    feedback = [e for e in flushed() if e["name"] == "feedback"]
    assert feedback[0]["message_id"] == "m-2"
    assert "run_id" not in feedback[0]
    assert (feedback[0]["rating"], feedback[0]["comment"]) == ("negative", "wrong")
    assert (feedback[1]["run_id"], feedback[1]["rating"]) == (run_id, "positive")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rating": "positive"}, "feedback needs run_id or message_id"),
        ({"run_id": "r", "rating": "meh"}, "rating must be one of"),
    ],
)
def test_invalid_feedback_is_logged_not_sent(sdk, flushed, caplog, fields, message):
    with caplog.at_level(logging.WARNING, logger="flowxobservatory"):
        fo.track_event("feedback", **fields)
    assert message in caplog.text
    assert flushed() == []


def test_custom_events_carry_arbitrary_fields(sdk, flushed, find):
    @fo.tool
    def run():
        fo.track_event("cache_hit", key="user:1", size=3, metadata={"region": "eu"})
        return fo.current_run_id()

    run_id = run()
    hit = find(flushed(), "cache_hit")
    assert (hit["key"], hit["size"], hit["run_id"]) == ("user:1", 3, run_id)
    assert hit["metadata"]["region"] == "eu"


def test_llm_call_records_an_error_and_propagates_it(sdk, flushed, find):
    original = TimeoutError("provider timed out")

    def call_provider():
        with fo.llm_call("gpt-4o-mini", input="hi"):
            time.sleep(0.01)
            raise original

    with pytest.raises(TimeoutError) as caught:
        call_provider()
    assert caught.value is original
    llm = find(flushed(), "llm_call")
    assert llm["status"] == "error"
    assert llm["error"]["type"] == "TimeoutError"
    assert llm["error"]["message"] == "provider timed out"
    assert llm["latency_s"] >= 0.01
    assert llm["input"] == "hi"


def test_llm_call_reads_provider_usage_objects(sdk, flushed, find):
    usage = SimpleNamespace(
        prompt_tokens=100,
        completion_tokens=20,
        total_tokens=120,
        prompt_tokens_details=SimpleNamespace(cached_tokens=64),
    )

    @fo.agent("bot")
    def run():
        with fo.llm_call("gpt-4o", input="q", params={"temperature": 0}) as call:
            assert fo.current_run_id() == call.run_id
            call.set_usage(usage)
        return call.run_id

    run_id = run()
    llm = find(flushed(), "llm_call")
    assert llm["run_id"] == run_id
    assert (
        llm["prompt_tokens"],
        llm["completion_tokens"],
        llm["total_tokens"],
        llm["cached_prompt_tokens"],
    ) == (100, 20, 120, 64)
    assert llm["metadata"]["params"] == {"temperature": 0}
    assert llm["metadata"]["agent"] == "bot"


def test_anthropic_usage_counts_cache_reads_and_writes_as_prompt_tokens():
    usage = {
        "input_tokens": 50,
        "output_tokens": 10,
        "cache_read_input_tokens": 2000,
        "cache_creation_input_tokens": 100,
    }
    # The server's convention (OpenAI's): prompt tokens include the cached ones.
    assert fo.llm.usage_from(usage) == {
        "prompt_tokens": 2150,
        "completion_tokens": 10,
        "cached_prompt_tokens": 2000,
    }


def test_llm_call_works_as_an_async_context_manager(sdk, flushed, find):
    async def run():
        async with fo.llm_call("claude-3-5-sonnet") as call:
            await asyncio.sleep(0.01)
            call.set_usage({"input_tokens": 7, "output_tokens": 3})
            call.set_output({"text": "ok"})

    asyncio.run(run())
    llm = find(flushed(), "llm_call")
    assert (llm["prompt_tokens"], llm["completion_tokens"], llm["total_tokens"]) == (7, 3, 10)
    assert llm["output"] == {"text": "ok"}
    assert llm["latency_s"] >= 0.01


def test_record_llm_call_reports_a_finished_call(sdk, flushed, find):
    end = time.time() - 5

    @fo.chain("draft")
    def run():
        return fo.record_llm_call(
            "gpt-4o",
            input="q",
            output="a",
            prompt_tokens=10,
            completion_tokens=-3,
            latency_s=1.5,
            cached_prompt_tokens=2**60,
            end_time=end,
            name="drafting",
            tags=["x"],
        )

    run_id = run()
    events = flushed()
    llm = find(events, "llm_call")
    assert llm["run_id"] == run_id
    assert llm["parent_run_id"] == find(events, "chain_start")["run_id"]
    assert llm["run_name"] == "drafting"
    assert llm["latency_s"] == 1.5
    assert llm["prompt_tokens"] == 10
    assert "completion_tokens" not in llm
    assert "cached_prompt_tokens" not in llm  # over 2^53 - 1: refused by the server
    assert "total_tokens" not in llm
    assert llm["metadata"]["tags"] == ["x"]
    assert llm["timestamp"].startswith(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(end)))
