"""GenerateSubgraph over a real server: result, AST, cache outcomes."""

from __future__ import annotations

from typing import Any

from agentic_llm.dsl import Document
from agentic_llm.serving import CacheOutcome
from tests.server.conftest import REQUEST


def test_unary_returns_valid_subgraph_with_ast(client: Any) -> None:
    req = dict(REQUEST, target_path="/dynamic/unary_1")
    r = client.generate_subgraph(req)
    assert r.valid, r.diagnostics
    assert r.target_path == "/dynamic/unary_1"
    assert "### AgenticDSL `/dynamic/unary_1`" in r.text
    assert isinstance(r.document, Document)
    assert [b.path for b in r.blocks] == ["/dynamic/unary_1"]
    nodes = r.nodes
    assert nodes and nodes[0].id == "start" and nodes[0].type == "start"
    assert all(n.path == f"/dynamic/unary_1/{n.id}" for n in nodes)
    assert r.counts.node_count == len(nodes)
    assert r.counts.prompt_tokens > 0 and r.counts.completion_tokens > 0
    assert r.cache in (CacheOutcome.MISS, CacheOutcome.PREFIX)
    assert r.finish_reason == "stop"
    assert r.timings.total_ms >= r.timings.generate_ms > 0


def test_repeat_is_an_exact_cache_hit(client: Any) -> None:
    req = dict(REQUEST, target_path="/dynamic/repeat_1")
    first = client.generate_subgraph(req)
    again = client.generate_subgraph(req)
    assert first.cache in (CacheOutcome.MISS, CacheOutcome.PREFIX)
    assert again.cache == CacheOutcome.EXACT and again.cache_hit
    assert again.text == first.text
    assert again.counts.completion_tokens == 0 and again.finish_reason == "cache"


def test_second_prompt_reuses_prefix_pages(client: Any) -> None:
    client.generate_subgraph(dict(REQUEST, target_path="/dynamic/prefix_a"))
    r = client.generate_subgraph(dict(REQUEST, target_path="/dynamic/prefix_b"))
    assert r.cache == CacheOutcome.PREFIX
    assert 0 < r.counts.cached_prompt_tokens < r.counts.prompt_tokens


def test_bypass_skips_the_subgraph_cache(client: Any) -> None:
    req = dict(REQUEST, target_path="/dynamic/bypass_1", flags={"bypass_cache": True})
    a = client.generate_subgraph(req)
    b = client.generate_subgraph(req)
    assert a.cache == b.cache == CacheOutcome.BYPASS
    assert b.counts.completion_tokens > 0


def test_prompt_template_with_variables(client: Any) -> None:
    from agentic_llm.client.protos import load

    pb = load().pb2
    msg = pb.GenerateSubgraphRequest(target_path="/dynamic/templ_1",
                                     prompt_template="Plan a trip to {{ city }}")
    msg.variables.update({"city": "Oslo"})
    msg.budget.max_tokens = 200
    resp = client._stub.GenerateSubgraph(msg, timeout=60)
    assert resp.valid and resp.target_path == "/dynamic/templ_1"


def test_cache_stats_and_invalidate_by_prefix_and_tenant(client: Any) -> None:
    client.generate_subgraph(dict(REQUEST, target_path="/dynamic/inval_1"))
    client.generate_subgraph(dict(REQUEST, target_path="/dynamic/inval_2", tenant="acme"))
    stats = client.cache_stats()
    assert stats["entries"] >= 2 and "engine_blocks_total" in stats
    assert client.invalidate_cache(path_prefix="/dynamic/inval_1") == 1
    assert client.invalidate_cache(tenant="acme") == 1
    again = client.generate_subgraph(dict(REQUEST, target_path="/dynamic/inval_1"))
    assert not again.cache_hit
