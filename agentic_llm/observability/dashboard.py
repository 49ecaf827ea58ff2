"""Generate a Grafana dashboard (JSON model) for the exported metrics.

Every panel's PromQL is checked at generation time: each metric it names must be a
series the exporter really produces (the catalogue's names plus the ``_bucket`` /
``_sum`` / ``_count`` / ``_total`` suffixes the client library adds), so the dashboard
cannot drift from the code. Import the file in Grafana and pick the Prometheus data
source for the ``datasource`` variable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentic_llm.observability.catalogue import exported_names

__all__ = ["Panel", "Row", "dashboard_rows", "generate_dashboard", "write_dashboard", "iter_exprs",
           "promql_metric_names", "UnknownMetricError"]

# PromQL words that look like identifiers but are not metric names.
_PROMQL_WORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan", "sum", "avg", "min", "max", "count", "stddev",
    "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
})
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


class UnknownMetricError(ValueError):
    """A dashboard expression names a metric the exporter does not produce."""


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression refers to.

    Label matchers (``{...}``), grouping clauses (``by (...)``), range selectors
    (``[5m]``), strings and function names are not metric names and are skipped.
    """
    s = re.sub(r'"(?:[^"\\]|\\.)*"', " ", expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names: set[str] = set()
    for m in _IDENT.finditer(s):
        word = m.group(0)
        start, end = m.span()
        if start > 0 and (s[start - 1].isdigit() or s[start - 1] == "."):
            continue  # the exponent or unit of a number, e.g. 1e6
        if s[end:].lstrip().startswith("("):
            continue  # a function call
        if word.lower() in _PROMQL_WORDS:
            continue
        names.add(word)
    return names


@dataclass(frozen=True)
class Panel:
    """One graph: a title, PromQL targets (expr, legend), a unit and a kind."""

    title: str
    targets: tuple[tuple[str, str], ...]
    unit: str = "short"
    kind: str = "timeseries"  # timeseries, stat, heatmap
    description: str = ""


@dataclass(frozen=True)
class Row:
    """A titled group of panels."""

    title: str
    panels: tuple[Panel, ...]


def _q(name: str, q: float, by: str = "") -> str:
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({name}_bucket[$__rate_interval])))"


def _quantiles(name: str, by: str = "") -> tuple[tuple[str, str], ...]:
    suffix = f" {{{{{by}}}}}" if by else ""
    return tuple((_q(name, q, by), f"p{int(q * 100)}{suffix}") for q in (0.5, 0.95, 0.99))


def _rate(name: str, by: str = "") -> str:
    inner = f"rate({name}[$__rate_interval])"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def dashboard_rows() -> tuple[Row, ...]:
    """The dashboard's content: engine, caches, grammar, scheduler, AGA, self-health."""
    return (
        Row("Overview", (
            Panel("Requests / s by outcome", ((_rate("agentic_requests_total", "outcome"),
                                               "{{outcome}}"),), "reqps"),
            Panel("Errors / s by code", ((
                _rate('agentic_requests_total{error_code!="none"}', "error_code"),
                "{{error_code}}"),), "reqps"),
            Panel("Queue depth and running batch", (
                ("sum(agentic_queue_depth)", "waiting"),
                ("sum(agentic_running_requests)", "running")), "short"),
            Panel("KV pages", (("sum(agentic_kv_pages_used)", "used"),
                               ("sum(agentic_kv_pages_free)", "free")), "short"),
            Panel("Tokens / s", ((_rate("agentic_prompt_tokens_total"), "prompt"),
                                 (_rate("agentic_generation_tokens_total"), "generated")),
                  "short"),
        )),
        Row("Latency", (
            Panel("Time to first token", _quantiles("agentic_request_ttft_seconds"), "s"),
            Panel("Time per output token", _quantiles("agentic_request_tpot_seconds"), "s"),
            Panel("End-to-end latency", _quantiles("agentic_request_e2e_seconds"), "s"),
            Panel("Stage p95 by stage", ((_q("agentic_request_stage_seconds", 0.95, "stage"),
                                          "{{stage}}"),), "s"),
            Panel("Engine step p95", ((_q("agentic_engine_step_seconds", 0.95), "p95"),), "s"),
        )),
        Row("Caches", (
            Panel("Prefix cache hit rate (tokens)", ((
                f"{_rate('agentic_prefix_cache_hit_tokens_total')} / "
                f"clamp_min({_rate('agentic_prefix_cache_query_tokens_total')}, 1)",
                "hit rate"),), "percentunit", "stat"),
            Panel("Prefix cache evictions / s", ((
                _rate("agentic_prefix_cache_evicted_blocks_total"), "blocks"),), "short"),
            Panel("Subgraph cache lookups / s by outcome", ((
                _rate("agentic_subgraph_cache_lookups_total", "outcome"), "{{outcome}}"),),
                "ops"),
            Panel("Subgraph cache lookup p95 by store", ((
                _q("agentic_subgraph_cache_lookup_seconds", 0.95, "store"), "{{store}}"),), "s"),
            Panel("Cache administration / s", ((
                _rate("agentic_cache_admin_operations_total", "operation"), "{{operation}}"),),
                "ops"),
        )),
        Row("Grammar", (
            Panel("Grammar compile time", _quantiles("agentic_grammar_compile_seconds"), "s"),
            Panel("Grammar cache hit rate", ((
                _rate('agentic_grammar_cache_lookups_total{result="hit"}') + " / "
                f"clamp_min({_rate('agentic_grammar_cache_lookups_total')}, 1e-9)",
                "hit rate"),), "percentunit", "stat"),
            Panel("Mask fill p99", ((_q("agentic_grammar_mask_fill_seconds", 0.99), "p99"),),
                  "s"),
            Panel("Jump-forward tokens / s", ((_rate("agentic_jump_forward_tokens_total"),
                                               "tokens"),), "short"),
        )),
        Row("Scheduler", (
            Panel("Budget stops / s by kind", ((_rate("agentic_budget_stops_total", "kind"),
                                                "{{kind}}"),), "ops"),
            Panel("Fork group completion", _quantiles("agentic_fork_group_seconds"), "s"),
            Panel("Fork group size p95", ((_q("agentic_fork_group_size", 0.95), "p95"),),
                  "short"),
        )),
        Row("Knowledge injection: overview", (
            Panel("Activation rate", (("avg(aga_activation_rate)", "activation"),),
                  "percentunit", "stat"),
            Panel("Knowledge count", (("sum(aga_knowledge_count)", "items"),), "short", "stat"),
            Panel("Store utilization", (("max(aga_knowledge_utilization)", "utilization"),),
                  "percentunit", "stat"),
            Panel("Pinned knowledge", (("sum(aga_knowledge_pinned_count)", "pinned"),),
                  "short", "stat"),
        )),
        Row("Knowledge injection: forward", (
            Panel("Forward latency", _quantiles("aga_forward_latency_us"), "µs"),
            Panel("Forwards / s by applied", ((_rate("aga_forward_total", "applied"),
                                               "applied={{applied}}"),), "ops"),
        )),
        Row("Knowledge injection: gate and entropy", (
            Panel("Gate value", ((
                "sum by (le) (rate(aga_gate_value_bucket[$__rate_interval]))", "{{le}}"),),
                "short", "heatmap"),
            Panel("Entropy", ((
                "sum by (le) (rate(aga_entropy_value_bucket[$__rate_interval]))", "{{le}}"),),
                "short", "heatmap"),
        )),
        Row("Knowledge injection: retriever", (
            Panel("Retriever calls / s", ((_rate("aga_retrieval_total"), "calls"),), "ops"),
            Panel("Injected / s", ((_rate("aga_retrieval_injected_total"), "injected"),), "ops"),
            Panel("Retrieval score p50", ((_q("aga_retrieval_score", 0.5), "p50"),), "short"),
            Panel("Slot change rate", (("max(aga_slot_change_rate)", "rate"),), "short"),
        )),
        Row("Audit and alerts", (
            Panel("Knowledge operations / s", ((
                _rate("aga_audit_operations_total", "operation, success"),
                "{{operation}} ok={{success}}"),), "ops"),
            Panel("Alerts firing", (("sum by (rule) (agentic_alerts_firing)", "{{rule}}"),),
                  "short"),
            Panel("Alerts fired / s", ((_rate("agentic_alerts_fired_total", "rule, severity"),
                                        "{{rule}} {{severity}}"),), "ops"),
            Panel("Observability drops and errors", (
                ("sum(rate(agentic_observability_events_dropped_total[$__rate_interval]))",
                 "dropped"),
                ("sum(rate(agentic_observability_subscriber_errors_total[$__rate_interval]))",
                 "subscriber errors")), "ops"),
            Panel("Build", (("aga_build_info", "{{version}}"),), "short", "stat"),
        )),
    )


def _check(rows: Iterable[Row], known: frozenset[str]) -> None:
    for row in rows:
        for panel in row.panels:
            for expr, _ in panel.targets:
                unknown = promql_metric_names(expr) - known
                if unknown:
                    raise UnknownMetricError(
                        f"panel {panel.title!r} queries {sorted(unknown)}, which the "
                        "exporter does not produce")


def generate_dashboard(
    *, title: str = "agentic-llm", uid: str = "agentic-llm", refresh: str = "10s",
    rows: Iterable[Row] | None = None,
) -> dict[str, Any]:
    """The dashboard JSON model (a dict ready for ``json.dump``)."""
    rows = tuple(rows) if rows is not None else dashboard_rows()
    _check(rows, exported_names())
    ds = {"type": "prometheus", "uid": "${datasource}"}
    panels: list[dict[str, Any]] = []
    pid = 1
    y = 0
    for row in rows:
        panels.append({"id": pid, "type": "row", "title": row.title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid += 1
        y += 1
        width = max(6, 24 // max(1, len(row.panels)))
        for i, p in enumerate(row.panels):
            x = (i * width) % 24
            if i and x == 0:
                y += 8
            panels.append({
                "id": pid, "type": p.kind, "title": p.title, "description": p.description,
                "datasource": ds,
                "gridPos": {"h": 8, "w": width, "x": x, "y": y},
                "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
                "options": {},
                "targets": [{"refId": chr(ord("A") + j), "expr": expr, "legendFormat": legend,
                             "datasource": ds} for j, (expr, legend) in enumerate(p.targets)],
            })
            pid += 1
        y += 8
    return {
        "uid": uid, "title": title, "tags": ["agentic-llm", "aga"], "timezone": "browser",
        "schemaVersion": 39, "version": 1, "refresh": refresh, "editable": True,
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource",
                                 "query": "prometheus", "label": "Prometheus"}]},
        "panels": panels,
    }


def iter_exprs(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression in a generated dashboard."""
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def write_dashboard(path: str | Path, **kw: Any) -> Path:
    """Generate and write the dashboard JSON to ``path``; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(generate_dashboard(**kw), indent=2) + "\n", encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m agentic_llm.observability.dashboard [PATH]``: write the dashboard JSON."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    out = write_dashboard(args[0] if args else "deploy/grafana/agentic-llm.json")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
