"""With an empty store or a closed gate the model's outputs are bit-identical; detach restores."""

from __future__ import annotations

from pathlib import Path

import torch

from agentic_llm.aga import AGAPlugin
from agentic_llm.engine import LLMEngine, SamplingParams
from agentic_llm.engine.diagnostics import DiagnosticsConfig

from .conftest import logits, random_ids, small_config


def _fill(plugin: AGAPlugin, n: int, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        plugin.register(f"k{i}", torch.randn(plugin.config.bottleneck_dim, generator=g),
                        torch.randn(plugin.config.hidden_dim, generator=g))


def test_hf_empty_store_is_bit_identical_and_detach_restores(llama: torch.nn.Module) -> None:
    ids = torch.tensor(random_ids(3, 10, seed=1))
    base = logits(llama, ids)
    plugin = AGAPlugin(small_config(layers=(0, 2, 3))).attach(llama)
    try:
        assert torch.equal(logits(llama, ids), base)
        gen_base = None
        gen = llama.generate(ids[:1], max_new_tokens=5, do_sample=False)
    finally:
        plugin.detach()
    gen_base = llama.generate(ids[:1], max_new_tokens=5, do_sample=False)
    assert torch.equal(gen, gen_base)
    assert torch.equal(logits(llama, ids), base)


def test_hf_closed_gate_is_bit_identical(llama: torch.nn.Module) -> None:
    ids = torch.tensor(random_ids(2, 9, seed=2))
    base = logits(llama, ids)
    # Knowledge present and routable (min score -1), but Gate-1 never opens.
    cfg = small_config(tau_low=1e6, tau_high=2e6, gate1_unknown_uncertainty=0.0,
                       gate2_min_score=-1.0, layers=(1, 2))
    plugin = AGAPlugin(cfg).attach(llama)
    _fill(plugin, 20)
    try:
        assert torch.equal(logits(llama, ids), base)
        assert plugin.get_diagnostics()["forward"]["activation_rate"] == 0.0
    finally:
        plugin.detach()


def test_hf_open_gate_changes_outputs_and_detach_restores(llama: torch.nn.Module) -> None:
    ids = torch.tensor(random_ids(2, 9, seed=3))
    base = logits(llama, ids)
    plugin = AGAPlugin(small_config(gate2_min_score=-1.0, layers=(1,))).attach(llama)
    _fill(plugin, 8)
    changed = logits(llama, ids)
    plugin.detach()
    assert not torch.equal(changed, base)
    assert torch.equal(logits(llama, ids), base)


def _engine_run(engine: LLMEngine, prompts: list[list[int]], namespaces: list[list[str]] | None = None,
                max_tokens: int = 6) -> dict[str, list[tuple[int, float, float]]]:
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    rids = []
    for i, p in enumerate(prompts):
        hook = {"namespaces": namespaces[i]} if namespaces else None
        rids.append(engine.add_request(p, params, None, DiagnosticsConfig(top_k=3), hook_info=hook))
    done: dict[str, list[tuple[int, float, float]]] = {r: [] for r in rids}
    finished: set[str] = set()
    while len(finished) < len(rids):
        for o in engine.step():
            done[o.request_id].extend((d.token_id, d.logprob, d.entropy) for d in o.diagnostics)
            if o.finished:
                finished.add(o.request_id)
    return {r: done[r] for r in rids} | {"order": rids}  # type: ignore[dict-item]


def _by_order(res: dict) -> list:
    return [res[r] for r in res["order"]]


def test_engine_empty_store_and_closed_gate_are_bit_identical(llama_dir: Path) -> None:
    engine = LLMEngine.from_pretrained(llama_dir, num_blocks=64, block_size=16)
    prompts = random_ids(3, 7, seed=4)
    base = _by_order(_engine_run(engine, prompts))
    plugin = AGAPlugin(small_config(layers=(0, 3))).attach(engine.model)
    try:
        assert _by_order(_engine_run(engine, prompts)) == base
        assert plugin.get_diagnostics()["steps"] > 0
        plugin.detach()
        plugin = AGAPlugin(small_config(tau_low=1e6, tau_high=2e6, gate1_unknown_uncertainty=0.0,
                                        gate2_min_score=-1.0, layers=(1,))).attach(engine)
        _fill(plugin, 10)
        assert _by_order(_engine_run(engine, prompts)) == base
    finally:
        plugin.detach()
    assert not engine.model.hooks
    assert _by_order(_engine_run(engine, prompts)) == base


def test_engine_injection_changes_outputs_then_detach_restores(llama_dir: Path) -> None:
    engine = LLMEngine.from_pretrained(llama_dir, num_blocks=64, block_size=16)
    prompts = random_ids(2, 7, seed=5)
    base = _by_order(_engine_run(engine, prompts))
    plugin = AGAPlugin(small_config(gate2_min_score=-1.0, layers=(1,))).attach(engine)
    _fill(plugin, 8)
    injected = _by_order(_engine_run(engine, prompts))
    plugin.detach()
    assert injected != base
    assert _by_order(_engine_run(engine, prompts)) == base
