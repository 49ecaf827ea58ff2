"""Bad requests end with a clear ERR_* error; the loop and the other requests go on."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from agentic_llm.engine import LLMEngine, SamplingParams
from agentic_llm.engine.hooks import HookContext, HookPoint
from agentic_llm.engine.loop import ChannelItem, EngineLoop
from agentic_llm.engine.outputs import RequestOutput
from agentic_llm.errors import AgenticError, ErrorCode

from .conftest import random_prompts


def make(d: Path, **kw: object) -> LLMEngine:
    opts: dict[str, object] = {"num_blocks": 64, "block_size": 4}
    opts.update(kw)
    return LLMEngine.from_pretrained(d, **opts)  # type: ignore[arg-type]


def test_prompt_longer_than_context(checkpoint_factory: Callable[..., Path]) -> None:
    d = checkpoint_factory("llama", max_position_embeddings=32)
    eng = make(d)
    ok = random_prompts(2, [5, 9])
    outs = eng.generate([ok[0], list(range(40)), ok[1]], SamplingParams(max_tokens=8))
    assert outs[1].finished and outs[1].finish_reason == "error"
    assert outs[1].error is not None and outs[1].error.code is ErrorCode.CONTEXT_TOO_LONG
    assert "32" in outs[1].error.message
    ref = make(d).generate(ok, SamplingParams(max_tokens=8))
    assert [outs[0].output_token_ids, outs[2].output_token_ids] == [r.output_token_ids for r in ref]


def test_generation_stops_at_context_end(checkpoint_factory: Callable[..., Path]) -> None:
    d = checkpoint_factory("llama", max_position_embeddings=32)
    out = make(d).generate([list(range(30))], SamplingParams(max_tokens=50))[0]
    assert out.finish_reason == "length" and len(out.output_token_ids) == 2


def test_request_larger_than_pool_fails_alone(llama_dir: Path) -> None:
    eng = make(llama_dir, num_blocks=4)  # 16 slots: the context is capped to the pool
    assert eng.max_model_len == 16
    outs = eng.generate([list(range(20)), [1, 2, 3]], SamplingParams(max_tokens=5))
    assert outs[0].error is not None and outs[0].error.code is ErrorCode.CONTEXT_TOO_LONG
    assert outs[1].error is None and len(outs[1].output_token_ids) == 5


def test_max_tokens_zero_is_refused() -> None:
    with pytest.raises(AgenticError) as exc:
        SamplingParams(max_tokens=0)
    assert exc.value.code is ErrorCode.INVALID_REQUEST and "max_tokens" in exc.value.message


@pytest.mark.parametrize("prompt", [[], [5, 100000], [-1]])
def test_invalid_prompt_ids(llama_dir: Path, prompt: list[int]) -> None:
    eng = make(llama_dir)
    outs = eng.generate([prompt, [1, 2]], SamplingParams(max_tokens=3))
    assert outs[0].error is not None and outs[0].error.code is ErrorCode.INVALID_REQUEST
    assert outs[1].error is None and len(outs[1].output_token_ids) == 3


def test_unknown_model_dir(tmp_path: Path) -> None:
    with pytest.raises(AgenticError) as exc:
        LLMEngine.from_pretrained(tmp_path / "nope")
    assert exc.value.code is ErrorCode.MODEL_NOT_FOUND and "nope" in exc.value.message


def test_nan_checkpoint_errors_every_request_and_loop_survives(llama_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((llama_dir / "config.json").read_text())
    state = load_file(str(llama_dir / "model.safetensors"))
    state["model.layers.1.mlp.down_proj.weight"][0, 0] = float("nan")
    save_file(state, str(broken / "model.safetensors"))
    eng = make(broken)
    outs = eng.generate(random_prompts(3), SamplingParams(max_tokens=4))
    for o in outs:
        assert o.error is not None and o.error.code is ErrorCode.NUMERIC
    assert not eng.has_unfinished_requests()
    eng.pool.check_integrity()
    assert eng.pool.num_free == eng.pool.num_blocks


def test_nan_in_one_row_spares_the_others(llama_dir: Path) -> None:
    prompts = random_prompts(3, seed=6)
    params = SamplingParams(max_tokens=10)
    ref = make(llama_dir).generate(prompts, params)
    eng = make(llama_dir)

    def poison(point: HookPoint, layer: int, hidden: torch.Tensor, ctx: HookContext) -> torch.Tensor:
        if "bad" not in ctx.request_ids:
            return hidden
        row = ctx.request_ids.index("bad")
        hidden = hidden.clone()
        hidden[ctx.token_rows == row] = float("nan")
        return hidden

    eng.model.hooks.add(HookPoint.LAYER_OUTPUT, [0], poison)
    rids = [eng.add_request(p, params, request_id=rid) for p, rid in zip(prompts, ["a", "bad", "c"], strict=True)]
    final = {}
    while eng.has_unfinished_requests():
        for o in eng.step():
            if o.finished:
                final[o.request_id] = o
    assert final["bad"].error is not None and final["bad"].error.code is ErrorCode.NUMERIC
    assert final["a"].output_token_ids == ref[0].output_token_ids
    assert final["c"].output_token_ids == ref[2].output_token_ids
    assert set(final) == set(rids)


def test_failing_hook_errors_the_batch_not_the_loop(llama_dir: Path) -> None:
    eng = make(llama_dir)

    def boom(point: HookPoint, layer: int, hidden: torch.Tensor, ctx: HookContext) -> torch.Tensor:
        raise RuntimeError("plugin bug")

    eng.model.hooks.add(HookPoint.ATTN_OUTPUT, [1], boom)
    outs = eng.generate(random_prompts(2), SamplingParams(max_tokens=3))
    assert all(o.error is not None and o.error.code is ErrorCode.INTERNAL for o in outs)
    eng.model.hooks.remove(boom)
    again = eng.generate(random_prompts(2), SamplingParams(max_tokens=3))
    assert all(o.error is None and len(o.output_token_ids) == 3 for o in again)
    eng.pool.check_integrity()


def test_abort_and_timeout(llama_dir: Path) -> None:
    # Deadlines and cancellation belong to the engine loop (the one place that steps).
    eng = make(llama_dir)
    loop = EngineLoop(eng, thread=False)
    final: dict[str, RequestOutput] = {}

    def keep(item: ChannelItem) -> None:
        if item.finished and item.output is not None:
            final[item.output.request_id] = item.output

    a = loop.submit([1, 2, 3], SamplingParams(max_tokens=50, ignore_eos=True), sink=keep).request_id
    t = loop.submit([4, 5], SamplingParams(max_tokens=50, timeout_s=0.05), sink=keep).request_id
    k = loop.submit([6, 7], SamplingParams(max_tokens=6), sink=keep).request_id
    loop.run_once()
    assert eng.abort(a) and not eng.abort(a) and not eng.abort("unknown")
    time.sleep(0.06)
    loop.drain()
    assert final[a].finish_reason == "abort" and final[a].error.code is ErrorCode.CANCELLED  # type: ignore[union-attr]
    assert final[t].finish_reason == "timeout" and final[t].error.code is ErrorCode.TIMEOUT  # type: ignore[union-attr]
    assert final[k].error is None and len(final[k].output_token_ids) == 6
    assert eng.pool.num_free == eng.pool.num_blocks


def test_duplicate_request_id(llama_dir: Path) -> None:
    eng = make(llama_dir)
    eng.add_request([1, 2], SamplingParams(max_tokens=2), request_id="x")
    dup = eng.add_request([1, 2], SamplingParams(max_tokens=2), request_id="x")
    outs = {o.request_id: o for o in eng.step()}
    assert outs[dup].error is not None and outs[dup].error.code is ErrorCode.INVALID_REQUEST
