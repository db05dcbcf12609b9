"""The consumer: wire format, batching, retry policy, drop counters, non-blocking callers."""

from __future__ import annotations

import gzip
import json
import logging
import time

import pytest

import flowxobservatory as fo


def emit(count: int) -> None:
    for index in range(count):
        fo.track_event("ping", run_id=f"run-{index}", index=index)


def test_batches_are_gzipped_json_with_the_bearer_key(sdk, server, api_key):
    emit(3)
    assert fo.flush(5)
    (request,) = server.requests
    assert request.path == "/api/report"
    assert request.headers["Authorization"] == f"Bearer {api_key}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Content-Encoding"] == "gzip"
    body = json.loads(gzip.decompress(request.raw))
    assert list(body) == ["events"]
    assert [event["index"] for event in body["events"]] == [0, 1, 2]
    assert fo.get_client().stats.sent == 3


def test_a_dead_server_never_blocks_the_app_and_events_are_counted(dead_url, setup_sdk):
    setup_sdk(dead_url, max_retries=2)

    @fo.tool
    def work(i):
        return i

    started = time.perf_counter()
    assert [work(i) for i in range(50)] == list(range(50))
    assert time.perf_counter() - started < 0.5  # only enqueueing happened on this thread
    assert fo.flush(5)
    stats = fo.get_client().stats
    assert stats.failed == 100
    assert stats.sent == 0
    assert stats.pending == 0
    assert stats.retries >= 2


def test_a_slow_server_never_blocks_the_caller(server, setup_sdk):
    server.script({"delay": 1.5}, {"delay": 1.5})
    setup_sdk(server.url, timeout=0.3, max_retries=0, batch_size=1)

    @fo.tool
    def work(i):
        return i

    work(0)  # the consumer is now stuck waiting on the server
    assert server.wait_for(lambda s: len(s.requests) >= 1, timeout=2)
    slowest = 0.0
    for i in range(200):
        began = time.perf_counter()
        work(i)
        slowest = max(slowest, time.perf_counter() - began)
    assert slowest < 0.1  # the server takes 1.5 s per request
    assert fo.flush(10)
    stats = fo.get_client().stats
    assert stats.failed >= 2  # the timed-out batches were given up, not retried forever
    assert stats.sent + stats.failed == 402


def test_429_with_retry_after_is_delivered_once_after_the_delay(sdk, server):
    server.script({"status": 429, "headers": {"Retry-After": "1"}, "body": {"error": "slow"}})
    emit(1)
    assert fo.flush(5)
    first, second = server.requests
    assert second.at - first.at >= 0.9
    assert first.raw == second.raw  # same bytes, so the same event id for de-duplication
    assert len(server.accepted_events) == 1
    stats = fo.get_client().stats
    assert (stats.sent, stats.retries, stats.failed) == (1, 1, 0)


def test_retry_after_is_bounded_by_max_retry_after(server, setup_sdk):
    server.script({"status": 503, "headers": {"Retry-After": "3600"}})
    setup_sdk(server.url, max_retry_after=0.1)
    emit(1)
    started = time.monotonic()
    assert fo.flush(5)
    assert time.monotonic() - started < 2
    assert len(server.requests) == 2
    assert len(server.accepted_events) == 1


def test_5xx_is_retried_with_backoff_then_delivered(sdk, server):
    server.script({"status": 500}, {"status": 502})
    emit(2)
    assert fo.flush(5)
    assert [r.status for r in server.requests] == [500, 502, 200]
    assert len({r.raw for r in server.requests}) == 1
    assert [e["index"] for e in server.accepted_events] == [0, 1]
    assert fo.get_client().stats.retries == 2


def test_5xx_gives_up_after_bounded_attempts(server, caplog, setup_sdk):
    server.script(*[{"status": 500}] * 10)
    setup_sdk(server.url, max_retries=3)
    emit(4)
    with caplog.at_level(logging.WARNING, logger="flowxobservatory"):
        assert fo.flush(5)
    assert len(server.requests) == 4  # 1 try + 3 retries
    stats = fo.get_client().stats
    assert (stats.failed, stats.sent) == (4, 0)
    assert caplog.text.count("dropped 4 event(s) after 4 attempt(s): HTTP 500") == 1


def test_207_errors_are_logged_once_and_not_retried(sdk, server, caplog):
    errors = [{"index": 1, "error": "input: nesting too deep"}]
    server.script({"status": 207, "body": {"accepted": 1, "rejected": 1, "errors": errors}})
    with caplog.at_level(logging.WARNING, logger="flowxobservatory"):
        emit(2)
        assert fo.flush(5)
        time.sleep(0.2)  # several flush intervals: a retry would show up here
    assert len(server.requests) == 1
    assert caplog.text.count("input: nesting too deep") == 1
    # The log names the refused event, not just its index in the batch.
    assert "ping (run run-1) at index 1: input: nesting too deep" in caplog.text
    stats = fo.get_client().stats
    assert (stats.sent, stats.rejected, stats.retries) == (1, 1, 0)


@pytest.mark.parametrize("status", [400, 401, 403, 413])
def test_4xx_drops_the_batch_without_retrying(sdk, server, caplog, status):
    server.script({"status": status, "body": {"error": "nope"}})
    with caplog.at_level(logging.WARNING, logger="flowxobservatory"):
        emit(2)
        assert fo.flush(5)
        time.sleep(0.2)
    assert len(server.requests) == 1
    assert caplog.text.count(f"HTTP {status}") == 1
    stats = fo.get_client().stats
    assert (stats.rejected, stats.retries, stats.sent) == (2, 0, 0)


def test_a_full_queue_drops_new_events_and_counts_them(server, caplog, setup_sdk):
    # A long interval and big batches keep the consumer asleep while the queue fills.
    setup_sdk(server.url, max_queue_size=5, flush_interval=60, batch_size=1000)
    with caplog.at_level(logging.WARNING, logger="flowxobservatory"):
        started = time.perf_counter()
        emit(8)
        assert time.perf_counter() - started < 0.1
    stats = fo.get_client().stats
    assert (stats.dropped, stats.pending) == (3, 5)
    assert caplog.text.count("queue is full") == 1  # warned once, not per event
    assert fo.flush(5)
    assert [e["index"] for e in server.events] == [0, 1, 2, 3, 4]


def test_batches_are_capped_by_count(server, setup_sdk):
    setup_sdk(server.url, batch_size=3, flush_interval=60)
    emit(7)
    assert fo.flush(5)
    sizes = [len(r.events) for r in server.requests]
    assert sum(sizes) == 7
    assert max(sizes) <= 3


def test_batches_are_capped_by_bytes(server, setup_sdk):
    setup_sdk(server.url, max_batch_bytes=4096, max_event_bytes=4000, flush_interval=60)
    for index in range(10):
        fo.track_event("blob", run_id="r", index=index, data="x" * 1500)
    assert fo.flush(5)
    assert len(server.requests) >= 4
    assert all(len(gzip.decompress(r.raw)) <= 4096 for r in server.requests)
    assert sorted(e["index"] for e in server.events) == list(range(10))


def test_an_oversized_event_is_truncated_not_dropped(server, setup_sdk):
    setup_sdk(server.url, max_event_bytes=20_000, max_batch_bytes=20_000)

    @fo.tool("big")
    def big(text):
        return {"echo": text[:10], "small": True}

    big("y" * 100_000)
    assert fo.flush(5)
    start = next(e for e in server.events if e["name"] == "tool_start")
    assert len(json.dumps(start, ensure_ascii=False).encode()) <= 20_000
    assert "truncated by flowxobservatory" in start["input"]
    assert start["input"].startswith('{"text":"yyyy')
    assert start["run_name"] == "big"
    assert start["run_id"]
    end = next(e for e in server.events if e["name"] == "tool_end")
    assert end["output"] == {"echo": "y" * 10, "small": True}  # small events untouched
    assert fo.get_client().stats.truncated == 1


def test_flush_returns_false_when_its_timeout_passes(dead_url, setup_sdk):
    setup_sdk(dead_url, backoff_base=5, backoff_max=5, max_retries=3)
    emit(1)
    started = time.monotonic()
    assert fo.flush(0.3) is False
    assert time.monotonic() - started < 1


def test_shutdown_is_bounded_and_later_events_start_a_new_consumer(sdk, server, api_key):
    emit(1)
    assert fo.shutdown(timeout=2)
    assert len(server.events) == 1
    emit(1)  # re-created lazily with the same explicit configuration
    assert fo.flush(5)
    assert len(server.events) == 2
    assert server.requests[-1].headers["Authorization"] == f"Bearer {api_key}"
