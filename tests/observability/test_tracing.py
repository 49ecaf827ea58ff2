"""OpenTelemetry spans of request stages; nothing subscribes when tracing is off."""

from __future__ import annotations

import time

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agentic_llm.observability import emit
from agentic_llm.observability.config import ObservabilityConfig
from agentic_llm.observability.events import EventBus
from agentic_llm.observability.kinds import STAGES
from agentic_llm.observability.stack import ObservabilityStack
from agentic_llm.observability.tracing import RequestTracer, make_span_exporter


def test_stage_spans_nest_under_the_request() -> None:
    bus = EventBus()
    exporter = InMemorySpanExporter()
    tracer = RequestTracer(bus, exporter, batch=False).start()
    for stage in STAGES:
        with emit.StageTimer("req-1", stage, bus=bus):
            time.sleep(0.001)
    emit.request_stage("req-2", "plan", 0.001, bus=bus)
    emit.request_finished("req-1", "success", prompt_tokens=5, output_tokens=2, e2e_s=0.05,
                          bus=bus)
    emit.request_finished("req-2", "refused", error_code="ERR_NAMESPACE_VIOLATION", bus=bus)
    assert tracer.flush(5)
    spans = exporter.get_finished_spans()
    roots = [s for s in spans if s.name == "agentic.request"]
    assert len(roots) == 2
    r1 = next(s for s in roots if s.attributes["request.id"] == "req-1")
    children = [s for s in spans if s.parent is not None and s.parent.span_id == r1.context.span_id]
    assert [s.name for s in children] == [f"agentic.{st}" for st in STAGES]
    assert all(s.context.trace_id == r1.context.trace_id for s in children)
    assert r1.start_time <= min(s.start_time for s in children)
    assert r1.attributes["request.output_tokens"] == 2
    for s in children:
        assert s.end_time - s.start_time >= 1_000_000  # each stage slept 1 ms
    r2 = next(s for s in roots if s.attributes["request.id"] == "req-2")
    assert r2.status.status_code == StatusCode.ERROR
    tracer.stop()


def test_tracing_off_means_no_subscription() -> None:
    bus = EventBus()
    stack = ObservabilityStack(ObservabilityConfig(prometheus_enabled=False, http_enabled=False),
                               bus=bus).start()
    assert stack.tracer is None
    assert not bus.wants("request.stage")
    stack.shutdown()


def test_tracing_from_config() -> None:
    bus = EventBus()
    stack = ObservabilityStack(ObservabilityConfig(tracing_exporter="memory", http_enabled=False),
                               bus=bus).start()
    emit.request_stage("r", "prefill", 0.01, bus=bus)
    emit.request_finished("r", "success", bus=bus)
    assert stack.flush(5)
    names = sorted(s.name for s in stack.tracer.span_exporter.get_finished_spans())
    assert names == ["agentic.prefill", "agentic.request"]
    stack.shutdown()


def test_console_exporter_is_available() -> None:
    assert type(make_span_exporter("console")).__name__ == "ConsoleSpanExporter"
