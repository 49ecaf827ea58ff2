"""Preemption by recompute and the prefix cache leave greedy outputs unchanged."""

from __future__ import annotations

from pathlib import Path

from agentic_llm.cache.radix import RadixCache
from agentic_llm.engine import LLMEngine, SamplingParams

from .conftest import random_prompts


def make(d: Path, **kw: object) -> LLMEngine:
    opts: dict[str, object] = {"block_size": 4, "shuffle_seed": 1}
    opts.update(kw)
    return LLMEngine.from_pretrained(d, **opts)  # type: ignore[arg-type]


def test_preemption_and_resume_same_greedy_output(llama_dir: Path) -> None:
    prompts = random_prompts(4, [6, 9, 5, 7], seed=5)
    params = SamplingParams(max_tokens=20)
    roomy = make(llama_dir, num_blocks=128).generate(prompts, params)
    tight = make(llama_dir, num_blocks=12)  # 48 slots for ~110 tokens: must preempt
    outs = tight.generate(prompts, params)
    assert tight.stats()["preemptions"] > 0
    assert sum(o.metrics.num_preemptions for o in outs) > 0
    assert [o.output_token_ids for o in outs] == [o.output_token_ids for o in roomy]
    tight.pool.check_integrity()
    assert tight.pool.num_free == tight.pool.num_blocks


def test_seeded_sampling_survives_preemption(llama_dir: Path) -> None:
    prompts = random_prompts(4, [6, 9, 5, 7], seed=6)
    params = [SamplingParams(max_tokens=18, temperature=1.0, seed=i) for i in range(4)]
    roomy = make(llama_dir, num_blocks=128).generate(prompts, params)
    tight = make(llama_dir, num_blocks=11)
    outs = tight.generate(prompts, params)
    assert tight.stats()["preemptions"] > 0
    assert [o.output_token_ids for o in outs] == [o.output_token_ids for o in roomy]


def test_prefix_cache_hits_and_keeps_outputs(llama_dir: Path) -> None:
    shared = random_prompts(1, [13], seed=7)[0]
    prompts = [shared + tail for tail in ([1, 2], [3], [4, 5, 6])]
    params = SamplingParams(max_tokens=8)
    plain = make(llama_dir, num_blocks=64).generate(prompts, params)
    eng = make(llama_dir, num_blocks=64, prefix_cache=RadixCache)
    first = eng.generate(prompts[:1], params)
    rest = eng.generate(prompts[1:], params)
    outs = first + rest
    assert [o.output_token_ids for o in outs] == [o.output_token_ids for o in plain]
    assert rest[0].metrics.num_cached_tokens == 12 and rest[1].metrics.num_cached_tokens == 12
    st = eng.stats()
    assert st["prefix_hit_tokens"] >= 24 and st["prefix_queries_tokens"] > st["prefix_hit_tokens"]
    eng.pool.check_integrity()
    assert isinstance(eng.prefix_cache, RadixCache)
    eng.prefix_cache.check_integrity()
    # only the cache holds pages now, one reference each
    cached = eng.prefix_cache.cached_block_ids()
    assert eng.pool.num_blocks - eng.pool.num_free == len(cached)
    assert all(eng.pool.ref_count(b) == 1 for b in cached)


def test_full_pool_evicts_from_prefix_cache(llama_dir: Path) -> None:
    eng = make(llama_dir, num_blocks=10, prefix_cache=RadixCache)
    params = SamplingParams(max_tokens=6)
    for seed in range(4):  # each leaves ~5 cached pages behind
        out = eng.generate([random_prompts(1, [16], seed=seed)[0]], params)[0]
        assert out.error is None and len(out.output_token_ids) == 6
    eng.pool.check_integrity()
    assert isinstance(eng.prefix_cache, RadixCache)
    assert eng.prefix_cache.evicted_blocks > 0


def test_preemption_with_prefix_cache(llama_dir: Path) -> None:
    prompts = random_prompts(4, [6, 9, 5, 7], seed=5)
    params = SamplingParams(max_tokens=20)
    roomy = make(llama_dir, num_blocks=128).generate(prompts, params)
    eng = make(llama_dir, num_blocks=12, prefix_cache=RadixCache)
    outs = eng.generate(prompts, params)
    assert eng.stats()["preemptions"] > 0
    assert [o.output_token_ids for o in outs] == [o.output_token_ids for o in roomy]
    eng.pool.check_integrity()
    # a resumed request matches its own output in the prefix cache too; only prompt
    # tokens count as cached (exporters derive prefilled tokens from the difference)
    assert any(o.metrics.num_preemptions for o in outs)
    assert all(0 <= o.metrics.num_cached_tokens <= len(o.prompt_token_ids) for o in outs)
