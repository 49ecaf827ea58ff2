"""Any error or timeout inside the injection returns the hidden states unchanged, counted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from agentic_llm.aga import AGAPlugin
from agentic_llm.aga.retriever import BaseRetriever, RetrievalQuery, RetrievalResult
from agentic_llm.engine import LLMEngine, SamplingParams

from .conftest import logits, random_ids, small_config


def _loaded_plugin(**cfg: object) -> AGAPlugin:
    plugin = AGAPlugin(small_config(gate2_min_score=-1.0, layers=(1, 2), **cfg))
    g = torch.Generator().manual_seed(0)
    for i in range(6):
        plugin.register(f"k{i}", torch.randn(16, generator=g), torch.randn(64, generator=g))
    return plugin


def test_exception_in_injection_fails_open(llama: torch.nn.Module) -> None:
    ids = torch.tensor(random_ids(2, 8, seed=10))
    base = logits(llama, ids)
    plugin = _loaded_plugin().attach(llama)

    def boom(layer: int) -> None:
        raise RuntimeError(f"injected fault at layer {layer}")

    plugin.runtime.fault_hook = boom
    try:
        assert torch.equal(logits(llama, ids), base)
        assert plugin.get_diagnostics()["forward"]["errors"] == 2
        assert plugin.get_diagnostics()["last_step"]["failed_layers"] == 2
    finally:
        plugin.detach()


def test_exception_on_one_layer_leaves_the_others_working(llama: torch.nn.Module) -> None:
    ids = torch.tensor(random_ids(1, 8, seed=11))
    plugin = _loaded_plugin().attach(llama)

    def fail_layer_1(layer: int) -> None:
        if layer == 1:
            raise ValueError("bad slot")

    plugin.runtime.fault_hook = fail_layer_1
    try:
        logits(llama, ids)
        diag = plugin.get_diagnostics()
        assert diag["forward"]["errors"] == 1
        assert diag["last_step"]["layers_applied"] == 1
    finally:
        plugin.detach()


def test_timeout_fails_open(llama: torch.nn.Module) -> None:
    ids = torch.tensor(random_ids(2, 8, seed=12))
    base = logits(llama, ids)
    plugin = _loaded_plugin(max_forward_timeout_ms=1.0).attach(llama)
    plugin.runtime.fault_hook = lambda layer: time.sleep(0.02)
    try:
        assert torch.equal(logits(llama, ids), base)
        assert plugin.get_diagnostics()["forward"]["timeouts"] == 2
    finally:
        plugin.detach()


def test_fail_open_off_propagates(llama: torch.nn.Module) -> None:
    plugin = _loaded_plugin(fail_open=False).attach(llama)
    plugin.runtime.fault_hook = lambda layer: (_ for _ in ()).throw(RuntimeError("strict"))
    try:
        with pytest.raises(RuntimeError, match="strict"):
            logits(llama, torch.tensor(random_ids(1, 4, seed=13)))
    finally:
        plugin.detach()


class _BrokenRetriever(BaseRetriever):
    def __init__(self, mode: str) -> None:
        self.mode = mode

    def retrieve(self, query: RetrievalQuery) -> list[RetrievalResult]:
        if self.mode == "raise":
            raise ConnectionError("vector db down")
        time.sleep(1.0)
        return []


@pytest.mark.parametrize("mode", ["raise", "hang"])
def test_broken_retriever_fails_open(llama: torch.nn.Module, mode: str) -> None:
    ids = torch.tensor(random_ids(1, 6, seed=14))
    base = logits(llama, ids)
    timeout_ms = 50.0 if mode == "hang" else 10_000.0
    plugin = AGAPlugin(small_config(retriever_timeout_ms=timeout_ms), retriever=_BrokenRetriever(mode))
    plugin.attach(llama)
    try:
        assert torch.equal(logits(llama, ids), base)
        stats = plugin.get_diagnostics()["retrieval"]
        assert stats["calls"] == 1
        assert stats["errors" if mode == "raise" else "timeouts"] == 1
    finally:
        plugin.detach()
        plugin.retrieval.close()  # type: ignore[union-attr]


def test_engine_fault_fails_open(llama_dir: Path) -> None:
    engine = LLMEngine.from_pretrained(llama_dir, num_blocks=64, block_size=16)
    prompts = random_ids(2, 6, seed=15)
    params = SamplingParams(max_tokens=4, temperature=0.0)
    base = [o.output_token_ids for o in engine.generate(prompts, params)]
    plugin = _loaded_plugin().attach(engine)
    plugin.runtime.fault_hook = lambda layer: (_ for _ in ()).throw(RuntimeError("engine fault"))
    try:
        assert [o.output_token_ids for o in engine.generate(prompts, params)] == base
        assert plugin.get_diagnostics()["forward"]["errors"] >= 2
    finally:
        plugin.detach()
