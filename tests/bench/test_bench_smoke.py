"""Tiny runs of bench/ingest.py and bench/query.py against a live server, so the benchmarks never rot.

They check the shape of the results (numbers present, nothing lost, no HTTP errors), never a
speed: the real measurements are made by hand on PostgreSQL (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import json

import pytest
from django.db import connection

from bench import ingest, pages, query


@pytest.mark.django_db(transaction=True)
def test_ingest_posts_batches_and_every_accepted_event_lands(live_server, acme_app, acme_key, tmp_path):
    result = ingest.run(
        url=live_server.url,
        key=acme_key,
        concurrencies=[1],
        batch_sizes=[50],
        seconds=1.0,
        warmup_seconds=0,
        copy_rows_count=500,
        copy_repeat=1,
        json_path=tmp_path / "ingest.json",
        quiet=True,
    )

    assert result["app_id"] == str(acme_app.public_id)
    [level] = result["levels"]
    assert level["requests"] >= 1
    assert level["events_accepted"] == level["events_sent"] == 50 * level["requests"]
    assert level["errors"] == 0, level["error_samples"] + level["failures"]
    assert level["statuses"] == {"200": level["requests"]}
    assert level["verified"] == "OK"
    assert level["db_events"] == level["events_accepted"]
    assert level["db_runs"] == level["runs_accepted"] > 0
    assert level["events_per_s"] > 0 and level["requests_per_s"] > 0
    assert 0 < level["p50_ms"] <= level["p99_ms"] <= level["max_ms"]
    assert result["summary"]["all_verified"] and result["summary"]["errors"] == 0
    assert 700 < result["settings"]["avg_event_bytes"] < 1400  # ~1 KB events
    if connection.vendor == "postgresql":
        assert result["copy"]["rows_stored"] == 500
        assert result["copy"]["rows_per_s"] > 0
        assert level["accepted_copy_ratio"] >= level["copy_ratio"] > 0
        with connection.cursor() as cursor:  # the scratch table is dropped
            cursor.execute("SELECT to_regclass(%s)", [ingest.SCRATCH_TABLE])
            assert cursor.fetchone()[0] is None
    else:
        assert "PostgreSQL-only" in result["copy"]["skipped"]
        assert level["copy_ratio"] is None and level["accepted_copy_ratio"] is None
    assert "events/s" in ingest.report(result)
    assert json.loads((tmp_path / "ingest.json").read_text())["levels"][0]["verified"] == "OK"


@pytest.mark.django_db(transaction=True)
def test_query_times_every_filter_first_and_deep_page_and_a_trace(live_server, acme_app, acme_key, tmp_path):
    result = query.run(
        url=live_server.url,
        key=acme_key,
        runs=200,
        repeat=2,
        trace_spans=30,
        thread_messages=20,
        json_path=tmp_path / "query.json",
        quiet=True,
    )

    assert result["fill"]["runs"] == 200
    listing = result["run_list"]
    assert len(listing) > 40
    broken = [e for e in listing if e["verdict"] == "ERROR" or (e["note"] or "").startswith("deep cursor failed")]
    assert not broken, [(e["query"], e["first"]["error"], e["deep"] and e["deep"]["error"], e["note"]) for e in broken]
    for entry in listing:
        first = entry["first"]
        page_size = int(entry["params"].get("limit", 50))
        assert first["status"] == 200
        assert first["rows"] == min(entry["matching_rows"], page_size), entry["query"]
        assert first["client_p50_ms"] > 0 and first["client_p95_ms"] >= first["client_p50_ms"]
        if entry["matching_rows"] >= 2:
            assert entry["deep"]["status"] == 200 and entry["deep"]["client_p95_ms"] > 0
    unfiltered = next(e for e in listing if e["params"] == {})
    assert unfiltered["matching_rows"] == 200
    assert unfiltered["deep"]["rows"] == 200 - int(200 * query.DEEP) - 1  # the rows after the cursor's row
    trace = result["trace"]
    assert trace["nodes_returned"] == 30 and trace["error"] is None and trace["client_p95_ms"] > 0
    thread = result["thread"]
    assert "skipped" in thread or thread["verdict"] == "ok", thread
    assert result["summary"]["errors"] == []
    assert "GET /api/run/" in query.report(result)
    assert json.loads((tmp_path / "query.json").read_text())["trace"]["spans"] == 30


def test_server_timing_and_percentiles():
    from bench.common import percentile, server_timing_ms

    assert server_timing_ms("app;dur=12.3") == 12.3
    assert server_timing_ms('db;dur=1, app;desc="view";dur=5.5') == 5.5
    assert server_timing_ms("application;dur=9") is None
    assert server_timing_ms(None) is None
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert percentile([], 50) is None


def test_recalc_reprices_a_small_fill_and_a_second_pass_changes_nothing(db):
    from bench import recalc

    report = recalc.run(runs=300, app_slug="smoke-recalc")
    first, second, one_model = report["results"]
    assert first["examined"] == first["changed"] == 300
    assert second["examined"] == 300 and second["changed"] == 0
    assert 0 < one_model["changed"] < 300


def test_sdk_overhead_runs_quick_and_delivers_everything(tmp_path):
    import subprocess
    import sys

    from django.conf import settings

    out = tmp_path / "sdk.json"
    result = subprocess.run(
        [sys.executable, "bench/sdk_overhead.py", "--quick", "--json", str(out)],
        cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert set(report["us_per_call"]) >= {"plain", "tracing_off", "traced_caller"}
    delivery = report["delivery"]["end_to_end_scenario"]
    assert delivery["dropped"] == 0 and report["delivery"]["server_received_events"] > 0


@pytest.mark.django_db(transaction=True)
def test_ingest_fails_when_no_worker_applies_the_queue(live_server, acme_key, settings, monkeypatch, tmp_path):
    settings.OBSERVATORY_ASSEMBLY = "worker"
    monkeypatch.setattr("apps.ingestion.tasks.schedule_assembly", lambda: None)  # the worker never wakes
    monkeypatch.setattr(ingest, "STALL_SECONDS", 0.5)
    with pytest.raises(ingest.BenchmarkFailed, match="none applied .* is a Celery worker running"):
        ingest.run(
            url=live_server.url, key=acme_key, concurrencies=[1], batch_sizes=[10], seconds=0.3,
            warmup_seconds=0, copy=False, json_path=tmp_path / "ingest.json", quiet=True,
        )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_ingest_fails_when_every_request_fails(live_server, acme_key, monkeypatch, tmp_path):
    def broken(**kwargs):
        raise RuntimeError("broken server")

    monkeypatch.setattr("apps.ingestion.api.views.ingest_batch", broken)
    with pytest.raises(ingest.BenchmarkFailed, match="every request of the level failed: .*HTTP 500"):
        ingest.run(
            url=live_server.url, key=acme_key, concurrencies=[1], batch_sizes=[10], seconds=0.3,
            warmup_seconds=0, copy=False, json_path=tmp_path / "ingest.json", quiet=True,
        )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_pages_times_llm_calls_every_single_filter_the_run_page_and_threads(live_server, acme_app, acme_key, tmp_path):
    result = pages.run(
        url=live_server.url, key=acme_key, runs=200, repeat=2, trace_spans=30, json_path=tmp_path / "pages.json",
        quiet=True,
    )  # fmt: skip

    measured = {p["page"]: p for p in result["pages"]}
    assert len(measured) == len(pages.SINGLE_FILTERS) + 3  # the filters, a next page, the run page, threads
    assert not result["summary"]["errors"], [(p["page"], p.get("error")) for p in result["pages"]]
    assert measured["LLM Calls: next page"]["status"] == 200
    assert measured["run page (30 spans)"]["bytes"] > 10_000
    assert all(p["server_p95_ms"] is not None for p in result["pages"])
    assert "run page p95" in pages.report(result)


@pytest.mark.django_db(transaction=True)
def test_purge_deletes_the_expired_runs_under_load_and_keeps_saved_traces(live_server, acme_app, acme_key, tmp_path):
    from bench import purge

    result = purge.run(
        url=live_server.url, key=acme_key, runs=500, seconds=0.5, json_path=tmp_path / "purge.json", quiet=True
    )

    fill, deleted = result["fill"], result["purge"]["deleted"]
    assert fill["runs"] == 500 and fill["events"] == 1000
    assert fill["saved_traces"] == 5 and fill["before"]["protected_expired"] >= 5 * 5
    assert 450 < fill["before"]["expired"] < 500  # retention 1 day of a 90-day spread
    assert (
        deleted["runs"]
        == fill["expected_purged"]["runs"]
        == fill["before"]["expired"] - fill["before"]["protected_expired"]
    )
    assert deleted["events"] == fill["expected_purged"]["events"]
    assert result["checks"] and all(result["checks"].values()), result["checks"]
    after = result["after_counts"]
    assert after["expired"] == after["protected_expired"] == fill["before"]["protected_expired"]
    assert after["protected_events"] == fill["before"]["protected_events"] > 0
    assert result["summary"]["ingestion_errors"] == 0 and result["summary"]["all_verified"]
    assert result["during"] and all(lv["verified"] == "OK" for lv in result["during"])
    assert result["summary"]["ratio"] > 0 and result["purge"]["seconds"] > 0
    assert "ingestion during the purge" in purge.report(result)
    assert json.loads((tmp_path / "purge.json").read_text())["purge"]["deleted"]["runs"] == deleted["runs"]


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_ingest_in_worker_mode_finds_every_accepted_event_applied(
    live_server, acme_key, celery_worker, settings, tmp_path
):
    # Production's default with REDIS_URL: the requests queue, a real Celery worker stores and applies.
    from django.core.cache import cache

    from apps.ingestion.tasks import WAKE_FLAG

    settings.OBSERVATORY_ASSEMBLY = "worker"
    cache.delete(WAKE_FLAG)  # a wake-up left by another test would wait for a beat this test has not
    result = ingest.run(
        url=live_server.url, key=acme_key, concurrencies=[1, 2], batch_sizes=[50], seconds=1.0,
        warmup_seconds=0, copy=False, json_path=tmp_path / "ingest.json", quiet=True,
    )  # fmt: skip
    for level in result["levels"]:
        assert level["errors"] == 0 and level["verified"] == "OK", level
        assert level["db_events"] == level["events_accepted"] > 0  # stored by the worker, each once
        assert level["db_runs"] == level["runs_accepted"] > 0
        assert level["end_to_end_events_per_s"] > 0
