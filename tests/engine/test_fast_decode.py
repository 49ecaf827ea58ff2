"""Pure-decode steps run through the flat decode runner: bit-identical to the generic
layers, and rebuilt when the model's parameters are replaced."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from agentic_llm.engine import LLMEngine
from agentic_llm.engine.outputs import RequestOutput

from .conftest import generate_staggered, random_prompts


def make(d: Path, fast: bool, weight_dtype: torch.dtype | None = None) -> LLMEngine:
    eng = LLMEngine.from_pretrained(d, num_blocks=96, block_size=4, shuffle_seed=5, weight_dtype=weight_dtype)
    eng.model.decode_runner.enabled = fast
    return eng


def run(eng: LLMEngine, prompts: list[list[int]]) -> list[RequestOutput]:
    # rows leave at different steps; diagnostics record each step's log-probabilities
    return generate_staggered(eng, prompts, (14, 6, 11), top_k=3)


def assert_same(a: list[RequestOutput], b: list[RequestOutput]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.output_token_ids == y.output_token_ids
        assert [(s.logprob, s.entropy, s.top_alternatives) for s in x.diagnostics] == [
            (s.logprob, s.entropy, s.top_alternatives) for s in y.diagnostics
        ]


@pytest.mark.parametrize("weight_dtype", [None, torch.bfloat16])
@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3", "llama-linear-tied"])
def test_bit_identical_to_generic_layers(family: str, weight_dtype: torch.dtype | None,
                                         checkpoint_factory: Callable[..., Path]) -> None:
    """Also with the projections in bf16 (``weight_dtype``): every path casts through
    the same ``decoder_step.linear``."""
    d = checkpoint_factory(family)
    prompts = random_prompts(3, [7, 2, 13], seed=21)
    fast, generic = make(d, True, weight_dtype), make(d, False, weight_dtype)
    out_fast, out_generic = run(fast, prompts), run(generic, prompts)
    assert fast.model.decode_runner.num_steps > 10
    assert generic.model.decode_runner.num_steps == 0
    assert_same(out_fast, out_generic)


def test_replaced_parameters_are_followed(llama_dir: Path) -> None:
    prompts = random_prompts(3, [5, 9, 3], seed=22)
    engines = make(llama_dir, True), make(llama_dir, False)

    def replace(eng: LLMEngine, name: str) -> None:
        mod, attr = name.rsplit(".", 1)
        module = eng.model.get_submodule(mod)
        old = getattr(module, attr)
        g = torch.Generator().manual_seed(3)
        setattr(module, attr, torch.nn.Parameter(old.detach() + 0.05 * torch.randn(old.shape, generator=g),
                                                 requires_grad=False))

    # an unfused weight: the runner rebuilds its tuples and keeps running
    for eng in engines:
        replace(eng, "model.layers.1.self_attn.o_proj.weight")
    before = engines[0].model.decode_runner.num_steps
    assert_same(run(engines[0], prompts), run(engines[1], prompts))
    assert engines[0].model.decode_runner.num_steps > before

    # a fused projection given up: every step takes the generic path, same results
    for eng in engines:
        replace(eng, "model.layers.0.self_attn.k_proj.weight")
    before = engines[0].model.decode_runner.num_steps
    assert_same(run(engines[0], prompts), run(engines[1], prompts))
    assert engines[0].model.decode_runner.num_steps == before
