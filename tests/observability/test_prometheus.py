"""The /metrics endpoint: parses, exports every catalogued metric, and each one moves."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentic_llm.observability import emit
from agentic_llm.observability.catalogue import CATALOGUE, by_name, exported_names
from agentic_llm.observability.events import EventBus
from agentic_llm.observability.httpserver import ObservabilityHTTPServer
from agentic_llm.observability.kinds import EVENT_SPECS
from agentic_llm.observability.prometheus import PrometheusExporter

from .drive import emit_every_kind


@pytest.fixture
def served() -> Iterator[tuple[EventBus, PrometheusExporter, ObservabilityHTTPServer]]:
    bus = EventBus()
    exporter = PrometheusExporter(bus).start()
    server = ObservabilityHTTPServer(exporter=exporter, port=0).start()
    try:
        yield bus, exporter, server
    finally:
        server.stop()
        exporter.stop()
        bus.close()


def scrape(server: ObservabilityHTTPServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the real endpoint, keyed by (name, labels)."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def series_total(samples: dict, names: tuple[str, ...]) -> dict:
    return {k: v for k, v in samples.items() if k[0] in names and not k[0].endswith("_created")}


def test_every_metric_present_and_moves(served) -> None:  # noqa: ANN001
    bus, _, server = served
    # A raising subscriber and a stuck threaded one move the bus's own counters.
    bus.subscribe(lambda e: 1 / 0, kinds="audit")
    gate = threading.Event()
    stuck = bus.subscribe(lambda e: gate.wait(10), kinds="audit", threaded=True, queue_size=1)

    before = scrape(server)
    emit_every_kind(bus, 1)
    emit_every_kind(bus, 2)
    after = scrape(server)
    gate.set()
    stuck.close()

    names_seen = {name for name, _ in after}
    for spec in CATALOGUE:
        series = tuple(n for n in spec.series_names if not n.endswith("_created"))
        assert names_seen & set(series), f"{spec.name} is not exported"
        moved = series_total(after, series) != series_total(before, series)
        if spec.type == "info":
            assert after[("aga_build_info", after_labels(after, "aga_build_info"))] == 1.0
            continue
        assert moved, f"{spec.name} did not move when {spec.sources or 'the bus'} fired"


def after_labels(samples: dict, name: str) -> tuple:
    return next(labels for n, labels in samples if n == name)


def test_specific_values(served) -> None:  # noqa: ANN001
    bus, _, server = served
    emit.prefix_cache_match(128, 0, bus=bus)
    emit.prefix_cache_match(128, 96, bus=bus)
    emit.request_finished("a", "error", error_code="ERR_TIMEOUT", bus=bus)
    emit.request_finished("b", "error", error_code="ERR_NOT_A_CODE", bus=bus)
    emit.request_finished("c", "weird-outcome", bus=bus)
    emit.grammar_compile(0.5, cache_hit=False, bus=bus)
    emit.grammar_compile(0.0, cache_hit=True, bus=bus)
    emit.grammar_compile(0.0, cache_hit=True, bus=bus)
    s = scrape(server)
    assert s[("agentic_prefix_cache_query_tokens_total", ())] == 256
    assert s[("agentic_prefix_cache_hit_tokens_total", ())] == 96
    req = {dict(k[1])["error_code"] + "/" + dict(k[1])["outcome"]: v
           for k, v in s.items() if k[0] == "agentic_requests_total"}
    assert req == {"ERR_TIMEOUT/error": 1, "other/error": 1, "none/other": 1}
    assert s[("agentic_grammar_cache_lookups_total", (("result", "hit"),))] == 2
    assert s[("agentic_grammar_cache_lookups_total", (("result", "miss"),))] == 1
    assert s[("agentic_grammar_compile_seconds_count", ())] == 1


def test_no_unbounded_labels_by_default(served) -> None:  # noqa: ANN001
    bus, _, server = served
    for i in range(20):
        emit.request_finished(f"r{i}", "success", tenant=f"tenant-{i}",
                              target_path=f"/dynamic/p{i}", bus=bus)
    s = scrape(server)
    for _name, labels in s:
        keys = dict(labels)
        assert "tenant" not in keys and "target_path" not in keys and "request_id" not in keys


def test_configured_request_labels_are_capped() -> None:
    bus = EventBus()
    exp = PrometheusExporter(bus, request_labels=("tenant",), max_label_values=3).start()
    for i in range(10):
        emit.request_finished(f"r{i}", "success", tenant=f"t{i}", bus=bus)
    fams = {f.name: f for f in text_string_to_metric_families(exp.exposition().decode())}
    tenants = {s.labels["tenant"]: s.value for s in fams["agentic_requests"].samples
               if s.name == "agentic_requests_total"}
    assert tenants == {"t0": 1, "t1": 1, "t2": 1, "other": 7}


def test_const_labels_on_every_sample() -> None:
    bus = EventBus()
    exp = PrometheusExporter(bus, const_labels={"cluster": "gpu-01"}).start()
    emit_every_kind(bus)
    fams = list(text_string_to_metric_families(exp.exposition().decode()))
    assert fams
    for fam in fams:
        for s in fam.samples:
            assert s.labels.get("cluster") == "gpu-01", s


def test_exporter_registry_is_private() -> None:
    from prometheus_client import REGISTRY

    a = PrometheusExporter(EventBus())
    b = PrometheusExporter(EventBus())  # a second one must not collide
    assert a.registry is not b.registry is not REGISTRY
    assert REGISTRY.get_sample_value("agentic_requests_total") is None


def test_catalogue_is_consistent() -> None:
    for spec in CATALOGUE:
        for kind in spec.sources:
            assert kind in EVENT_SPECS, f"{spec.name} names unknown event kind {kind}"
    assert "agentic_request_ttft_seconds_bucket" in exported_names()
    assert "aga_build_info" in exported_names()
    assert by_name("aga_forward_total").labels == ("layer", "applied")
    with pytest.raises(ValueError):
        type(by_name("aga_forward_total"))("bad", "counter", "no _total suffix")


def test_scrape_refreshes_engine_gauges(served) -> None:  # noqa: ANN001
    _, exporter, server = served
    live = {"pages_used": 7, "pages_free": 9, "running": 2, "waiting": 4}
    exporter.bind_engine_stats(lambda: live)
    s = scrape(server)
    assert s[("agentic_kv_pages_used", ())] == 7
    assert s[("agentic_queue_depth", ())] == 4
    live["pages_used"] = 8
    assert scrape(server)[("agentic_kv_pages_used", ())] == 8


def test_subgraph_cache_counters_from_the_real_cache(served) -> None:  # noqa: ANN001
    from agentic_llm.cache.subgraph import SubgraphCache
    from tests.cache.helpers import hotel_text, make_plan

    _, exporter, server = served
    cache = SubgraphCache(engine_version=make_plan().engine_version)
    exporter.bind_subgraph_cache(cache.stats, store="memory")
    scrape(server)
    assert cache.lookup_plan(make_plan()).kind == "miss"
    cache.register_plan(make_plan(), hotel_text())
    assert cache.lookup_plan(make_plan()).kind == "exact"
    assert cache.lookup_plan(make_plan(city="Paris", budget=95)).kind == "fuzzy"
    s = scrape(server)

    def looked(outcome: str) -> float:
        return s[("agentic_subgraph_cache_lookups_total", (("outcome", outcome), ("store", "memory")))]

    assert (looked("miss"), looked("exact"), looked("fuzzy")) == (1, 1, 1)
    cache.lookup_plan(make_plan())
    s = scrape(server)
    assert looked("exact") == 2
