"""The optional compiled decode step: same tokens and logits (within float rounding)
as the eager step where a C++ compiler exists; the eager step, with a warning, where
none does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from agentic_llm.engine import LLMEngine
from agentic_llm.engine.models.compiled_decode import compiler_available
from agentic_llm.engine.outputs import RequestOutput

from .conftest import generate_staggered, random_prompts


def make(d: Path, compiled: bool) -> LLMEngine:
    return LLMEngine.from_pretrained(d, num_blocks=96, block_size=4, shuffle_seed=6, compile_decode=compiled)


def run(eng: LLMEngine, prompts: list[list[int]]) -> list[RequestOutput]:
    # rows leave at different steps, and the last one decodes alone (the eager step)
    return generate_staggered(eng, prompts, (12, 5, 16), top_k=4)


def assert_close(a: list[RequestOutput], b: list[RequestOutput]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.output_token_ids == y.output_token_ids
        for s, t in zip(x.diagnostics, y.diagnostics, strict=True):
            assert s.logprob == pytest.approx(t.logprob, rel=1e-4, abs=1e-4)
            assert s.entropy == pytest.approx(t.entropy, rel=1e-4, abs=1e-4)
            assert [i for i, _ in s.top_alternatives] == [i for i, _ in t.top_alternatives]


# one family: a compile costs tens of seconds on a small CI machine (Qwen3's per-head
# norms go through the same function; run with "qwen3" added to check them)
@pytest.mark.parametrize("family", ["llama"])
def test_compiled_step_matches_eager(family: str, checkpoint_factory: Callable[..., Path]) -> None:
    d = checkpoint_factory(family)
    prompts = random_prompts(3, [6, 11, 2], seed=31)
    ok, why = compiler_available(torch.device("cpu"))
    if ok:
        compiled = make(d, True)
    else:  # no compiler on this machine: the engine says so and decodes eagerly
        with pytest.warns(RuntimeWarning, match="compiled decode is off"):
            compiled = make(d, True)
    eager = make(d, False)
    assert_close(run(compiled, prompts), run(eager, prompts))
    stats = compiled.stats()
    if ok:
        assert stats["compiled_decode_off_reason"] == ""
        assert stats["compiled_decode_steps"] > 5
        assert stats["decode_compile_s"] > 0
        # the step that decodes one row alone runs eagerly
        assert stats["fast_decode_steps"] > stats["compiled_decode_steps"]
    else:
        assert stats["compiled_decode_off_reason"] == why
        assert stats["compiled_decode_steps"] == 0
    assert eager.stats()["compiled_decode_steps"] == 0
    compiled.pool.check_integrity()
    if ok:  # a weight replaced by one in another layout: the step it was compiled for is given up
        for eng in (compiled, eager):
            proj = eng.model.model.layers[0].self_attn.o_proj
            proj.weight = torch.nn.Parameter(proj.weight.detach().contiguous() * 1.01, requires_grad=False)
        with pytest.warns(RuntimeWarning, match="layout"):
            out = run(compiled, prompts)
        assert compiled.stats()["compiled_decode_steps"] == stats["compiled_decode_steps"]
        assert_close(out, run(eager, prompts))


def test_missing_compiler_falls_back_to_eager(llama_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(inductor_config.cpp, "cxx", ("/nonexistent/c++-for-this-test",))
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        eng = make(llama_dir, True)
    prompts = random_prompts(3, [6, 11, 2], seed=32)
    out = run(eng, prompts)
    stats = eng.stats()
    assert stats["compiled_decode_steps"] == 0 and stats["fast_decode_steps"] > 5
    assert "compiler" in stats["compiled_decode_off_reason"]
    ref = run(make(llama_dir, False), prompts)
    assert [o.output_token_ids for o in out] == [o.output_token_ids for o in ref]
