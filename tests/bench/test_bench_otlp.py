"""A tiny run of bench/otlp.py against a live server, so the OTLP benchmark never rots.

It checks the shape of the results (both protocols measured, every span landed, no HTTP
errors), never a speed: the real measurement is made by hand on PostgreSQL (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import json

import pytest

from bench import otlp


@pytest.mark.parametrize("report_chat", [False, True])
@pytest.mark.django_db(transaction=True)
def test_otlp_and_report_batches_are_measured_and_every_span_lands(
    live_server, acme_app, acme_key, tmp_path, report_chat
):
    result = otlp.run(
        url=live_server.url,
        key=acme_key,
        concurrencies=[1],
        batch_size=20,
        seconds=1.0,
        warmup_seconds=0,
        report_chat=report_chat,
        json_path=tmp_path / "otlp.json",
        quiet=True,
    )

    assert result["app_id"] == str(acme_app.public_id)
    [level] = result["levels"]
    for protocol in (otlp.OTLP, otlp.REPORT):
        phase = level[protocol]
        assert phase["requests"] >= 1, protocol
        assert phase["spans_accepted"] == phase["spans_sent"] == 20 * phase["requests"], protocol
        assert phase["errors"] == 0, phase["error_samples"] + phase["failures"]
        assert phase["statuses"] == {"200": phase["requests"]}
        assert phase["verified"] == "OK"
        assert phase["db_runs"] == phase["db_run_events"] == phase["spans_accepted"]
        assert phase["spans_per_s"] > 0 and phase["requests_per_s"] > 0
        assert 0 < phase["p50_ms"] <= phase["p99_ms"] <= phase["max_ms"]
    # Each conversation's root span is also one exchange of its thread over OTLP: two messages.
    assert level[otlp.OTLP]["db_messages"] == level[otlp.OTLP]["messages_expected"] > 0
    if report_chat:  # the same messages, sent as chat events
        assert level[otlp.REPORT]["db_messages"] == level[otlp.REPORT]["messages_expected"] > 0
    else:
        assert level[otlp.REPORT]["db_messages"] == 0
    assert level["ratio"] > 0 and level["events_ratio"] > 0
    otlp_phase = level[otlp.OTLP]
    assert otlp_phase["events_per_s"] > otlp_phase["end_to_end_per_s"]  # the chat events count as events
    assert result["summary"]["all_verified"] and result["summary"]["errors"] == 0
    assert 800 < result["settings"]["avg_event_bytes"] < 1400  # ~1 KB per span, as /api/report JSON
    text = otlp.report(result)
    assert "OTLP /v1/traces" in text and "/api/report events/s" in text
    assert json.loads((tmp_path / "otlp.json").read_text())["levels"][0]["otlp"]["verified"] == "OK"


@pytest.mark.django_db(transaction=True)
def test_otlp_fails_when_spans_are_lost(live_server, acme_key, monkeypatch, tmp_path):
    # The view answers 200 and stores nothing.
    monkeypatch.setattr("apps.ingestion.api.interop.ingest_items", lambda owners, events, app: {})
    with pytest.raises(otlp.BenchmarkFailed, match="lost or refused spans"):
        otlp.run(
            url=live_server.url, key=acme_key, concurrencies=[1], batch_size=10, seconds=0.3, warmup_seconds=0,
            json_path=tmp_path / "otlp.json", quiet=True,
        )  # fmt: skip
    assert json.loads((tmp_path / "otlp.json").read_text())["levels"][0]["otlp"]["verified"] == "MISMATCH"


def test_the_report_events_carry_the_chat_messages_the_spans_imply():
    spans = otlp.SpanSource("0123456789abc", seed=7, conversation_share=0.5).take(53)  # traces cut mid-way
    plain, with_chat = otlp.report_events(spans), otlp.report_events(spans, with_chat=True)
    assert len(plain) == 53 and {event["type"] for event in plain} == {"agent", "chain", "tool", "llm"}
    assert len(with_chat) - len(plain) == otlp.chat_messages_of(spans) > 0
