"""Continuous batching gives the same greedy tokens as one request at a time (and as HF)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from agentic_llm.engine import LLMEngine, SamplingParams

from .conftest import build_hf, random_prompts, staggered_equals_solo


def engine(d: Path, **kw: object) -> LLMEngine:
    opts: dict[str, object] = {"num_blocks": 128, "block_size": 4, "shuffle_seed": 5}
    opts.update(kw)
    return LLMEngine.from_pretrained(d, **opts)  # type: ignore[arg-type]


def test_batched_equals_sequential_greedy(checkpoint_factory: Callable[..., Path]) -> None:
    d = checkpoint_factory("qwen2")
    prompts = random_prompts(6, [5, 11, 2, 17, 8, 30])
    params = SamplingParams(max_tokens=24)
    batched = engine(d).generate(prompts, params)
    solo_engine = engine(d)
    sequential = [solo_engine.generate([p], params)[0] for p in prompts]
    for b, s in zip(batched, sequential, strict=True):
        assert b.error is None and b.finish_reason == "length"
        assert b.output_token_ids == s.output_token_ids
        assert len(b.output_token_ids) == 24


def test_staggered_arrivals_equal_sequential(llama_dir: Path) -> None:
    """Requests joining a running batch mid-decode (prefill mixed with decode)."""
    prompts = random_prompts(5, seed=4)
    params = SamplingParams(max_tokens=12)
    staggered_equals_solo(engine(llama_dir), engine(llama_dir), prompts, params, steps_between=1)


def test_chunked_prefill_same_tokens(llama_dir: Path) -> None:
    prompts = random_prompts(3, [40, 25, 9], seed=2)
    params = SamplingParams(max_tokens=10)
    whole = engine(llama_dir).generate(prompts, params)
    chunked = engine(llama_dir, max_num_batched_tokens=7).generate(prompts, params)
    assert [o.output_token_ids for o in whole] == [o.output_token_ids for o in chunked]


def test_greedy_matches_transformers_generate(tmp_path: Path) -> None:
    hf = build_hf("llama3-rope", seed=9)
    hf.save_pretrained(tmp_path)
    prompts = random_prompts(3, [4, 13, 21], seed=9)
    outs = engine(tmp_path).generate(prompts, SamplingParams(max_tokens=30))
    for p, o in zip(prompts, outs, strict=True):
        with torch.no_grad():
            ref = hf.generate(torch.tensor([p]), max_new_tokens=30, do_sample=False)[0, len(p) :]
        assert o.output_token_ids == ref.tolist()


def test_streamed_deltas_add_up(llama_dir: Path) -> None:
    eng = engine(llama_dir)
    rid = eng.add_request(random_prompts(1)[0], SamplingParams(max_tokens=9))
    seen: list[int] = []
    final = None
    while eng.has_unfinished_requests():
        for o in eng.step():
            assert o.request_id == rid
            seen.extend(o.new_token_ids)
            final = o
    assert final is not None and final.finished
    assert seen == final.output_token_ids and len(seen) == 9
    assert final.metrics.first_token_time is not None and final.metrics.num_decode_steps == 9


@pytest.mark.gpu
def test_cuda_batched_equals_sequential_and_cpu(llama_dir: Path) -> None:
    prompts = random_prompts(4, [5, 11, 17, 30])
    params = SamplingParams(max_tokens=16)
    cuda = engine(llama_dir, device="cuda")
    batched = cuda.generate(prompts, params)
    sequential = [cuda.generate([p], params)[0] for p in prompts]
    assert [o.output_token_ids for o in batched] == [o.output_token_ids for o in sequential]
    seeded = SamplingParams(max_tokens=12, temperature=1.0, seed=7)
    a = cuda.generate(prompts[:1], seeded)[0].output_token_ids
    b = cuda.generate(prompts, seeded)[0].output_token_ids
    assert a == b


def test_half_precision_engine_runs(llama_dir: Path) -> None:
    prompts = random_prompts(3, seed=13)
    eng = engine(llama_dir, dtype=torch.bfloat16)
    outs = eng.generate(prompts, SamplingParams(max_tokens=6))
    assert eng.pool.k_store.dtype == torch.bfloat16
    assert next(eng.model.parameters()).dtype == torch.bfloat16
    assert all(o.error is None and len(o.output_token_ids) == 6 for o in outs)
