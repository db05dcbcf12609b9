"""@agent / @chain / @tool: nesting, names, metadata, input capture, errors, async, threads."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
import traceback
from datetime import datetime

import pytest

import flowxobservatory as fo


def ts(event: dict) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def test_it_nests_agent_chain_tool_and_llm_call(sdk, flushed, find):
    @fo.tool("search")
    def search(query: str) -> list[str]:
        time.sleep(0.02)
        return [query.upper()]

    @fo.chain("retrieve")
    def retrieve(query: str) -> list[str]:
        return search(query)

    @fo.agent("support-bot", user_id="u-42", tags=["beta"])
    def answer(question: str) -> str:
        docs = retrieve(question)
        with fo.llm_call("gpt-4o", input=[{"role": "user", "content": question}]) as call:
            call.set_usage(prompt_tokens=12, completion_tokens=5)
            call.set_output("the answer")
        return f"{docs[0]}!"

    assert answer("hello") == "HELLO!"
    events = flushed()

    assert [e["name"] for e in events] == [
        "agent_start",
        "chain_start",
        "tool_start",
        "tool_end",
        "chain_end",
        "llm_call",
        "agent_end",
    ]
    agent_start, agent_end = find(events, "agent_start"), find(events, "agent_end")
    chain_start, tool_start = find(events, "chain_start"), find(events, "tool_start")
    tool_end, llm = find(events, "tool_end"), find(events, "llm_call")

    assert agent_start["parent_run_id"] is None
    assert agent_end["run_id"] == agent_start["run_id"]
    assert chain_start["parent_run_id"] == agent_start["run_id"]
    assert tool_start["parent_run_id"] == chain_start["run_id"]
    assert llm["parent_run_id"] == agent_start["run_id"]
    assert (
        len({agent_start["run_id"], chain_start["run_id"], tool_start["run_id"], llm["run_id"]})
        == 4
    )

    for event in events:
        assert event["metadata"]["agent"] == "support-bot"
        assert event["metadata"]["user_id"] == "u-42"  # inherited by every child run
        assert event["metadata"]["tags"] == ["beta"]
        assert event["app_id"] == fo.get_client().config.app_id
        assert len(event["id"]) == 32
    assert len({event["id"] for event in events}) == len(events)

    assert (agent_start["run_name"], chain_start["run_name"], tool_start["run_name"]) == (
        "support-bot",
        "retrieve",
        "search",
    )
    assert (agent_start["type"], chain_start["type"], tool_start["type"], llm["type"]) == (
        "agent",
        "chain",
        "tool",
        "llm",
    )
    assert agent_start["input"] == {"question": "hello"}
    assert agent_end["output"] == "HELLO!"
    assert agent_end["status"] == "success"
    assert tool_end["output"] == ["HELLO"]
    assert ts(tool_end) - ts(tool_start) >= 0.02
    assert ts(agent_start) <= ts(tool_start) <= ts(llm) <= ts(agent_end)
    assert agent_start["timestamp"].endswith("Z")
    assert len(agent_start["timestamp"]) == 27

    assert llm["model"] == "gpt-4o"
    assert llm["run_name"] == "gpt-4o"
    assert (llm["prompt_tokens"], llm["completion_tokens"], llm["total_tokens"]) == (12, 5, 17)
    assert llm["output"] == "the answer"
    assert llm["status"] == "success"
    assert 0 <= llm["latency_s"] < 1


def test_bare_decorator_names_the_run_after_the_qualname(sdk, flushed, find):
    @fo.tool
    def lookup(key):
        return key * 2

    assert lookup(21) == 42
    assert lookup.__name__ == "lookup"  # functools.wraps
    start = find(flushed(), "tool_start")
    assert start["run_name"] == (
        "test_bare_decorator_names_the_run_after_the_qualname.<locals>.lookup"
    )
    assert "agent" not in start["metadata"]  # no enclosing agent


def test_methods_leave_out_self_and_cls(sdk, flushed):
    class Bot:
        @fo.agent("bot")
        def reply(self, text, loud=False):
            return text.upper() if loud else text

        @fo.tool
        @classmethod
        def build(cls, size):
            return size

        @classmethod
        @fo.tool
        def build2(cls, size):
            return size

        @fo.tool
        @staticmethod
        def helper(value):
            return value

    assert Bot().reply("hi", loud=True) == "HI"
    assert Bot.build(3) == 3
    assert Bot.build2(4) == 4
    assert Bot.helper(5) == 5
    inputs = [e["input"] for e in flushed() if e["name"].endswith("_start")]
    assert inputs == [{"text": "hi", "loud": True}, {"size": 3}, {"size": 4}, {"value": 5}]


def test_input_binds_positional_keyword_defaults_and_varargs(sdk, flushed):
    @fo.chain
    def step(a, b=2, *rest, c, d=4, **extra):
        return a

    step(1, 5, 6, 7, c=3, z=9)
    step(1, c=3)
    first, second = [e["input"] for e in flushed() if e["name"] == "chain_start"]
    assert first == {"a": 1, "b": 5, "rest": [6, 7], "c": 3, "extra": {"z": 9}, "d": 4}
    assert second == {"a": 1, "c": 3, "b": 2, "d": 4}


def test_exception_is_reported_then_reraised_unchanged(sdk, flushed, find):
    original = ValueError("bad input")

    @fo.tool("parse")
    def parse(text):
        raise original

    @fo.agent("bot")
    def run():
        return parse("x")

    with pytest.raises(ValueError, match="bad input") as caught:
        run()

    assert caught.value is original
    # The innermost frame is still the line that raised, inside parse().
    innermost = traceback.extract_tb(caught.value.__traceback__)[-1]
    assert innermost.name == "parse"
    assert innermost.line == "raise original"

    events = flushed()
    for name in ("tool_end", "agent_end"):
        end = find(events, name)
        assert end["status"] == "error"
        assert end["error"]["type"] == "ValueError"
        assert end["error"]["message"] == "bad input"
        assert "raise original" in end["error"]["stack"]
        assert "output" not in end


def test_async_runs_nest_across_gathered_tasks(sdk, flushed, find):
    seen: dict[str, str | None] = {}

    @fo.tool("fetch")
    async def fetch(n: int) -> int:
        seen[f"fetch-{n}"] = fo.current_run_id()
        await asyncio.sleep(0.01 * (3 - n))  # finish out of order
        return n * 10

    @fo.agent("async-bot")
    async def run() -> list[int]:
        seen["agent"] = fo.current_run_id()
        return await asyncio.gather(fetch(0), fetch(1), asyncio.create_task(fetch(2)))

    assert asyncio.run(run()) == [0, 10, 20]
    events = flushed()
    agent_id = find(events, "agent_start")["run_id"]
    assert seen["agent"] == agent_id
    starts = [e for e in events if e["name"] == "tool_start"]
    assert len(starts) == 3
    assert all(e["parent_run_id"] == agent_id for e in starts)
    assert all(e["metadata"]["agent"] == "async-bot" for e in starts)
    assert {seen[f"fetch-{n}"] for n in range(3)} == {e["run_id"] for e in starts}
    assert sorted(e["output"] for e in events if e["name"] == "tool_end") == [0, 10, 20]
    assert find(events, "agent_end")["output"] == [0, 10, 20]


def test_async_exception_is_reraised_unchanged(sdk, flushed, find):
    original = KeyError("k")

    @fo.agent
    async def run():
        await asyncio.sleep(0)
        raise original

    with pytest.raises(KeyError) as caught:
        asyncio.run(run())
    assert caught.value is original
    assert find(flushed(), "agent_end")["error"]["type"] == "KeyError"


def test_threads_nest_with_copy_context_but_plain_threads_do_not(sdk, flushed, find):
    @fo.tool("work")
    def work(label):
        return label

    @fo.agent("threaded")
    def run():
        copied = threading.Thread(target=contextvars.copy_context().run, args=(work, "copied"))
        plain = threading.Thread(target=work, args=("plain",))
        for thread in (copied, plain):
            thread.start()
            thread.join()

    run()
    events = flushed()
    agent_id = find(events, "agent_start")["run_id"]
    starts = {e["input"]["label"]: e for e in events if e["name"] == "tool_start"}
    assert starts["copied"]["parent_run_id"] == agent_id
    assert starts["copied"]["metadata"]["agent"] == "threaded"
    assert starts["plain"]["parent_run_id"] is None  # Python semantics: no inherited context
    assert "agent" not in starts["plain"]["metadata"]


def test_tracing_off_sends_nothing_and_calls_straight_through(server):
    fo.configure(api_url=server.url, api_key="k", tracing=False, flush_interval=0.05)

    @fo.agent("bot")
    def run(x):
        assert fo.current_run_id() is None
        fo.track_event("chat", role="user", content="hi")
        with fo.llm_call("gpt-4o") as call:
            call.set_usage(prompt_tokens=1)
        return x + 1

    @fo.tool
    def gen():
        yield from (1, 2)

    @fo.tool
    def boom():
        raise RuntimeError("still raised")

    assert run(1) == 2
    assert list(gen()) == [1, 2]
    with pytest.raises(RuntimeError, match="still raised"):
        boom()
    assert fo.record_llm_call("gpt-4o", prompt_tokens=1) is None
    assert fo.flush(2)
    time.sleep(0.15)  # three flush intervals: anything queued would have been sent
    assert server.requests == []


def test_tracing_can_be_switched_off_by_the_environment(server, monkeypatch):
    monkeypatch.setenv("OBSERVATORY_TRACING", "off")
    fo.configure(api_url=server.url, api_key="k")

    @fo.tool
    def run():
        return "ok"

    assert run() == "ok"
    assert fo.flush(2)
    assert server.requests == []


def test_generators_are_traced_to_exhaustion(sdk, flushed, find):
    @fo.tool("stream")
    def stream(n):
        yield from range(n)
        return "done"

    @fo.agent("bot")
    def run():
        gen = stream(3)
        items = list(gen)
        return items

    assert run() == [0, 1, 2]
    events = flushed()
    assert find(events, "tool_start")["parent_run_id"] == find(events, "agent_start")["run_id"]
    end = find(events, "tool_end")
    assert end["status"] == "success"
    assert end["output"] == [0, 1, 2]


def test_generator_frame_is_not_current_in_the_consumers_loop_body(sdk, flushed):
    inside: list[str | None] = []
    outside: list[str | None] = []

    @fo.tool
    def stream():
        for i in range(2):
            inside.append(fo.current_run_id())
            yield i

    for _ in stream():
        outside.append(fo.current_run_id())
    assert outside == [None, None]
    assert inside[0] is not None
    assert inside == [inside[0]] * 2
    flushed()


def test_generator_closed_early_ends_the_run_with_items_so_far(sdk, flushed, find):
    cleaned = []

    @fo.tool
    def stream():
        try:
            yield from range(100)
        finally:
            cleaned.append(True)

    for item in stream():
        if item == 2:
            break
    assert cleaned == [True]
    end = find(flushed(), "tool_end")
    assert end["status"] == "success"
    assert end["output"] == [0, 1, 2]


def test_generator_error_and_send_throw_are_forwarded(sdk, flushed, find):
    @fo.tool
    def echo():
        received = yield "ready"
        try:
            yield f"got {received}"
        except KeyError:
            yield "handled"
        raise ValueError("end")

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("x") == "got x"
    assert gen.throw(KeyError("k")) == "handled"
    with pytest.raises(ValueError, match="end"):
        next(gen)
    end = find(flushed(), "tool_end")
    assert end["status"] == "error"
    assert end["error"]["type"] == "ValueError"
    assert end["output"] == ["ready", "got x", "handled"]


def test_generator_output_is_capped(server, flushed, find):
    fo.configure(api_url=server.url, api_key="k", flush_interval=0.05, max_generator_items=3)

    @fo.tool
    def stream():
        yield from range(10)

    assert sum(stream()) == 45
    assert find(flushed(), "tool_end")["output"] == [0, 1, 2, "…[7 more item(s) not captured]"]


def test_async_generators_are_traced(sdk, flushed, find):
    @fo.tool("astream")
    async def astream(n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    @fo.agent("bot")
    async def run():
        return [item async for item in astream(3)]

    assert asyncio.run(run()) == [0, 1, 2]
    events = flushed()
    assert find(events, "tool_start")["parent_run_id"] == find(events, "agent_start")["run_id"]
    assert find(events, "tool_end")["output"] == [0, 1, 2]


def test_child_runs_inherit_user_and_merge_tags(sdk, flushed, find):
    @fo.tool(tags=["io", "beta"])
    def read():
        return 1

    @fo.agent("bot", user_id="alice", user_props={"plan": "pro"}, tags=["beta"])
    def run():
        return read()

    run()
    tool_start = find(flushed(), "tool_start")
    assert tool_start["metadata"]["user_id"] == "alice"
    assert tool_start["metadata"]["user_props"] == {"plan": "pro"}
    assert tool_start["metadata"]["tags"] == ["beta", "io"]


def test_nested_agents_report_the_nearest_agent(sdk, flushed):
    @fo.tool
    def leaf():
        return 1

    @fo.agent("inner")
    def inner():
        return leaf()

    @fo.agent("outer")
    def outer():
        return inner()

    outer()
    agents = {e["name"] + ":" + e["run_name"]: e["metadata"]["agent"] for e in flushed()}
    assert agents["agent_start:outer"] == "outer"
    assert agents["agent_start:inner"] == "inner"
    assert agents["tool_start:test_nested_agents_report_the_nearest_agent.<locals>.leaf"] == (
        "inner"
    )


def test_identify_attributes_runs_started_inside_the_block(sdk, flushed, find):
    @fo.agent("bot")
    def run():
        return fo.current_run_id()

    with fo.identify("user-7", {"plan": "free"}):
        run_id = run()
    events = flushed()
    start = find(events, "agent_start")
    assert start["run_id"] == run_id
    assert start["metadata"]["user_id"] == "user-7"
    assert start["metadata"]["user_props"] == {"plan": "free"}


def test_current_run_id_is_none_outside_runs(sdk):
    assert fo.current_run_id() is None

    @fo.chain
    def run():
        return fo.current_run_id()

    assert run() is not None
    assert fo.current_run_id() is None


def test_an_sdk_failure_never_reaches_the_app(sdk, monkeypatch, caplog):
    def broken_emit(event):
        raise RuntimeError("sdk bug")

    monkeypatch.setattr(sdk, "emit", broken_emit)

    @fo.agent
    def run():
        fo.track_event("custom", run_id="r")
        with fo.llm_call("gpt-4o"):
            pass
        return "result"

    assert run() == "result"
    assert "internal error in start_run" in caplog.text
    assert "internal error in track_event" in caplog.text
    assert "internal error in llm_call" in caplog.text


def test_flush_and_shutdown_are_harmless_before_any_configuration():
    assert fo.flush(0.1) is True
    assert fo.shutdown(0.1) is True
