"""A real request through the serving pipeline, scraped from the real /metrics endpoint."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentic_llm.observability.config import ObservabilityConfig
from agentic_llm.observability.events import EventBus, set_default_bus
from agentic_llm.observability.stack import ObservabilityStack

REQUEST: dict[str, Any] = {
    "target_path": "/dynamic/plan_1",
    "prompt": "Find three hotels in {{ city }} and rank them",
    "context": {"available_vars": {"city": "string"}, "values": {"city": "Rome"}},
    "budget": {"max_nodes": 4, "max_tokens": 120, "timeout_sec": 60},
}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from agentic_llm.config import ServerConfig
    from agentic_llm.serving import build_pipeline
    from tests.server.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path_factory.mktemp("pipeline-model"))
    cfg = ServerConfig.from_dict({"model": {"dir": str(model), "num_blocks": 256},
                                  "cache": {"store": "memory"}})
    p = build_pipeline(cfg)
    yield p
    p.close()


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Samples by (name, labels); every sample carries the served model's label, dropped here."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    samples = [s for fam in text_string_to_metric_families(text) for s in fam.samples]
    assert samples and {s.labels.get("model") for s in samples} == {"pipeline-model0"}  # its directory
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "model"))): s.value
            for s in samples}


def test_served_requests_move_the_metrics(pipeline: Any) -> None:
    from agentic_llm.planner import GenerateRequest

    bus = EventBus()
    previous = set_default_bus(bus)  # the pipeline emits on the default bus
    stack = ObservabilityStack(ObservabilityConfig(), bus=bus).start()
    try:
        stack.bind_pipeline(pipeline, store="memory")
        url = stack.url or ""
        first = pipeline.run(GenerateRequest.from_json(REQUEST))
        s1 = scrape(url)
        second = pipeline.run(GenerateRequest.from_json(REQUEST))
        s2 = scrape(url)
        branches = [GenerateRequest.from_json({**REQUEST, "target_path": f"/dynamic/branch_{i}",
                                               "flags": {"bypass_cache": True}})
                    for i in range(3)]
        fork_results = list(pipeline.fork(branches, dag_id="dag-metrics"))
        stack.flush()
        s3 = scrape(url)
        with urllib.request.urlopen(url + "/livez", timeout=10) as r:
            live = json.loads(r.read())
    finally:
        stack.shutdown()
        set_default_bus(previous)

    def req(outcome: str, s: dict) -> float:
        return s.get(("agentic_requests_total", (("error_code", "none"), ("outcome", outcome))), 0)

    # The engine loop's heartbeat and thread are the liveness check.
    assert live["status"] == "healthy" and "engine_loop" in live["checks"]
    assert req("success", s1) == 1
    # The grammar makes the first answer valid, so it is cached and the same request is
    # then served from the subgraph cache: a cached outcome and a counted exact hit.
    assert first.valid and second.cache == "exact"
    assert req("cached", s2) == 1
    exact = ("agentic_subgraph_cache_lookups_total", (("outcome", "exact"), ("store", "memory")))
    assert s1.get(exact, 0) == 0 and s2[exact] == 1
    assert s2[("agentic_request_stage_seconds_count", (("stage", "plan"),))] == 2
    assert s1[("agentic_request_ttft_seconds_count", ())] == 1
    assert s1[("agentic_generation_tokens_total", ())] > 0
    assert s2[("agentic_prefix_cache_query_tokens_total", ())] > 0
    used, free = s2[("agentic_kv_pages_used", ())], s2[("agentic_kv_pages_free", ())]
    assert used + free == 256
    # Constrained decoding filled masks on the engine's worker thread, and the first
    # valid answer was written to the subgraph cache.
    assert s1[("agentic_grammar_mask_fill_seconds_count", ())] > 0
    assert s1[("agentic_subgraph_cache_inserts_total", (("store", "memory"),))] == 1
    # A fork of three branches is one group of size three, timed once.
    assert len(fork_results) == 3
    assert s2.get(("agentic_fork_group_seconds_count", ()), 0) == 0
    assert s3[("agentic_fork_group_seconds_count", ())] == 1
    assert s3[("agentic_fork_group_size_sum", ())] == 3
    # The standard grammars were compiled at start-up, so each request's grammar was a
    # compiled-grammar cache hit.
    hits = s3[("agentic_grammar_cache_lookups_total", (("result", "hit"),))]
    assert hits >= 1 + 3 and hits == s1[("agentic_grammar_cache_lookups_total", (("result", "hit"),))] + 3
