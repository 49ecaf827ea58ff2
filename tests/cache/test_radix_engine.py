"""RadixCache driving the real engine: same greedy tokens, prefill skipped, pages conserved."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentic_llm.benchmarks.cache import build_tiny_model
from agentic_llm.cache.radix import RadixCache
from agentic_llm.engine import LLMEngine, SamplingParams


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("radix-engine"))


def _engine(model_dir: Path, num_blocks: int, radix: bool) -> tuple[LLMEngine, RadixCache | None]:
    engine = LLMEngine.from_pretrained(model_dir, num_blocks=num_blocks, block_size=4)
    cache = None
    if radix:
        cache = RadixCache(engine.pool)
        engine.prefix_cache = cache
        engine.scheduler.prefix_cache = cache
    return engine, cache


def test_prefix_cache_is_transparent_and_skips_prefill(model_dir: Path) -> None:
    shared = list(range(5, 45))  # a shared "system prompt" of ten pages
    prompts = [shared + [60 + i, 61 + i, 62 + i] for i in range(4)]
    params = SamplingParams(max_tokens=6, temperature=0.0, ignore_eos=True)
    plain, _ = _engine(model_dir, 96, radix=False)
    expected = [o.output_token_ids for o in plain.generate(prompts, params)]
    plain.close()

    engine, cache = _engine(model_dir, 96, radix=True)
    assert cache is not None
    first = engine.generate(prompts[:1], params)[0]
    assert first.output_token_ids == expected[0]
    rest = engine.generate(prompts[1:], params)
    assert [o.output_token_ids for o in rest] == expected[1:]
    assert all(o.metrics.num_cached_tokens >= 40 for o in rest)
    assert cache.hit_tokens >= 3 * 40
    cache.check_integrity()
    engine.pool.check_integrity()
    # nothing runs now: every used page is the cache's, and clearing returns them all
    assert engine.pool.num_blocks - engine.pool.num_free == cache.cached_blocks
    cache.clear()
    assert engine.pool.num_free == engine.pool.num_blocks
    engine.close()


def test_small_pool_evicts_through_the_cache(model_dir: Path) -> None:
    params = SamplingParams(max_tokens=4, temperature=0.0, ignore_eos=True)
    engine, cache = _engine(model_dir, 24, radix=True)
    assert cache is not None
    for i in range(6):  # each request needs ~13 pages; the pool has 24
        out = engine.generate([[100 + i] * 48], params)[0]
        assert out.error is None and len(out.output_token_ids) == 4
        cache.check_integrity()
        engine.pool.check_integrity()
    assert cache.evicted_blocks > 0
    engine.close()
