"""ObservabilityStack: builds and runs the exporters a config asks for.

    stack = ObservabilityStack(ObservabilityConfig(http_port=9090)).start()
    stack.bind_engine(engine)            # KV pool health + live gauges
    print(stack.url)                     # /metrics, /health, /livez, /readyz
    ...
    stack.shutdown()

Every part subscribes to one bus (the process default unless given another), so the
emitters never know which exporters run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agentic_llm.errors import AgenticError
from agentic_llm.observability.config import ObservabilityConfig
from agentic_llm.observability.events import EventBus, get_default_bus
from agentic_llm.observability.health import (
    HEALTHY,
    UNHEALTHY,
    CheckResult,
    HealthRegistry,
    Heartbeat,
    aga_store_check,
    heartbeat_check,
    kv_pool_check,
    store_reachable_check,
)

__all__ = ["ObservabilityStack"]

_log = logging.getLogger(__name__)


class ObservabilityStack:
    """Owns the exporters, health registry and HTTP server of one process.

    Args:
        config: what to run.
        bus: the bus to listen on (the process default when None).
        alert_callbacks: extra alert channels (callables taking an ``Alert``).
        span_exporter: an OpenTelemetry span exporter to use instead of the one
            ``config.tracing_exporter`` names (turns tracing on).
    """

    def __init__(
        self,
        config: ObservabilityConfig | None = None,
        *,
        bus: EventBus | None = None,
        alert_callbacks: tuple[Callable[[Any], Any], ...] = (),
        span_exporter: Any = None,
    ) -> None:
        self.config = config or ObservabilityConfig()
        self.bus = bus if bus is not None else get_default_bus()
        self.health = HealthRegistry()
        self.prometheus: Any = None
        self.server: Any = None
        self.logs: Any = None
        self.audit: Any = None
        self.alerts: Any = None
        self.tracer: Any = None
        self._alert_callbacks = alert_callbacks
        self._span_exporter = span_exporter
        self._started = False
        self._lock = threading.Lock()
        self._unbind: list[Callable[[], None]] = []  # undone at shutdown

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> ObservabilityStack:
        """Create and start every enabled part; idempotent."""
        with self._lock:
            if self._started or not self.config.enabled:
                return self
            c = self.config
            try:
                self._start_parts(c)
            except BaseException:
                self._stop_parts()
                raise
            self._started = True
        return self

    def _start_parts(self, c: ObservabilityConfig) -> None:
        if c.prometheus_enabled:
            from agentic_llm.observability.prometheus import PrometheusExporter

            self.prometheus = PrometheusExporter(
                self.bus, const_labels=c.prometheus_labels, request_labels=c.request_labels,
                max_label_values=c.max_label_values, queue_size=c.queue_size,
            ).start()
        if c.log_enabled:
            from agentic_llm.observability.logs import LogExporter

            self.logs = LogExporter(self.bus, c).start()
        if c.audit_enabled:
            from agentic_llm.observability.audit import AuditRecorder, open_storage

            storage = open_storage(c.audit_storage_backend, c.audit_storage_path,
                                   retention_days=c.audit_retention_days,
                                   max_records=c.audit_max_records)
            self.audit = AuditRecorder(self.bus, storage, batch_size=c.audit_batch_size,
                                       flush_interval=c.audit_flush_interval,
                                       queue_size=c.queue_size).start()
        if c.alert_enabled:
            self.alerts = self._make_alerts(c).start()
        if c.tracing_exporter is not None or self._span_exporter is not None:
            from agentic_llm.observability.tracing import RequestTracer, make_span_exporter

            exporter = self._span_exporter or make_span_exporter(
                c.tracing_exporter or "console", endpoint=c.tracing_endpoint)
            self.tracer = RequestTracer(self.bus, exporter, service_name=c.tracing_service_name,
                                        queue_size=c.queue_size).start()
        if c.http_enabled:
            from agentic_llm.observability.httpserver import ObservabilityHTTPServer

            self.server = ObservabilityHTTPServer(
                exporter=self.prometheus, health=self.health, host=c.http_host,
                port=c.http_port, health_path=c.health_path,
            ).start()

    def _make_alerts(self, c: ObservabilityConfig) -> Any:
        from agentic_llm.observability.alerts import (
            AlertManager,
            LogChannel,
            WebhookChannel,
            default_rules,
        )

        rules = (default_rules() if c.alert_default_rules else ()) + c.alert_rules
        channels: list[Callable[[Any], Any]] = []
        if c.alert_log:
            channels.append(LogChannel())
        if c.alert_webhook_url:
            channels.append(WebhookChannel(c.alert_webhook_url, timeout_s=c.alert_webhook_timeout_s))
        channels.extend(self._alert_callbacks)
        return AlertManager(self.bus, rules, channels, window_s=c.alert_window_s,
                            eval_interval_s=c.alert_eval_interval_s,
                            labels=dict(c.prometheus_labels), queue_size=c.queue_size)

    def _stop_parts(self) -> None:
        for part in (self.server, self.tracer, self.alerts, self.audit, self.logs, self.prometheus):
            if part is None:
                continue
            try:
                part.stop()
            except Exception:  # noqa: BLE001 - shut the rest down regardless
                _log.exception("stopping %s failed", type(part).__name__)
        if self.audit is not None:
            self.audit.storage.close()
        self.health.close()

    def shutdown(self) -> None:
        """Stop everything, flushing logs, audit records and spans."""
        with self._lock:
            unbind, self._unbind = self._unbind, []
            for undo in unbind:
                undo()
            if not self._started:
                return
            self._stop_parts()
            self._started = False

    def __enter__(self) -> ObservabilityStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- wiring ------------------------------------------------------------------------
    @property
    def url(self) -> str | None:
        """Base URL of the HTTP server, when it runs."""
        return self.server.url if self.server is not None else None

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until threaded exporters have handled every event emitted so far;
        False when one did not in time or the audit storage refused a write."""
        ok = self.bus.flush(timeout_s)
        if self.audit is not None:
            try:
                self.audit.flush()
            except AgenticError:  # storage failing: counted, records kept for the next try
                ok = False
        if self.tracer is not None:
            ok = self.tracer.flush(timeout_s) and ok
        if self.alerts is not None:
            ok = self.alerts.flush(timeout_s) and ok
        return ok

    def bind_engine(self, engine: Any, *, heartbeat: Heartbeat | None = None,
                    loop_thread: threading.Thread | None = None) -> None:
        """Health and live gauges from an engine with a ``stats()`` mapping.

        Registers ``kv_pool`` (readiness) and, given a heartbeat or loop thread,
        ``engine_loop`` (liveness and readiness).
        """
        stats = _stats_fn(engine)
        self.health.register("kv_pool", kv_pool_check(stats))
        if heartbeat is not None or loop_thread is not None:
            self.health.register(
                "engine_loop", heartbeat_check(heartbeat or _AlwaysFresh(), thread=loop_thread),
                liveness=True,
            )
        if self.prometheus is not None:
            self.prometheus.bind_engine_stats(stats)

    def bind_cache_store(self, ping: Callable[[], Any], *, name: str = "cache_store") -> None:
        """A non-critical reachability check: an unreachable store degrades service."""
        self.health.register(name, store_reachable_check(ping, name=name), critical=False)

    def bind_pipeline(self, pipeline: Any, *, store: str = "default") -> None:
        """Everything a serving pipeline offers, as ``serve`` runs it.

        - the engine loop: an :class:`EngineObserver` on the loop itself (step,
          prefix-cache, jump-forward events; requests come from the pipeline), its
          liveness (``engine_loop``: thread alive and beating, idle included) and the
          stats it publishes (KV pool readiness check, live gauges): no other thread
          reads the engine;
        - readiness: ``admission`` (unhealthy once the pipeline drains);
        - a ``model`` label on every metric;
        - the subgraph cache's lookup counters;
        - the Prometheus collectors the pipeline's parts offer
          (``pipeline.metric_collectors()``, e.g. the library registry's per-version
          A/B metrics), so this stack never imports the layers above it.
        """
        from agentic_llm.observability.engine_probe import EngineObserver

        loop = pipeline.loop
        self.health.register("engine_loop", loop.health_check(), liveness=True)
        self.health.register("kv_pool", kv_pool_check(loop.stats))
        admission = getattr(pipeline, "admission", None)
        if admission is not None:
            self.health.register("admission", _admission_check(admission))
        observer = EngineObserver(pipeline.engine, self.bus, emit_requests=False)
        loop.add_observer(observer)
        self._unbind.append(lambda: loop.remove_observer(observer))
        if self.prometheus is not None:
            self.prometheus.bind_engine_stats(loop.stats)
            compiler = getattr(getattr(pipeline, "parts", None), "compiler", None)
            record = getattr(compiler, "compile_seconds", None)
            if record is not None:
                self.prometheus.bind_grammar_compiles(lambda: record)
            name = getattr(pipeline, "model_name", "")
            if name:
                self.prometheus.add_const_labels({"model": str(name)})
        parts = getattr(pipeline, "parts", None)
        cache = getattr(parts, "cache", None)
        if cache is not None:
            self.bind_subgraph_cache(cache, store=store)
        collectors = getattr(pipeline, "metric_collectors", None)
        for collector in collectors() if collectors is not None else ():
            self.add_collector(collector)

    def add_collector(self, collector: Any) -> None:
        """Serve a Prometheus collector (``collect()`` yielding metric families) on
        ``/metrics`` with the other metrics; nothing when the exporter is off."""
        if self.prometheus is not None:
            self.prometheus.registry.register(collector)

    def bind_subgraph_cache(self, cache: Any, *, store: str = "default",
                            ping: Callable[[], Any] | None = None) -> None:
        """Lookup counters from ``cache.stats()`` at scrape time; ``ping`` checks its store."""
        if self.prometheus is not None:
            self.prometheus.bind_subgraph_cache(cache.stats, store=store)
        if ping is not None:
            self.bind_cache_store(ping, name="subgraph_store")

    def bind_aga(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        """Health of the AGA knowledge store from ``stats()`` (see ``aga_store_check``)."""
        self.health.register("aga_store", aga_store_check(stats), critical=False)

    def generate_dashboard(self, path: str | Path) -> Path:
        """Write the Grafana dashboard JSON to ``path``."""
        from agentic_llm.observability.dashboard import write_dashboard

        return write_dashboard(path)


def _admission_check(admission: Any) -> Callable[[], Any]:
    def check() -> CheckResult:
        if admission.draining:
            return CheckResult(UNHEALTHY, "draining: admission is closed")
        return CheckResult(HEALTHY, "")

    return check


class _AlwaysFresh(Heartbeat):
    """A heartbeat for loops that only report a thread: never stale."""

    def age(self) -> float:
        return 0.0


def _stats_fn(engine: Any) -> Callable[[], Mapping[str, Any]]:
    stats = engine.stats if hasattr(engine, "stats") else engine

    def read() -> Mapping[str, Any]:
        s = stats()
        return s if isinstance(s, Mapping) else vars(s)

    return read
