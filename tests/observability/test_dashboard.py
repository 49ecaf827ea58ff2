"""The generated Grafana dashboard only queries metrics the exporter really exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentic_llm.observability.catalogue import exported_names
from agentic_llm.observability.dashboard import (
    Panel,
    Row,
    UnknownMetricError,
    generate_dashboard,
    iter_exprs,
    promql_metric_names,
    write_dashboard,
)
from agentic_llm.observability.events import EventBus
from agentic_llm.observability.prometheus import PrometheusExporter

from .drive import emit_every_kind


def live_series_names() -> set[str]:
    """Sample names of a real exposition after every event kind fired."""
    bus = EventBus()
    exporter = PrometheusExporter(bus).start()
    bus.subscribe(lambda e: 1 / 0, kinds="audit")  # so the bus-error counter has a value
    emit_every_kind(bus)
    text = exporter.exposition().decode()
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_every_expr_refers_only_to_exported_names() -> None:
    dash = generate_dashboard()
    exprs = iter_exprs(dash)
    assert len(exprs) > 40
    live = live_series_names()
    catalogue = exported_names()
    used: set[str] = set()
    for expr in exprs:
        names = promql_metric_names(expr)
        assert names, f"no metric found in {expr!r}"
        assert names <= catalogue, (expr, names - catalogue)
        assert names <= live, (expr, names - live)
        used |= names
    # Every group of the seed's AGA dashboard and the engine's metrics are covered.
    for must in ("aga_activation_rate", "aga_forward_latency_us_bucket", "aga_gate_value_bucket",
                 "aga_retrieval_total", "aga_audit_operations_total",
                 "agentic_request_ttft_seconds_bucket", "agentic_prefix_cache_hit_tokens_total",
                 "agentic_grammar_compile_seconds_bucket", "agentic_budget_stops_total"):
        assert must in used


def test_dashboard_shape(tmp_path: Path) -> None:
    path = write_dashboard(tmp_path / "grafana" / "agentic.json", title="T")
    dash = json.loads(path.read_text())
    assert dash["title"] == "T" and dash["templating"]["list"][0]["type"] == "datasource"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        assert 0 <= p["gridPos"]["x"] < 24 and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        for t in p.get("targets", []):
            assert t["expr"] and t["refId"]


def test_metric_name_extraction() -> None:
    e = ('histogram_quantile(0.99, sum by (le, stage) '
         '(rate(agentic_request_stage_seconds_bucket{stage!="decode"}[5m]))) * 1e3')
    assert promql_metric_names(e) == {"agentic_request_stage_seconds_bucket"}
    assert promql_metric_names("a_total / ignoring(x) b_total > bool 0") == {"a_total", "b_total"}
    assert promql_metric_names('sum without (le) (x) offset 5m') == {"x"}


def test_unknown_metric_is_refused() -> None:
    bad = Row("bad", (Panel("typo", (("rate(agentic_request_total[5m])", "x"),)),))
    with pytest.raises(UnknownMetricError, match="agentic_request_total"):
        generate_dashboard(rows=[bad])


def test_shipped_dashboard_is_up_to_date() -> None:
    shipped = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "agentic-llm.json"
    assert json.loads(shipped.read_text()) == generate_dashboard(), (
        "deploy/grafana/agentic-llm.json is stale; regenerate it with "
        "`python -m agentic_llm.observability.dashboard`")
