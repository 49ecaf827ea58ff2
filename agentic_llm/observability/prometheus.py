"""Turn bus events into the Prometheus metrics of the catalogue.

The exporter owns its own ``CollectorRegistry`` (never the global one, so several
engines or tests in one process do not collide), registers exactly the metrics of
:data:`~agentic_llm.observability.catalogue.CATALOGUE`, and subscribes to the bus for
the kinds that move them. Label values are bounded: free-form values (tenant,
target path) become labels only when configured, and every label keeps at most
``max_label_values`` distinct values, after which new values read ``other``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from agentic_llm import __version__
from agentic_llm.errors import ErrorCode
from agentic_llm.observability import kinds as K
from agentic_llm.observability.catalogue import CATALOGUE, MetricSpec
from agentic_llm.observability.events import Event, EventBus, Subscription
from agentic_llm.observability.metricstore import MetricStore, StoreCollector

__all__ = ["PrometheusExporter", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_ERROR_CODES = frozenset(c.value for c in ErrorCode)
_OUTCOMES = frozenset(K.OUTCOMES)
_ACTIVATION_WINDOW = 1000


class _LabelGuard:
    """Caps the number of distinct values each label may take."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, label: str, value: Any) -> str:
        v = "" if value is None else str(value)
        seen = self._seen.get(label)
        if seen is not None and v in seen:
            return v
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if v in seen:
                return v
            if len(seen) >= self._limit:
                return "other"
            seen.add(v)
            return v


class _BusCollector(Collector):
    """Exports the bus's own health counters at scrape time."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus

    def collect(self) -> Iterable[Metric]:
        s = self._bus.stats()
        yield CounterMetricFamily(
            "agentic_observability_subscriber_errors",
            "Events a subscriber raised on (dropped for that subscriber)",
            value=s.subscriber_errors,
        )
        yield CounterMetricFamily(
            "agentic_observability_events_dropped",
            "Events dropped because a threaded subscriber's queue was full",
            value=s.dropped,
        )


class _ConstLabelView:
    """A read-only view of a registry that adds constant labels to every sample."""

    def __init__(self, registry: CollectorRegistry, labels: Mapping[str, str]) -> None:
        self._registry = registry
        self._labels = dict(labels)

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            out = Metric(family.name, family.documentation, family.type, family.unit)
            out.samples = [s._replace(labels={**self._labels, **s.labels}) for s in family.samples]
            yield out


class PrometheusExporter:
    """Maintains the catalogue's metrics from events of ``bus``.

    Args:
        bus: the event bus to subscribe to.
        const_labels: labels added to every sample (e.g. ``{"cluster": "gpu-01"}``).
        request_labels: extra labels of ``agentic_requests_total`` taken from the
            ``request.finished`` fields, a subset of ``("tenant", "target_path")``.
        max_label_values: distinct values kept per label before ``other``.
        threaded: update metrics on the subscription's own thread, in batches (the
            default: the emitter then only appends to a queue). Every scrape first
            waits for the queue to drain, so a scrape sees every event emitted before
            it. False updates inline on the emitter's thread.
    """

    def __init__(
        self,
        bus: EventBus,
        *,
        const_labels: Mapping[str, str] | None = None,
        request_labels: Iterable[str] = (),
        max_label_values: int = 100,
        threaded: bool = True,
        queue_size: int = 10_000,
    ) -> None:
        self.bus = bus
        self.registry = CollectorRegistry(auto_describe=True)
        self._request_labels = tuple(request_labels)
        self._guard = _LabelGuard(max_label_values)
        self._threaded = threaded
        self._queue_size = queue_size
        self._sub: Subscription | None = None
        self._refreshers: list[Callable[[], None]] = []
        self._activation: deque[bool] = deque(maxlen=_ACTIVATION_WINDOW)
        self._activation_sum = 0
        self._prefix_events = False  # prefix counters fed by events, not by stats deltas
        self._subgraph_events = False
        self._compile_from_stats = False  # compile seconds fed by bind_grammar_compiles
        self.metrics = MetricStore()
        for spec in CATALOGUE:
            self._register(spec)
        self.registry.register(StoreCollector(self.metrics))
        self.registry.register(_BusCollector(bus))
        self._const_labels = dict(const_labels or {})
        self._view: Any = (
            _ConstLabelView(self.registry, self._const_labels) if const_labels else self.registry
        )
        self._handlers: dict[str, Callable[[Mapping[str, Any]], None]] = {
            K.REQUEST_FINISHED: self._request_finished,
            K.REQUEST_STAGE: self._request_stage,
            K.ENGINE_STEP: self._engine_step,
            K.PREFIX_CACHE_MATCH: self._prefix_match,
            K.PREFIX_CACHE_EVICT: self._prefix_evict,
            K.SUBGRAPH_CACHE_LOOKUP: self._subgraph_lookup,
            K.SUBGRAPH_CACHE_INSERT: self._subgraph_insert,
            K.GRAMMAR_COMPILE: self._grammar_compile,
            K.GRAMMAR_MASK: self._grammar_mask,
            K.GRAMMAR_JUMP_FORWARD: self._jump_forward,
            K.BUDGET_STOP: self._budget_stop,
            K.FORK_GROUP_DONE: self._fork_group,
            K.ALERT_FIRED: self._alert_fired,
            K.ALERT_RESOLVED: self._alert_resolved,
            K.AGA_FORWARD: self._aga_forward,
            K.AGA_RETRIEVAL: self._aga_retrieval,
            K.AUDIT: self._audit,
            K.AGA_STORE: self._aga_store,
        }

    def add_const_labels(self, labels: Mapping[str, str]) -> None:
        """Add labels to every sample from now on (e.g. ``{"model": "agentic-tiny"}``)."""
        self._const_labels = {**self._const_labels, **labels}
        self._view = _ConstLabelView(self.registry, self._const_labels)

    # -- lifecycle -------------------------------------------------------------------
    def _register(self, spec: MetricSpec) -> None:
        if spec.type == "info":
            self.metrics.add_info(spec, {"version": __version__})
        elif spec.type != "counter" or spec.sources:  # source-less counters: _BusCollector
            extra = self._request_labels if spec.name == "agentic_requests_total" else ()
            self.metrics.add(spec, extra)

    def start(self) -> PrometheusExporter:
        """Subscribe to the bus; idempotent."""
        if self._sub is None:
            self._sub = self.bus.subscribe(
                self._on_event, kinds=tuple(self._handlers), threaded=self._threaded,
                queue_size=self._queue_size if self._threaded else None, name="prometheus",
            )
        return self

    @property
    def errors(self) -> int:
        """Events this exporter raised on (counted among the bus's subscriber errors)."""
        return self._sub.errors if self._sub is not None else 0

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every event emitted so far is reflected in the metrics."""
        return self._sub.flush(timeout_s) if self._sub is not None else True

    def stop(self) -> None:
        """Unsubscribe; the metrics keep their values."""
        if self._sub is not None:
            self._sub.close()
            self._sub = None

    def add_refresher(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` before every scrape (to pull gauges from a live object)."""
        self._refreshers.append(fn)

    def bind_engine_stats(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        """Refresh engine metrics from ``stats()`` (e.g. ``engine.stats``) at scrape time.

        Gauges: ``running``, ``waiting`` and the KV pages (``blocks_used`` /
        ``blocks_free``, or ``pages_*`` / ``kv_pages_*``). Counters: the prefix cache's
        ``prefix_queries_tokens`` / ``prefix_hit_tokens`` grow by their change since
        the last scrape, unless ``prefix_cache.match`` events already feed them.
        """
        from agentic_llm.observability.engine_probe import engine_pages

        last: dict[str, float] = {}

        def refresh() -> None:
            s = stats()
            with self.metrics.lock:
                update(s)

        def update(s: Mapping[str, Any]) -> None:
            m = self.metrics
            for key, name in (("running", "agentic_running_requests"),
                              ("waiting", "agentic_queue_depth")):
                if isinstance(s.get(key), int | float):
                    m[name].set(s[key])
            used, free = engine_pages(s)
            if used is not None:
                m["agentic_kv_pages_used"].set(used)
            if free is not None:
                m["agentic_kv_pages_free"].set(free)
            for key, name in (("prefix_queries_tokens", "agentic_prefix_cache_query_tokens_total"),
                              ("prefix_hit_tokens", "agentic_prefix_cache_hit_tokens_total")):
                v = s.get(key)
                if not isinstance(v, int | float):
                    continue
                delta = v - last.get(key, 0.0)
                last[key] = v
                if delta > 0 and not self._prefix_events:
                    m[name].inc(delta)

        self.add_refresher(refresh)

    def bind_grammar_compiles(self, compile_seconds: Callable[[], Mapping[str, float]]) -> None:
        """Feed ``agentic_grammar_compile_seconds`` from a compiler's record of its
        compiles (``GrammarCompiler.compile_seconds``: seconds per grammar shape), so
        the compiles ``serve`` runs at start-up, before any exporter listens, are
        counted; ``grammar.compile`` events then only count cache lookups."""
        seen: set[str] = set()
        self._compile_from_stats = True

        def refresh() -> None:
            record = dict(compile_seconds())
            with self.metrics.lock:
                for key, secs in record.items():
                    if key not in seen:
                        seen.add(key)
                        self.metrics["agentic_grammar_compile_seconds"].observe(secs)

        self.add_refresher(refresh)

    def bind_subgraph_cache(self, stats: Callable[[], Any], *, store: str = "default") -> None:
        """Feed subgraph cache lookups from a cache's counters at scrape time.

        ``stats()`` (e.g. ``SubgraphCache.stats``) returns ``exact_hits``,
        ``fuzzy_hits``, ``misses`` and ``stale`` (as attributes or keys); their change
        since the last scrape is added to ``agentic_subgraph_cache_lookups_total``
        (``stale`` counts as ``invalid``), unless ``subgraph_cache.lookup`` events
        already feed it.
        """
        last: dict[str, float] = {}
        store_label = self._guard("store", store)
        pairs = (("exact_hits", "exact"), ("fuzzy_hits", "fuzzy"), ("misses", "miss"),
                 ("stale", "invalid"))

        def refresh() -> None:
            s = stats()
            with self.metrics.lock:
                update(s)

        def update(s: Any) -> None:
            get = s.get if isinstance(s, Mapping) else (lambda k: getattr(s, k, None))
            for key, outcome in pairs:
                v = get(key)
                if not isinstance(v, int | float):
                    continue
                delta = v - last.get(key, 0.0)
                last[key] = v
                if delta > 0 and not self._subgraph_events:
                    self.metrics["agentic_subgraph_cache_lookups_total"].inc(delta, (outcome, store_label))

        self.add_refresher(refresh)

    def exposition(self) -> bytes:
        """The text exposition (what ``/metrics`` serves)."""
        if self._sub is not None:
            self._sub.flush(2.0)
        for fn in self._refreshers:
            try:
                fn()
            except Exception:  # noqa: BLE001 - a dead source must not break the scrape
                continue
        return generate_latest(self._view)

    # -- event handlers --------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        with self.metrics.lock:
            self._handlers[event.kind](event.fields)

    def _request_finished(self, f: Mapping[str, Any]) -> None:
        m = self.metrics
        outcome = f.get("outcome")
        outcome = outcome if outcome in _OUTCOMES else "other"
        code = str(f.get("error_code") or "")
        code = "none" if not code else (code if code in _ERROR_CODES else "other")
        values = [outcome, code]
        for lbl in self._request_labels:
            values.append(self._guard(lbl, f.get(lbl, "")))
        m["agentic_requests_total"].inc(1.0, tuple(values))
        for key, name in (("ttft_s", "agentic_request_ttft_seconds"),
                          ("tpot_s", "agentic_request_tpot_seconds"),
                          ("e2e_s", "agentic_request_e2e_seconds")):
            v = f.get(key)
            if v is not None:
                m[name].observe(v)
        if f.get("prompt_tokens"):
            m["agentic_prompt_tokens_total"].inc(f["prompt_tokens"])
        if f.get("output_tokens"):
            m["agentic_generation_tokens_total"].inc(f["output_tokens"])

    def _request_stage(self, f: Mapping[str, Any]) -> None:
        stage = f.get("stage")
        stage = stage if stage in K.STAGES else "other"
        self.metrics["agentic_request_stage_seconds"].observe(f["duration_s"], (stage,))

    def _engine_step(self, f: Mapping[str, Any]) -> None:
        m = self.metrics
        m["agentic_running_requests"].set(f["running"])
        m["agentic_queue_depth"].set(f["waiting"])
        if f.get("kv_pages_used") is not None:
            m["agentic_kv_pages_used"].set(f["kv_pages_used"])
        if f.get("kv_pages_free") is not None:
            m["agentic_kv_pages_free"].set(f["kv_pages_free"])
        m["agentic_engine_steps_total"].inc()
        if f.get("duration_s") is not None:
            m["agentic_engine_step_seconds"].observe(f["duration_s"])
        if f.get("prefill_tokens"):
            m["agentic_engine_tokens_total"].inc(f["prefill_tokens"], ("prefill",))
        if f.get("decode_tokens"):
            m["agentic_engine_tokens_total"].inc(f["decode_tokens"], ("decode",))

    def _prefix_match(self, f: Mapping[str, Any]) -> None:
        self._prefix_events = True
        self.metrics["agentic_prefix_cache_query_tokens_total"].inc(f["query_tokens"])
        if f["hit_tokens"]:
            self.metrics["agentic_prefix_cache_hit_tokens_total"].inc(f["hit_tokens"])

    def _prefix_evict(self, f: Mapping[str, Any]) -> None:
        if f["blocks"]:
            self.metrics["agentic_prefix_cache_evicted_blocks_total"].inc(f["blocks"])

    def _subgraph_lookup(self, f: Mapping[str, Any]) -> None:
        self._subgraph_events = True
        outcome = f.get("outcome")
        outcome = outcome if outcome in K.SUBGRAPH_OUTCOMES else "other"
        store = self._guard("store", f.get("store") or "default")
        self.metrics["agentic_subgraph_cache_lookups_total"].inc(1.0, (outcome, store))
        if f.get("duration_s") is not None:
            self.metrics["agentic_subgraph_cache_lookup_seconds"].observe(f["duration_s"], (store,))

    def _subgraph_insert(self, f: Mapping[str, Any]) -> None:
        store = self._guard("store", f.get("store") or "default")
        self.metrics["agentic_subgraph_cache_inserts_total"].inc(1.0, (store,))

    def _grammar_compile(self, f: Mapping[str, Any]) -> None:
        hit = bool(f["cache_hit"])
        self.metrics["agentic_grammar_cache_lookups_total"].inc(1.0, ("hit" if hit else "miss",))
        if not hit and not self._compile_from_stats:
            self.metrics["agentic_grammar_compile_seconds"].observe(f["duration_s"])

    def _grammar_mask(self, f: Mapping[str, Any]) -> None:
        self.metrics["agentic_grammar_mask_fill_seconds"].observe(f["duration_s"])

    def _jump_forward(self, f: Mapping[str, Any]) -> None:
        if f["tokens"]:
            self.metrics["agentic_jump_forward_tokens_total"].inc(f["tokens"])

    def _budget_stop(self, f: Mapping[str, Any]) -> None:
        kind = f.get("kind")
        kind = kind if kind in K.BUDGET_KINDS else "other"
        self.metrics["agentic_budget_stops_total"].inc(1.0, (kind,))

    def _fork_group(self, f: Mapping[str, Any]) -> None:
        self.metrics["agentic_fork_group_seconds"].observe(f["duration_s"])
        self.metrics["agentic_fork_group_size"].observe(f["size"])

    def _alert_fired(self, f: Mapping[str, Any]) -> None:
        rule = self._guard("rule", f["rule"])
        self.metrics["agentic_alerts_fired_total"].inc(1.0, (rule, str(f["severity"])))
        self.metrics["agentic_alerts_firing"].set(1, (rule,))

    def _alert_resolved(self, f: Mapping[str, Any]) -> None:
        self.metrics["agentic_alerts_firing"].set(0, (self._guard("rule", f["rule"]),))

    def _aga_forward(self, f: Mapping[str, Any]) -> None:
        m = self.metrics
        layer = self._guard("layer", f["layer"])
        applied = bool(f["applied"])
        m["aga_forward_total"].inc(1.0, (layer, "true" if applied else "false"))
        if f.get("latency_us") is not None:
            m["aga_forward_latency_us"].observe(f["latency_us"], (layer,))
        if f.get("gate_value") is not None:
            m["aga_gate_value"].observe(f["gate_value"], (layer,))
        if f.get("entropy") is not None:
            m["aga_entropy_value"].observe(f["entropy"], (layer,))
        window = self._activation
        if len(window) == window.maxlen:
            self._activation_sum -= window[0]
        window.append(applied)
        self._activation_sum += applied
        m["aga_activation_rate"].set(self._activation_sum / len(window))

    def _aga_retrieval(self, f: Mapping[str, Any]) -> None:
        m = self.metrics
        layer = self._guard("layer", f["layer"])
        m["aga_retrieval_total"].inc(1.0, (layer,))
        if f.get("injected"):
            m["aga_retrieval_injected_total"].inc(f["injected"], (layer,))
        hist = m["aga_retrieval_score"]
        for s in f.get("scores") or ():
            hist.observe(s)

    def _audit(self, f: Mapping[str, Any]) -> None:
        op = self._guard("operation", f["operation"])
        ok = "true" if f["success"] else "false"
        if (f.get("component") or "aga") == "cache":
            self.metrics["agentic_cache_admin_operations_total"].inc(1.0, (op, ok))
        else:
            self.metrics["aga_audit_operations_total"].inc(1.0, (op, ok))

    def _aga_store(self, f: Mapping[str, Any]) -> None:
        m = self.metrics
        m["aga_knowledge_count"].set(f["knowledge_count"])
        for key, name in (("utilization", "aga_knowledge_utilization"),
                          ("pinned_count", "aga_knowledge_pinned_count"),
                          ("slot_change_rate", "aga_slot_change_rate")):
            if f.get(key) is not None:
                m[name].set(f[key])
