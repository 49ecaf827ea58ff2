"""Requests prefilled together compute the full pages their prompts share once."""

from __future__ import annotations

from pathlib import Path

import torch

from agentic_llm.engine import LLMEngine, SamplingParams
from agentic_llm.engine.hooks import HookContext, HookPoint
from agentic_llm.engine.prefill_share import plan_shared_prefill
from agentic_llm.engine.stepper import run_step
from agentic_llm.scheduler import Request, ScheduledRow

from .conftest import random_prompts

BLOCK = 4


def make(d: Path, **kw: object) -> LLMEngine:
    opts: dict[str, object] = {"num_blocks": 128, "block_size": BLOCK, "shuffle_seed": 2}
    opts.update(kw)
    return LLMEngine.from_pretrained(d, **opts)  # type: ignore[arg-type]


def shared_prompts() -> list[list[int]]:
    stem = random_prompts(1, [14], seed=11)[0]
    tails = random_prompts(3, [3, 1, 9], seed=12)
    return [stem + t for t in tails] + random_prompts(1, [10], seed=13)


def test_same_tokens_and_pages_as_computing_each(llama_dir: Path) -> None:
    prompts = shared_prompts()
    params = SamplingParams(max_tokens=12)
    eng, ref = make(llama_dir), make(llama_dir, share_prefill_prefixes=False)
    outs, ref_outs = eng.generate(prompts, params), ref.generate(prompts, params)
    assert [o.output_token_ids for o in outs] == [o.output_token_ids for o in ref_outs]
    # rows 2 and 3 reuse the first row's 3 full pages (12 tokens)
    assert eng.stats()["shared_prefill_tokens"] == 24
    assert ref.stats()["shared_prefill_tokens"] == 0
    for e in (eng, ref):
        e.pool.check_integrity()
        assert e.pool.num_free == e.pool.num_blocks


def test_copied_pages_hold_the_same_kv(llama_dir: Path) -> None:
    prompts = shared_prompts()
    params = SamplingParams(max_tokens=1)
    engines = [make(llama_dir), make(llama_dir, share_prefill_prefixes=False)]
    tables = []
    for e in engines:
        rids = [e.add_request(p, params) for p in prompts]
        run_step(e)  # the prefill step alone: the requests still hold their pages
        tables.append([list(e.requests[r].block_table) for r in rids])
    assert tables[0] == tables[1]
    for table in tables[0][1:3]:
        a = engines[0].pool.kv_store[:, :, :, table[:3]]
        b = engines[1].pool.kv_store[:, :, :, table[:3]]
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)


def test_not_shared_while_hooks_see_tokens(llama_dir: Path) -> None:
    eng = make(llama_dir)
    seen: list[int] = []

    def spy(point: HookPoint, layer: int, hidden: torch.Tensor, ctx: HookContext) -> torch.Tensor:
        seen.append(hidden.shape[0])
        return hidden

    eng.model.hooks.add(HookPoint.LAYER_OUTPUT, [0], spy)
    prompts = shared_prompts()
    eng.generate(prompts, SamplingParams(max_tokens=2))
    assert eng.stats()["shared_prefill_tokens"] == 0
    assert seen[0] == sum(len(p) for p in prompts)  # the prefill step: every prompt token


def _row(rid: str, tokens: list[int], table: list[int]) -> ScheduledRow:
    req = Request(request_id=rid, token_ids=tokens, num_prompt_tokens=len(tokens), params=SamplingParams(),
                  generator=torch.Generator())
    req.block_table = table
    return ScheduledRow(req, 0, len(tokens))


def test_plan_keeps_the_last_token_and_chains_donors() -> None:
    stem = list(range(100, 112))  # 3 full pages
    rows = [
        _row("a", stem + [1, 2], [10, 11, 12, 13]),
        _row("b", list(stem), [20, 21, 22]),  # the whole prompt is shared: its last page is computed
        _row("c", stem + [5], [30, 31, 32, 33]),
    ]
    plan = plan_shared_prefill(rows, BLOCK)
    assert plan.chunks[0] == (stem + [1, 2], 0, [10, 11, 12, 13])
    assert plan.chunks[1] == (stem[8:], 8, [10, 11, 22])
    assert plan.chunks[2] == ([5], 12, [10, 11, 12, 33])
    assert plan.src_blocks == [10, 11, 10, 11, 12] and plan.dst_blocks == [20, 21, 30, 31, 32]
    assert plan.shared_tokens == 8 + 12
    off = plan_shared_prefill(rows, BLOCK, enabled=False)
    assert [c[1] for c in off.chunks] == [0, 0, 0] and not off.src_blocks
