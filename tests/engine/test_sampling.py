"""Seeded sampling is reproducible and independent of the batch; params are validated."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agentic_llm.engine import LLMEngine, SamplingParams
from agentic_llm.engine.sampling import apply_bitmask, sample_row
from agentic_llm.errors import AgenticError, ErrorCode

from .conftest import random_prompts


def make(d: Path) -> LLMEngine:
    return LLMEngine.from_pretrained(d, num_blocks=128, block_size=8)


def test_same_seed_same_tokens_whatever_the_batch(llama_dir: Path) -> None:
    prompt = random_prompts(1, [7], seed=1)[0]
    p = SamplingParams(max_tokens=20, temperature=1.3, top_k=40, top_p=0.9, seed=1234)
    alone = make(llama_dir).generate([prompt], p)[0].output_token_ids
    again = make(llama_dir).generate([prompt], p)[0].output_token_ids
    others = random_prompts(5, seed=8)
    noise = [SamplingParams(max_tokens=n, temperature=1.0, seed=None) for n in (3, 25, 9, 14, 30)]
    mixed = make(llama_dir).generate([*others[:2], prompt, *others[2:]], [*noise[:2], p, *noise[2:]])
    assert alone == again
    assert mixed[2].output_token_ids == alone
    different = make(llama_dir).generate([prompt], SamplingParams(max_tokens=20, temperature=1.3, seed=99))
    assert different[0].output_token_ids != alone


def test_top_k_one_is_greedy(llama_dir: Path) -> None:
    prompts = random_prompts(3, seed=3)
    greedy = make(llama_dir).generate(prompts, SamplingParams(max_tokens=10))
    topk1 = make(llama_dir).generate(prompts, SamplingParams(max_tokens=10, temperature=2.0, top_k=1, seed=5))
    assert [o.output_token_ids for o in greedy] == [o.output_token_ids for o in topk1]


def test_top_p_keeps_only_the_nucleus() -> None:
    logits = torch.tensor([5.0, 4.9, -3.0, -3.0, -3.0])
    g = torch.Generator().manual_seed(0)
    picks = {sample_row(logits, SamplingParams(temperature=1.0, top_p=0.6), g) for _ in range(200)}
    assert picks <= {0, 1} and picks == {0, 1}


def test_bitmask_blocks_disallowed_tokens() -> None:
    logits = torch.zeros((2, 40))
    mask = torch.zeros((2, 2), dtype=torch.int32)
    mask[0, 0] = 1 << 3
    mask[1, 1] = 1 << 2  # token 34
    apply_bitmask(logits, mask)
    assert torch.isfinite(logits[0]).nonzero().flatten().tolist() == [3]
    assert torch.isfinite(logits[1]).nonzero().flatten().tolist() == [34]


@pytest.mark.parametrize(
    "kwargs",
    [{"max_tokens": 0}, {"max_tokens": -3}, {"temperature": -1.0}, {"top_p": 0.0},
     {"top_k": -1}, {"seed": -5}, {"timeout_s": 0}],
)
def test_bad_params_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(AgenticError) as exc:
        SamplingParams(**kwargs)  # type: ignore[arg-type]
    assert exc.value.code is ErrorCode.INVALID_REQUEST


def test_from_dict() -> None:
    p = SamplingParams.from_dict({"temperature": 0.5, "top_k": 3, "top_p": 0.8, "seed": None})
    assert p.temperature == 0.5 and p.top_k == 3 and p.seed is None
    with pytest.raises(AgenticError):
        SamplingParams.from_dict({"temprature": 1.0})


def test_row_max_matches_torch_and_picks_the_first_maximum() -> None:
    from agentic_llm.engine.sampling import row_max

    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 300, generator=g)
    x[1, 7] = float("inf")
    x[2] = float("-inf")
    x[3, 5] = float("nan")
    x[4, 10] = x[4, 20] = x[4].max() + 1  # a tie: the first index wins, as argmax
    vals, idx = row_max(x)
    ref_vals, ref_idx = x.max(dim=-1)
    assert idx[4] == 10 and idx == torch.argmax(x, dim=-1).tolist()
    sound = [0, 1, 2, 4, 5]
    assert torch.equal(torch.from_numpy(vals)[sound], ref_vals[sound])
    assert vals[1] == float("inf") and vals[2] == float("-inf")
    assert vals[3] != vals[3]  # NaN in the row: NaN max, as torch's
    assert [idx[i] for i in (0, 1, 5)] == [int(ref_idx[i]) for i in (0, 1, 5)]
    # a row view that is not contiguous gives the same
    v2, i2 = row_max(x[:, ::2])
    assert i2 == torch.argmax(x[:, ::2], dim=-1).tolist()
    assert torch.equal(torch.from_numpy(v2)[sound], x[:, ::2].max(dim=-1).values[sound])
