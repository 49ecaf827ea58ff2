"""Per-tenant namespaces: a request sees only the knowledge of the namespaces it names."""

from __future__ import annotations

from pathlib import Path

import torch

from agentic_llm.aga import AGAPlugin
from agentic_llm.engine import LLMEngine, SamplingParams

from .conftest import logits, random_ids, small_config


def _tenant_plugin(namespace: str = "tenant_a") -> AGAPlugin:
    plugin = AGAPlugin(small_config(gate2_min_score=-1.0, layers=(1,)))
    g = torch.Generator().manual_seed(7)
    for i in range(4):
        plugin.register(f"a{i}", torch.randn(16, generator=g), 5 * torch.randn(64, generator=g),
                        namespace=namespace)
    return plugin


def test_hf_two_tenants_are_isolated(llama: torch.nn.Module) -> None:
    ids = torch.tensor(random_ids(1, 8, seed=20))
    base = logits(llama, ids)
    plugin = _tenant_plugin().attach(llama)
    try:
        with plugin.using_namespaces("tenant_b"):
            assert torch.equal(logits(llama, ids), base)
        assert torch.equal(logits(llama, ids), base)  # default namespace: nothing there
        with plugin.using_namespaces("tenant_a"):
            a_out = logits(llama, ids)
        assert not torch.equal(a_out, base)
        plugin.register("b0", torch.randn(16), 5 * torch.randn(64), metadata={"namespace": "tenant_b"})
        with plugin.using_namespaces("tenant_a"):
            assert torch.equal(logits(llama, ids), a_out)  # tenant_b's write is invisible to a
        assert plugin.namespaces() == {"tenant_a": 4, "tenant_b": 1}
        assert {e["id"] for e in plugin.list_knowledge("tenant_b")} == {"b0"}
    finally:
        plugin.detach()


def test_hf_per_row_namespaces_in_one_batch(llama: torch.nn.Module) -> None:
    ids = torch.tensor(random_ids(2, 8, seed=21))
    base = logits(llama, ids)
    plugin = _tenant_plugin().attach(llama)
    try:
        with plugin.using_namespaces(("tenant_a",), ("tenant_b",)):
            out = logits(llama, ids)
    finally:
        plugin.detach()
    assert not torch.equal(out[0], base[0])
    assert torch.equal(out[1], base[1])


def test_same_id_in_two_namespaces_are_distinct() -> None:
    plugin = AGAPlugin(small_config())
    plugin.register("policy", torch.ones(16), torch.ones(64), namespace="a")
    plugin.register("policy", torch.ones(16), 2 * torch.ones(64), namespace="b")
    assert plugin.knowledge_count == 2
    assert plugin.remove("policy", "a")
    assert plugin.namespaces() == {"b": 1}
    assert not plugin.remove("policy", "a")


def test_engine_batch_rows_of_two_tenants_are_isolated(llama_dir: Path) -> None:
    engine = LLMEngine.from_pretrained(llama_dir, num_blocks=64, block_size=16)
    prompt = random_ids(1, 7, seed=22)[0]
    params = SamplingParams(max_tokens=5, temperature=0.0)
    base = engine.generate([prompt], params)[0].output_token_ids
    # A row's namespaces are its tenant's: both rows ask for "kb", only tenant_a's
    # "kb" (stored as "tenant_a/kb") holds knowledge.
    plugin = _tenant_plugin("tenant_a/kb").attach(engine)
    try:
        rids = [engine.add_request(prompt, params, hook_info={"namespaces": ["kb"], "tenant": t})
                for t in ("tenant_a", "tenant_b")]
        outs: dict[str, list[int]] = {}
        while len(outs) < 2:
            for o in engine.step():
                if o.finished:
                    outs[o.request_id] = o.output_token_ids
        rows = plugin.row_diagnostics()
    finally:
        plugin.detach()
    assert outs[rids[1]] == base  # tenant_b sees nothing
    assert outs[rids[0]] != base  # tenant_a's knowledge reached its row
    by_req = {r["request_id"]: r for r in rows}
    assert by_req[rids[1]]["aga_applied"] is False


def test_concurrent_threads_keep_their_own_namespaces(llama: torch.nn.Module) -> None:
    import threading

    ids = torch.tensor(random_ids(1, 8, seed=23))
    base = logits(llama, ids)
    plugin = _tenant_plugin().attach(llama)
    try:
        with plugin.using_namespaces("tenant_a"):
            a_ref = logits(llama, ids)
        results: dict[str, list[bool]] = {"tenant_a": [], "tenant_b": []}

        def worker(ns: str, expected: torch.Tensor) -> None:
            with plugin.using_namespaces(ns):
                for _ in range(5):
                    results[ns].append(torch.equal(logits(llama, ids), expected))

        threads = [threading.Thread(target=worker, args=("tenant_a", a_ref)),
                   threading.Thread(target=worker, args=("tenant_b", base))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        plugin.detach()
    assert results == {"tenant_a": [True] * 5, "tenant_b": [True] * 5}
