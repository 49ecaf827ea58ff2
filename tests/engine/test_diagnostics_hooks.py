"""Per-step diagnostics and the decoder hook context."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from agentic_llm.engine import DiagnosticsConfig, LLMEngine, SamplingParams
from agentic_llm.engine.hooks import HookContext, HookPoint
from agentic_llm.errors import ErrorCode

from .conftest import random_prompts


def make(d: Path) -> LLMEngine:
    return LLMEngine.from_pretrained(d, num_blocks=64, block_size=4)


def test_logprob_entropy_topk(llama_dir: Path) -> None:
    eng = make(llama_dir)
    diag = DiagnosticsConfig(top_k=3)
    out = eng.generate(random_prompts(1, [5]), SamplingParams(max_tokens=6), diagnostics=diag)[0]
    assert out.error is None and len(out.diagnostics) == 6
    for i, step in enumerate(out.diagnostics):
        assert step.token_id == out.output_token_ids[i]
        assert step.position == 5 + i
        assert step.logprob <= 0 and step.entropy > 0
        assert len(step.top_alternatives) == 3
        # greedy: the chosen token is the top alternative
        assert step.top_alternatives[0] == (step.token_id, pytest.approx(step.logprob))
        assert step.top_alternatives[0][1] >= step.top_alternatives[1][1] >= step.top_alternatives[2][1]
        assert 0 < step.entropy <= math.log(eng.model_config.vocab_size) + 1e-4
        assert step.to_dict()["token_id"] == step.token_id


def test_attention_weights_of_chosen_layers(llama_dir: Path) -> None:
    eng = make(llama_dir)
    diag = DiagnosticsConfig(top_k=0, attention_layers=(1,), attention_window=8)
    prompts = random_prompts(2, [5, 12])
    outs = eng.generate(prompts, SamplingParams(max_tokens=5), diagnostics=diag)
    heads = eng.model_config.num_attention_heads
    for p, o in zip(prompts, outs, strict=True):
        assert o.error is None and len(o.diagnostics) == 5
        for i, step in enumerate(o.diagnostics):
            ctx = len(p) + i  # keys visible to the query that produced this token
            assert set(step.attention) == {1}
            w = torch.tensor(step.attention[1])
            assert w.shape == (heads, min(8, ctx))
            assert step.attention_start == ctx - w.shape[1]
            assert torch.all(w >= 0)
            total = w.sum(-1)
            if ctx <= 8:  # the whole context fits the window: rows sum to one
                assert torch.allclose(total, torch.ones(heads), atol=1e-5)
            else:
                assert torch.all(total <= 1 + 1e-5)


def test_diagnostics_do_not_change_tokens(llama_dir: Path) -> None:
    prompts = random_prompts(3)
    params = SamplingParams(max_tokens=7)
    plain = make(llama_dir).generate(prompts, params)
    diag = make(llama_dir).generate(prompts, params, diagnostics=DiagnosticsConfig(attention_layers=(0, 1)))
    assert [o.output_token_ids for o in plain] == [o.output_token_ids for o in diag]


def test_bad_diagnostics_layer(llama_dir: Path) -> None:
    eng = make(llama_dir)
    out = eng.generate([[1, 2]], SamplingParams(max_tokens=2), diagnostics=DiagnosticsConfig(attention_layers=(9,)))[0]
    assert out.error is not None and out.error.code is ErrorCode.INVALID_REQUEST


def test_hooks_see_rows_entropy_and_tenants(llama_dir: Path) -> None:
    eng = make(llama_dir)
    seen: list[tuple[HookPoint, int, HookContext, int]] = []

    def spy(point: HookPoint, layer: int, hidden: torch.Tensor, ctx: HookContext) -> torch.Tensor:
        seen.append((point, layer, ctx, hidden.shape[0]))
        return hidden

    eng.model.hooks.add(HookPoint.ATTN_OUTPUT, None, spy)
    eng.model.hooks.add(HookPoint.LAYER_OUTPUT, None, spy)
    eng.add_request([1, 2, 3], SamplingParams(max_tokens=3), hook_info={"namespaces": ["kb/a"], "tenant": "t1"}, request_id="r1")
    eng.add_request([4, 5], SamplingParams(max_tokens=3), request_id="r2")
    eng.step()
    first = [s for s in seen]
    assert {(p, layer) for p, layer, _, _ in first} == {(p, i) for p in HookPoint for i in range(2)}
    ctx = first[0][2]
    assert first[0][3] == 5 and ctx.num_rows == 2
    assert ctx.token_rows.tolist() == [0, 0, 0, 1, 1]
    assert ctx.is_last_token.tolist() == [False, False, True, False, True]
    assert torch.isnan(ctx.prev_entropy).all()  # no previous step yet
    assert ctx.namespaces == [("kb/a",), ()] and ctx.tenants == ["t1", ""]
    assert ctx.request_ids == ["r1", "r2"]
    seen.clear()
    eng.step()
    ctx = seen[0][2]
    assert seen[0][3] == 2 and torch.isfinite(ctx.prev_entropy).all() and (ctx.prev_entropy > 0).all()


def test_hook_can_change_hidden_states(llama_dir: Path) -> None:
    prompt = random_prompts(1, [6])[0]
    base = make(llama_dir).generate([prompt], SamplingParams(max_tokens=8))[0]
    eng = make(llama_dir)

    def steer(point: HookPoint, layer: int, hidden: torch.Tensor, ctx: HookContext) -> torch.Tensor:
        return hidden + 5.0 * torch.sin(torch.arange(hidden.shape[-1], dtype=hidden.dtype))

    eng.model.hooks.add(HookPoint.ATTN_OUTPUT, [0], steer)
    steered = eng.generate([prompt], SamplingParams(max_tokens=8))[0]
    assert steered.output_token_ids != base.output_token_ids


def test_attention_weights_match_transformers(tmp_path: Path) -> None:
    from .conftest import build_hf

    hf = build_hf("qwen2", seed=3)
    hf.save_pretrained(tmp_path)
    hf.config._attn_implementation = "eager"
    prompt = random_prompts(1, [9], seed=4)[0]
    eng = make(tmp_path)
    diag = DiagnosticsConfig(top_k=0, attention_layers=(0, 1), attention_window=6)
    out = eng.generate([prompt], SamplingParams(max_tokens=4), diagnostics=diag)[0]
    seq = torch.tensor([prompt + out.output_token_ids])
    with torch.no_grad():
        attns = hf(seq, output_attentions=True).attentions  # per layer [1, heads, T, T]
    for i, step in enumerate(out.diagnostics):
        q = len(prompt) - 1 + i  # the query position that produced this token
        for layer in (0, 1):
            ref = attns[layer][0, :, q, : q + 1][:, -6:]
            got = torch.tensor(step.attention[layer])
            assert got.shape == ref.shape
            assert torch.allclose(got, ref, atol=1e-5), (i, layer)
