"""Scrape the real /metrics endpoint while the real engine generates on a tiny model."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from agentic_llm.observability.config import ObservabilityConfig
from agentic_llm.observability.engine_probe import EngineObserver
from agentic_llm.observability.events import EventBus
from agentic_llm.observability.stack import ObservabilityStack

from .tiny_model import write_tiny_llama

BLOCK = 16
NUM_BLOCKS = 64


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_generation_moves_engine_metrics(tiny_llama: Path) -> None:
    from agentic_llm.cache import RadixCache
    from agentic_llm.engine import LLMEngine, SamplingParams

    engine = LLMEngine.from_pretrained(tiny_llama, num_blocks=NUM_BLOCKS, block_size=BLOCK)
    radix = RadixCache(engine.pool)
    engine.prefix_cache = radix
    engine.scheduler.prefix_cache = radix
    bus = EventBus()
    stack = ObservabilityStack(ObservabilityConfig(), bus=bus).start()
    try:
        stack.bind_engine(engine)
        observer = EngineObserver(engine, bus)
        prompt = [int(t) for t in torch.arange(3, 3 + 2 * BLOCK + 8) % 128]  # 2 full blocks + 8
        params = SamplingParams(max_tokens=4, ignore_eos=True, seed=0)

        s0 = scrape(stack.url)
        assert s0[("agentic_prefix_cache_hit_tokens_total", ())] == 0
        first = engine.generate([prompt], params, observers=[observer])[0]
        s1 = scrape(stack.url)
        second = engine.generate([prompt], params, observers=[observer])[0]
        s2 = scrape(stack.url)
        assert first.output_token_ids == second.output_token_ids  # same seed, greedy

        # The second identical prompt hits the radix cache: its full blocks are reused.
        assert s1[("agentic_prefix_cache_query_tokens_total", ())] > 0
        hit_gain = (s2[("agentic_prefix_cache_hit_tokens_total", ())]
                    - s1[("agentic_prefix_cache_hit_tokens_total", ())])
        assert hit_gain >= 2 * BLOCK
        assert hit_gain == radix.hit_tokens  # the exported counter is the cache's own count

        ok = ("agentic_requests_total", (("error_code", "none"), ("outcome", "success")))
        assert s1[ok] == 1 and s2[ok] == 2
        assert s2[("agentic_request_ttft_seconds_count", ())] == 2
        assert s2[("agentic_request_tpot_seconds_count", ())] == 2
        assert s2[("agentic_generation_tokens_total", ())] == 8
        assert s2[("agentic_prompt_tokens_total", ())] == 2 * len(prompt)
        assert s2[("agentic_budget_stops_total", (("kind", "max_tokens"),))] == 2
        assert s2[("agentic_engine_steps_total", ())] > s1[("agentic_engine_steps_total", ())] > 0
        assert s2[("agentic_engine_step_seconds_count", ())] == s2[("agentic_engine_steps_total", ())]
        # KV gauges describe the real pool and move with the cache's retained pages.
        used, free = s2[("agentic_kv_pages_used", ())], s2[("agentic_kv_pages_free", ())]
        assert used + free == NUM_BLOCKS and used > 0
        assert s2[("agentic_queue_depth", ())] == 0 and s2[("agentic_running_requests", ())] == 0

        with urllib.request.urlopen(stack.url + "/health", timeout=5) as r:
            body = json.loads(r.read())
        assert r.status == 200 and body["checks"]["kv_pool"]["data"]["pages_used"] == used
    finally:
        stack.shutdown()
        engine.close()


def test_idle_observer_still_steps(tiny_llama: Path) -> None:
    from agentic_llm.engine import LLMEngine, SamplingParams

    engine = LLMEngine.from_pretrained(tiny_llama, num_blocks=NUM_BLOCKS, block_size=BLOCK)
    bus = EventBus()  # nobody subscribes: the observer must not time or read stats
    observer = EngineObserver(engine, bus)
    out = engine.generate([[1, 2, 3]], SamplingParams(max_tokens=3, ignore_eos=True), observers=[observer])[0]
    assert len(out.output_token_ids) == 3
    assert bus.stats().emitted == 0
    engine.close()
