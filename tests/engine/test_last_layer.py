"""The last layer runs for each row's last token only; with hooks it runs whole, and
inert hooks leave the logits bit-identical."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from agentic_llm.engine.attention import get_backend
from agentic_llm.engine.forward import build_forward_batch
from agentic_llm.engine.hooks import HookContext, HookPoint
from agentic_llm.engine.kv import PagedKVPool
from agentic_llm.engine.loader import load_model

from .conftest import random_prompts

BLOCK = 4


@pytest.mark.parametrize("family", ["llama", "qwen3"])
def test_pruned_last_layer_bit_identical_to_hooked(family: str, checkpoint_factory: Callable[..., Path]) -> None:
    loaded = load_model(checkpoint_factory(family))
    cfg = loaded.config
    prompts = random_prompts(3, [9, 1, 23], seed=4)
    results = []
    for with_hook in (False, True):
        if with_hook:  # any hook keeps every token through every layer
            def keep(point: HookPoint, layer: int, hidden: torch.Tensor, ctx: HookContext) -> torch.Tensor:
                return hidden

            loaded.model.hooks.add(HookPoint.LAYER_OUTPUT, [0], keep)
        pool = PagedKVPool(32, BLOCK, cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.head_dim)
        chunks = [(p, 0, pool.allocate(-(-len(p) // BLOCK))) for p in prompts]
        logits = loaded.model(build_forward_batch(chunks, BLOCK, "cpu"), pool, get_backend("torch_sdpa"))
        results.append((logits, pool.kv_store.clone()))
    (pruned, kv_pruned), (full, kv_full) = results
    assert torch.equal(pruned, full)
    assert torch.equal(kv_pruned, kv_full)
