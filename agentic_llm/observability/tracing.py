"""OpenTelemetry traces of a request's stages, built from bus events.

Emitters already report ``request.stage`` (plan, cache lookup, grammar compile,
queue, prefill, decode) and ``request.finished``; :class:`RequestTracer` collects the
stages of each request and, when it finishes, exports one ``agentic.request`` span
with a child span per stage, timed from the events. Nothing here runs unless a tracer
is created (``tracing_exporter`` set in the config): with tracing off there is no
subscription and no OpenTelemetry import.

The tracer uses its own ``TracerProvider`` rather than the global one, so it cannot
clash with an application's tracing setup.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.observability import kinds as K
from agentic_llm.observability.events import Event, EventBus, Subscription

__all__ = ["RequestTracer", "make_span_exporter"]

_NS = 1_000_000_000


def make_span_exporter(kind: str, *, endpoint: str | None = None) -> Any:
    """A span exporter for ``console``, ``memory`` or ``otlp``.

    Raises:
        AgenticError: ERR_RESOURCE_UNAVAILABLE when the exporter's package is missing,
            ERR_INVALID_CONFIG for an unknown kind.
    """
    try:
        if kind == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            return ConsoleSpanExporter()
        if kind == "memory":
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )

            return InMemorySpanExporter()
        if kind == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            return OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
    except ImportError as exc:
        raise AgenticError(
            ErrorCode.RESOURCE_UNAVAILABLE,
            f"tracing exporter {kind!r} needs a package that is not installed ({exc.name}); "
            "install agentic-llm[observability] (and opentelemetry-exporter-otlp for otlp)",
        ) from exc
    raise AgenticError(ErrorCode.INVALID_CONFIG,
                       f"unknown tracing exporter {kind!r}; choose console, memory or otlp")


class RequestTracer:
    """Turns stage events into OpenTelemetry spans.

    Args:
        bus: the bus carrying ``request.stage`` / ``request.finished`` events.
        span_exporter: an OpenTelemetry ``SpanExporter``.
        service_name: the ``service.name`` resource attribute.
        batch: export through a ``BatchSpanProcessor`` (else synchronously on the
            tracer's own thread, which suits tests).
        max_pending: requests whose stages are held while waiting for their finish;
            the oldest are dropped past this, so lost finishes cannot leak memory.
    """

    def __init__(
        self, bus: EventBus, span_exporter: Any, *, service_name: str = "agentic-llm",
        batch: bool = True, max_pending: int = 10_000, queue_size: int = 10_000,
    ) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        self.bus = bus
        self.span_exporter = span_exporter
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        processor = BatchSpanProcessor(span_exporter) if batch else SimpleSpanProcessor(span_exporter)
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("agentic_llm")
        self.max_pending = max_pending
        self.queue_size = queue_size
        self._pending: OrderedDict[str, list[Mapping[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self._sub: Subscription | None = None
        self.exported = 0

    def start(self) -> RequestTracer:
        """Subscribe (threaded: exporting must not run on the emitter's thread)."""
        if self._sub is None:
            self._sub = self.bus.subscribe(
                self.observe, kinds=(K.REQUEST_STAGE, K.REQUEST_FINISHED), threaded=True,
                queue_size=self.queue_size, name="tracing",
            )
        return self

    def observe(self, event: Event) -> None:
        """Collect a stage, or emit the spans of a finished request."""
        rid = str(event.fields.get("request_id", ""))
        if event.kind == K.REQUEST_STAGE:
            stage = dict(event.fields)
            stage.setdefault("start_ts", event.ts - float(stage.get("duration_s") or 0.0))
            with self._lock:
                self._pending.setdefault(rid, []).append(stage)
                self._pending.move_to_end(rid)
                while len(self._pending) > self.max_pending:
                    self._pending.popitem(last=False)
            return
        with self._lock:
            stages = self._pending.pop(rid, [])
        self._export(rid, event, stages)

    def _export(self, rid: str, finished: Event, stages: list[Mapping[str, Any]]) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode

        f = finished.fields
        end = finished.ts
        starts = [float(s["start_ts"]) for s in stages]
        if f.get("e2e_s") is not None:
            starts.append(end - float(f["e2e_s"]))
        start = min(starts) if starts else end
        attrs: dict[str, Any] = {"request.id": rid, "request.outcome": str(f.get("outcome", "")),
                 "request.error_code": str(f.get("error_code") or ""),
                 "request.prompt_tokens": int(f.get("prompt_tokens") or 0),
                 "request.output_tokens": int(f.get("output_tokens") or 0)}
        root = self.tracer.start_span("agentic.request", attributes=attrs,
                                      start_time=int(start * _NS))
        if f.get("outcome") in ("error", "timeout", "refused"):
            root.set_status(Status(StatusCode.ERROR, str(f.get("error_code") or f["outcome"])))
        ctx = trace.set_span_in_context(root)
        for s in sorted(stages, key=lambda s: float(s["start_ts"])):
            s_start = float(s["start_ts"])
            s_end = s_start + float(s.get("duration_s") or 0.0)
            span = self.tracer.start_span(f"agentic.{s.get('stage', 'stage')}", context=ctx,
                                          start_time=int(s_start * _NS),
                                          attributes={"request.id": rid})
            span.end(end_time=int(s_end * _NS))
        root.end(end_time=int(max(end, start) * _NS))
        self.exported += 1

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait for queued events and export finished spans."""
        ok = self._sub.flush(timeout_s) if self._sub is not None else True
        return bool(self.provider.force_flush(int(timeout_s * 1000))) and ok

    def stop(self) -> None:
        """Unsubscribe and shut the provider down (exports what is buffered)."""
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        self.provider.shutdown()
