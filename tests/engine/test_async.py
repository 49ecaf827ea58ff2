"""AsyncLLMEngine: a loop thread and ``async for`` streaming of token deltas."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentic_llm.engine import AsyncLLMEngine, LLMEngine, SamplingParams
from agentic_llm.errors import AgenticError, ErrorCode

from .conftest import random_prompts


def test_streams_match_sync_generate(llama_dir: Path) -> None:
    prompts = random_prompts(3, seed=12)
    params = SamplingParams(max_tokens=10)
    ref = LLMEngine.from_pretrained(llama_dir, num_blocks=64, block_size=4).generate(prompts, params)
    aeng = AsyncLLMEngine.from_pretrained(llama_dir, num_blocks=64, block_size=4)

    async def collect(p: list[int]) -> tuple[list[int], int, str | None]:
        tokens: list[int] = []
        chunks = 0
        reason = None
        async for out in aeng.generate(p, params):
            tokens.extend(out.new_token_ids)
            chunks += 1
            reason = out.finish_reason
        return tokens, chunks, reason

    async def main() -> list[tuple[list[int], int, str | None]]:
        return await asyncio.gather(*(collect(p) for p in prompts))

    try:
        results = asyncio.run(main())
    finally:
        aeng.shutdown()
    for (tokens, chunks, reason), r in zip(results, ref, strict=True):
        assert tokens == r.output_token_ids and reason == "length"
        assert chunks == 10  # one delta per decode step


def test_breaking_out_aborts_and_frees(llama_dir: Path) -> None:
    aeng = AsyncLLMEngine.from_pretrained(llama_dir, num_blocks=64, block_size=4)

    async def main() -> int:
        n = 0
        async for out in aeng.generate([1, 2, 3], SamplingParams(max_tokens=200, ignore_eos=True)):
            n += len(out.new_token_ids)
            if n >= 3:
                break
        await asyncio.sleep(0.2)
        return n

    try:
        assert asyncio.run(main()) == 3
        st = aeng.stats()
        assert st["running"] == 0 and st["waiting"] == 0 and st["blocks_free"] == st["blocks_total"]
    finally:
        aeng.shutdown()


def test_errors_are_streamed_and_shutdown_refuses(llama_dir: Path) -> None:
    aeng = AsyncLLMEngine.from_pretrained(llama_dir, num_blocks=64, block_size=4)

    async def main() -> list[object]:
        return [o async for o in aeng.generate([], SamplingParams(max_tokens=3))]

    outs = asyncio.run(main())
    assert len(outs) == 1 and outs[0].error.code is ErrorCode.INVALID_REQUEST  # type: ignore[attr-defined]
    aeng.shutdown()
    with pytest.raises(AgenticError) as exc:
        aeng.submit([1], None, lambda o: None)
    assert exc.value.code is ErrorCode.UNAVAILABLE
