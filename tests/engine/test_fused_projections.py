"""Fused q/k/v and gate/up matmuls: same logits, in-place updates seen, replaced weights fall back."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agentic_llm.engine.attention import get_backend
from agentic_llm.engine.forward import build_forward_batch
from agentic_llm.engine.kv import PagedKVPool
from agentic_llm.engine.loader import LoadedModel, load_model

from .conftest import VOCAB, build_hf, save

BLOCK = 4


def logits(loaded: LoadedModel, prompts: list[list[int]]) -> torch.Tensor:
    cfg = loaded.config
    pool = PagedKVPool(64, BLOCK, cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.head_dim, shuffle_seed=1)
    chunks = [(p, 0, pool.allocate(-(-len(p) // BLOCK))) for p in prompts]
    return loaded.model(build_forward_batch(chunks, BLOCK, "cpu"), pool, get_backend("torch_sdpa"))


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3"])
def test_fused_paths_match_unfused(family: str, tmp_path: Path) -> None:
    hf = build_hf(family, seed=2)
    loaded = load_model(save(hf, tmp_path / family))
    attn, mlp = loaded.model.model.layers[0].self_attn, loaded.model.model.layers[0].mlp
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, VOCAB, (n,), generator=g).tolist() for n in (9, 3, 17)]
    fused = logits(loaded, prompts)
    with torch.no_grad():
        ref = hf(torch.tensor([prompts[2]])).logits[0, -1]
    assert torch.allclose(fused[2], ref, atol=1e-4, rtol=1e-4)

    # an in-place update of a projection reaches the fused matrix
    with torch.no_grad():
        attn.k_proj.weight.mul_(1.5)
        mlp.up_proj.weight.add_(0.01)
    updated = logits(loaded, prompts)
    assert not torch.allclose(updated, fused)

    # replaced parameters are used as they are (the stale fused matrix is not)
    attn.k_proj.weight = torch.nn.Parameter(attn.k_proj.weight.detach().clone(), requires_grad=False)
    mlp.up_proj.weight = torch.nn.Parameter(mlp.up_proj.weight.detach().clone(), requires_grad=False)
    assert torch.allclose(logits(loaded, prompts), updated, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        attn.k_proj.weight.mul_(2.0)
        mlp.up_proj.weight.mul_(2.0)
    assert not torch.allclose(logits(loaded, prompts), updated, atol=1e-3)


def test_state_dict_keeps_checkpoint_names(tmp_path: Path) -> None:
    hf = build_hf("llama", seed=3)
    loaded = load_model(save(hf, tmp_path / "m"))
    ours = loaded.model.state_dict()
    for name, value in hf.state_dict().items():
        if name in ours:
            assert torch.equal(ours[name], value), name
    assert not any("_qkv" in n or "_fused" in n for n in ours)
