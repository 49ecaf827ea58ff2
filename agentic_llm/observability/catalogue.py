"""Every Prometheus metric the server exports: name, type, help, labels, buckets.

This module is the single source of truth: the exporter registers exactly these
metrics, the dashboard generator may only query these names, and the documentation
table is generated from it. ``sources`` names the event kinds that move a metric
(empty for metrics read from the event bus itself at scrape time).

Names follow Prometheus conventions: counters end in ``_total`` (the name queried
in PromQL), histograms carry their unit. The ``aga_*`` names are the knowledge
injection plugin's historical metric names and are kept verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agentic_llm.observability import kinds as K

__all__ = ["MetricSpec", "MetricType", "CATALOGUE", "by_name", "exported_names"]

MetricType = Literal["counter", "gauge", "histogram", "info"]

_LATENCY_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_TPOT_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_E2E_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_STAGE_S = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0)
_FAST_S = (1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.05, 0.1)
_COMPILE_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZE = (1, 2, 4, 8, 16, 32, 64, 128)
_UNIT = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_LATENCY_US = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 50000)
_ENTROPY = (0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 8.0)


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric.

    Attributes:
        name: the queried name (counters include ``_total``; an info metric is
            queried as ``<name>_info``).
        type: counter, gauge, histogram or info.
        help: one line for ``# HELP``.
        labels: label names, all with bounded value sets.
        buckets: histogram bucket upper bounds.
        sources: event kinds that move it; empty when read at scrape time.
    """

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name} must end in _total")
        if (self.type == "histogram") != (self.buckets is not None):
            raise ValueError(f"{self.name}: buckets are for histograms only")

    @property
    def base_name(self) -> str:
        """The family name the client library and the text parser use."""
        return self.name[: -len("_total")] if self.type == "counter" else self.name

    @property
    def series_names(self) -> tuple[str, ...]:
        """Every sample name this metric exports."""
        b = self.base_name
        if self.type == "counter":
            return (f"{b}_total", f"{b}_created")
        if self.type == "histogram":
            return (f"{b}_bucket", f"{b}_sum", f"{b}_count", f"{b}_created")
        if self.type == "info":
            return (f"{b}_info",)
        return (b,)


def _c(name: str, help: str, labels: tuple[str, ...] = (), *sources: str) -> MetricSpec:
    return MetricSpec(name, "counter", help, labels, None, sources)


def _g(name: str, help: str, labels: tuple[str, ...] = (), *sources: str) -> MetricSpec:
    return MetricSpec(name, "gauge", help, labels, None, sources)


def _h(name: str, help: str, buckets: tuple[float, ...], labels: tuple[str, ...] = (),
       *sources: str) -> MetricSpec:
    return MetricSpec(name, "histogram", help, labels, tuple(float(b) for b in buckets), sources)


CATALOGUE: tuple[MetricSpec, ...] = (
    # -- requests ------------------------------------------------------------------
    _c("agentic_requests_total", "Requests finished, by outcome and ERR_* code",
       ("outcome", "error_code"), K.REQUEST_FINISHED),
    _h("agentic_request_ttft_seconds", "Time to first token", _LATENCY_S, (),
       K.REQUEST_FINISHED),
    _h("agentic_request_tpot_seconds", "Mean time per output token after the first",
       _TPOT_S, (), K.REQUEST_FINISHED),
    _h("agentic_request_e2e_seconds", "End-to-end request latency", _E2E_S, (),
       K.REQUEST_FINISHED),
    _c("agentic_prompt_tokens_total", "Prompt tokens of finished requests", (),
       K.REQUEST_FINISHED),
    _c("agentic_generation_tokens_total", "Output tokens of finished requests", (),
       K.REQUEST_FINISHED),
    _h("agentic_request_stage_seconds", "Duration of each request stage", _STAGE_S,
       ("stage",), K.REQUEST_STAGE),
    # -- engine --------------------------------------------------------------------
    _g("agentic_queue_depth", "Requests waiting to be scheduled", (), K.ENGINE_STEP),
    _g("agentic_running_requests", "Requests in the running batch", (), K.ENGINE_STEP),
    _g("agentic_kv_pages_used", "KV cache pages in use", (), K.ENGINE_STEP),
    _g("agentic_kv_pages_free", "KV cache pages free", (), K.ENGINE_STEP),
    _c("agentic_engine_steps_total", "Engine steps run", (), K.ENGINE_STEP),
    _h("agentic_engine_step_seconds", "Duration of one engine step", _STAGE_S, (),
       K.ENGINE_STEP),
    _c("agentic_engine_tokens_total", "Tokens processed by the engine, by phase",
       ("phase",), K.ENGINE_STEP),
    # -- prefix cache --------------------------------------------------------------
    _c("agentic_prefix_cache_query_tokens_total", "Prompt tokens looked up in the prefix cache",
       (), K.PREFIX_CACHE_MATCH),
    _c("agentic_prefix_cache_hit_tokens_total", "Prompt tokens found in the prefix cache",
       (), K.PREFIX_CACHE_MATCH),
    _c("agentic_prefix_cache_evicted_blocks_total", "KV blocks evicted from the prefix cache",
       (), K.PREFIX_CACHE_EVICT),
    # -- subgraph cache ------------------------------------------------------------
    _c("agentic_subgraph_cache_lookups_total", "Subgraph cache lookups, by outcome",
       ("outcome", "store"), K.SUBGRAPH_CACHE_LOOKUP),
    _h("agentic_subgraph_cache_lookup_seconds", "Subgraph cache lookup latency", _FAST_S,
       ("store",), K.SUBGRAPH_CACHE_LOOKUP),
    _c("agentic_subgraph_cache_inserts_total", "Subgraphs written to the cache", ("store",),
       K.SUBGRAPH_CACHE_INSERT),
    _c("agentic_cache_admin_operations_total", "Cache administration operations",
       ("operation", "success"), K.AUDIT),
    # -- grammar -------------------------------------------------------------------
    _h("agentic_grammar_compile_seconds", "Grammar compile time (cache misses)", _COMPILE_S,
       (), K.GRAMMAR_COMPILE),
    _c("agentic_grammar_cache_lookups_total", "Compiled-grammar cache lookups, by result",
       ("result",), K.GRAMMAR_COMPILE),
    _h("agentic_grammar_mask_fill_seconds", "Time to fill the token masks of one step",
       _FAST_S, (), K.GRAMMAR_MASK),
    _c("agentic_jump_forward_tokens_total", "Tokens appended by jump-forward decoding", (),
       K.GRAMMAR_JUMP_FORWARD),
    # -- scheduler -----------------------------------------------------------------
    _c("agentic_budget_stops_total", "Requests stopped by their budget, by kind", ("kind",),
       K.BUDGET_STOP),
    _h("agentic_fork_group_seconds", "Time for every sibling of a fork group to finish",
       _E2E_S, (), K.FORK_GROUP_DONE),
    _h("agentic_fork_group_size", "Siblings per fork group", _SIZE, (), K.FORK_GROUP_DONE),
    # -- alerts and the bus itself -------------------------------------------------
    _c("agentic_alerts_fired_total", "Alerts fired, by rule and severity",
       ("rule", "severity"), K.ALERT_FIRED),
    _g("agentic_alerts_firing", "1 while an alert rule is firing", ("rule",),
       K.ALERT_FIRED, K.ALERT_RESOLVED),
    _c("agentic_observability_subscriber_errors_total",
       "Events a subscriber raised on (dropped for that subscriber)"),
    _c("agentic_observability_events_dropped_total",
       "Events dropped because a threaded subscriber's queue was full"),
    # -- knowledge injection (AGA) -------------------------------------------------
    _c("aga_forward_total", "AGA forward calls", ("layer", "applied"), K.AGA_FORWARD),
    _c("aga_retrieval_total", "AGA retriever calls", ("layer",), K.AGA_RETRIEVAL),
    _c("aga_retrieval_injected_total", "Knowledge items injected by the retriever",
       ("layer",), K.AGA_RETRIEVAL),
    _c("aga_audit_operations_total", "AGA knowledge operations audited",
       ("operation", "success"), K.AUDIT),
    _h("aga_forward_latency_us", "AGA forward latency (microseconds)", _LATENCY_US,
       ("layer",), K.AGA_FORWARD),
    _h("aga_gate_value", "AGA gate value", _UNIT, ("layer",), K.AGA_FORWARD),
    _h("aga_entropy_value", "AGA entropy value", _ENTROPY, ("layer",), K.AGA_FORWARD),
    _h("aga_retrieval_score", "AGA retrieval score", _UNIT, (), K.AGA_RETRIEVAL),
    _g("aga_knowledge_count", "Knowledge items in the store", (), K.AGA_STORE),
    _g("aga_knowledge_utilization", "Knowledge store utilization (0..1)", (), K.AGA_STORE),
    _g("aga_knowledge_pinned_count", "Pinned knowledge items", (), K.AGA_STORE),
    _g("aga_activation_rate", "Share of recent forwards that injected knowledge", (),
       K.AGA_FORWARD),
    _g("aga_slot_change_rate", "Knowledge slot change rate", (), K.AGA_STORE),
    MetricSpec("aga_build", "info", "Build information", ("version",)),
)

_BY_NAME = {m.name: m for m in CATALOGUE}
if len(_BY_NAME) != len(CATALOGUE):  # pragma: no cover - caught by the import itself
    raise RuntimeError("duplicate metric names in the catalogue")


def by_name(name: str) -> MetricSpec:
    """The spec of metric ``name``; KeyError when it is not in the catalogue."""
    return _BY_NAME[name]


def exported_names() -> frozenset[str]:
    """Every sample name the exporter can expose (what PromQL may refer to)."""
    return frozenset(n for m in CATALOGUE for n in m.series_names)
