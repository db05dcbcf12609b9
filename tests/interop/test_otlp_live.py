"""The real OpenTelemetry SDK and OTLP/HTTP exporter, configured only as a user would (environment
variables), export a GenAI trace to the live test server; the runs API shows it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from apps.costs.models import ModelCost
from apps.tracing.models import Run
from tests.conftest import key_client


class RecordingExporter(OTLPSpanExporter):
    """The exporter as shipped; remembers what each export returned."""

    results: list[SpanExportResult]

    def export(self, spans):
        result = super().export(spans)
        self.results.append(result)
        return result


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_the_otlp_exporter_against_the_live_server(live_server, acme_key, monkeypatch, compression):
    # A live server's test flushes the tables between tests, the migrated price table included.
    prices = {"prompt_price": Decimal("0.00015"), "completion_price": Decimal("0.0006")}
    ModelCost.objects.update_or_create(model="gpt-4o-mini", valid_from=None, defaults=prices)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", live_server.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{acme_key}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", compression)
    exporter = RecordingExporter()
    exporter.results = []
    provider = TracerProvider(resource=Resource.create({"service.name": "live-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")

    with tracer.start_as_current_span("invoke_agent live", attributes={"gen_ai.conversation.id": "c-live"}) as root:
        with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
            chat.set_attributes({
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100,
            })  # fmt: skip
        with tracer.start_as_current_span("execute_tool search") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.record_exception(ValueError("no results"))
            tool.set_status(Status(StatusCode.ERROR, "no results"))
        trace_id = format(root.get_span_context().trace_id, "032x")
        root_id = f"{trace_id}-{root.get_span_context().span_id:016x}"
    provider.shutdown()
    assert exporter.results == [SpanExportResult.SUCCESS] * 3

    runs = key_client(acme_key).get("/api/run/", {"type": ""}).json()["results"]
    by_name = {r["name"]: r for r in runs}
    assert set(by_name) == {"invoke_agent live", "chat gpt-4o-mini", "execute_tool search"}
    chat_run, tool_run = by_name["chat gpt-4o-mini"], by_name["execute_tool search"]
    assert chat_run["parent_run_id"] == tool_run["parent_run_id"] == root_id
    assert (chat_run["type"], chat_run["model"], chat_run["total_tokens"]) == ("llm", "gpt-4o-mini", 1100)
    assert float(chat_run["cost"]) == pytest.approx(0.00021)
    assert (tool_run["status"], tool_run["error"]["message"]) == ("error", "no results")
    assert (by_name["invoke_agent live"]["agent"], by_name["invoke_agent live"]["thread_id"]) == ("live-bot", "c-live")


def test_a_wrong_key_is_a_failed_export(live_server, acme_app, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20obs_nothing_here")
    finished = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(finished))
    with provider.get_tracer("tests").start_as_current_span("refused"):
        pass
    exporter = OTLPSpanExporter(endpoint=f"{live_server.url}/v1/traces")
    assert exporter.export(finished.get_finished_spans()) == SpanExportResult.FAILURE
    assert not Run.objects.exists()
