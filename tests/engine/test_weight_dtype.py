"""Projection weights held in bfloat16 under a float32 engine (``weight_dtype``):
which tensors narrow, and that the outputs stay close to the float32 model's (the
flat runner's bit-identity with the generic layers: test_fast_decode.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from agentic_llm.engine import LLMEngine
from agentic_llm.engine.fingerprint import engine_version
from agentic_llm.engine.loader import load_model
from agentic_llm.engine.models.decoder_step import linear

from .conftest import generate_staggered, random_prompts

BF16 = torch.bfloat16


def make(d: Path, fast: bool, weight_dtype: torch.dtype | None = BF16) -> LLMEngine:
    eng = LLMEngine.from_pretrained(d, num_blocks=96, block_size=4, shuffle_seed=5, weight_dtype=weight_dtype)
    eng.model.decode_runner.enabled = fast
    return eng


@pytest.mark.parametrize("family", ["llama", "qwen2", "llama-linear-tied"])
def test_only_projection_weights_narrow(family: str, checkpoint_factory: Callable[..., Path]) -> None:
    model = load_model(checkpoint_factory(family), weight_dtype=BF16).model
    projections = {id(m.weight) for m in model.projection_layers()}
    for name, p in model.named_parameters():
        assert p.dtype == (BF16 if id(p) in projections else torch.float32), name
    # a tied head gets its own narrow copy: the embedding lookup stays float32
    assert model.model.embed_tokens.weight.dtype == torch.float32
    assert model.lm_head.weight.dtype == BF16
    w = model.weights()
    assert w.fused and w.layers[0].qkv.dtype == BF16 and w.layers[0].gate_up.dtype == BF16
    # the fused matrices are still the parameters' storage (in-place updates reach them)
    attn = model.model.layers[0].self_attn
    assert attn.q_proj.weight.data_ptr() == w.layers[0].qkv.data_ptr()


def test_linear_keeps_the_compute_dtype() -> None:
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(3, 16, generator=g), torch.randn(8, 16, generator=g), torch.randn(8, generator=g)
    y = linear(x, w.to(BF16), b)
    assert y.dtype == torch.float32
    # the product of the bf16-rounded operands, the bias added in float32
    ref = (x.to(BF16).float() @ w.to(BF16).float().t()).to(BF16).float() + b
    assert torch.allclose(y, ref, atol=1e-6)
    assert torch.equal(linear(x, w, b), torch.nn.functional.linear(x, w, b))


def test_close_to_float32(checkpoint_factory: Callable[..., Path]) -> None:
    d = checkpoint_factory("llama")
    prompts = random_prompts(4, [9, 5, 12, 7], seed=24)
    full, narrow = make(d, True, None), make(d, True)
    a = generate_staggered(full, prompts, (6, 6, 6, 6), top_k=5)
    b = generate_staggered(narrow, prompts, (6, 6, 6, 6), top_k=5)
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        assert x.output_token_ids[0] == y.output_token_ids[0]
        for sx, sy in zip(x.diagnostics, y.diagnostics, strict=True):
            if sx.token_id != sy.token_id:
                break  # greedy paths parted: later steps read other contexts
            ly = dict(sy.top_alternatives)
            worst = max([worst, abs(sx.logprob - sy.logprob), abs(sx.entropy - sy.entropy),
                         *(abs(lp - ly[t]) for t, lp in sx.top_alternatives if t in ly)])
    # bf16 keeps 8 significant bits: log-probabilities move by hundredths at most
    assert 0 < worst < 0.05
    # the narrow model holds the projections in half the bytes
    full_bytes = sum(m.weight.nbytes for m in full.model.projection_layers())
    narrow_bytes = sum(m.weight.nbytes for m in narrow.model.projection_layers())
    assert narrow_bytes * 2 == full_bytes


def test_subgraph_cache_version_names_the_precision(llama_dir: Path) -> None:
    full = engine_version(llama_dir)
    assert engine_version(llama_dir, precision="float32") == full
    narrow = engine_version(llama_dir, precision="float32-wbfloat16")
    assert narrow != full and narrow.startswith(full)
