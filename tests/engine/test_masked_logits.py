"""Constraint masks applied to logits: the byte-table unpacking equals the bit-by-bit
reference for every row subset, row order and vocabulary width, with the bias made
on the spot or beforehand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agentic_llm.engine.sampling import MaskedMax, apply_bitmask, mask_bias, masked_logits, row_max


@pytest.mark.parametrize(("vocab", "words"), [(96, 3), (90, 3), (100, 3), (3072, 96)])
@pytest.mark.parametrize("rows", [[0, 1, 2, 3], [1, 3], [2], [3, 1], [1, 0, 3, 2]])
def test_equals_bitwise_reference(vocab: int, words: int, rows: list[int]) -> None:
    g = torch.Generator().manual_seed(vocab + len(rows))
    logits = torch.randn(4, vocab, generator=g)
    mask = torch.randint(-(2**31), 2**31 - 1, (len(rows), words), dtype=torch.int32, generator=g)
    mask[0, 0] = -1  # every bit, the sign bit included
    mask[-1, -1] = -(2**31)  # the sign bit alone
    out = masked_logits(logits, mask, rows)
    ref = logits.clone()
    part = ref[rows]
    apply_bitmask(part, mask)
    ref[rows] = part
    assert torch.equal(out, ref)
    bias = mask_bias(mask, vocab, torch.device("cpu"), torch.float32)
    assert torch.equal(masked_logits(logits, mask, rows, bias), ref)
    assert torch.equal(logits, torch.randn(4, vocab, generator=torch.Generator().manual_seed(vocab + len(rows))))


@pytest.mark.parametrize("rows", [[0, 1, 2, 3], [1, 3], [2]])
def test_masked_max_equals_masked_logits_then_row_max(rows: list[int]) -> None:
    vocab, words = 100, 4
    g = torch.Generator().manual_seed(len(rows))
    mm = MaskedMax()
    for step in range(3):  # the buffer is reused: each call's result is its own
        logits = torch.randn(4, vocab, generator=g)
        logits[1, 7] = float("nan")  # a broken row keeps a NaN max
        mask = torch.randint(-(2**31), 2**31 - 1, (len(rows), words), dtype=torch.int32, generator=g)
        if step == 2:
            mask[0] = 0  # a row whose mask allows nothing: max -inf
        bias = mask_bias(mask, vocab, torch.device("cpu"), torch.float32)
        assert MaskedMax.applies(logits, bias)
        want = masked_logits(logits, mask, rows)
        want_max, want_arg = row_max(want)
        got, got_max, got_arg = mm(logits, bias, rows)
        assert torch.equal(got.nan_to_num(0.5), want.nan_to_num(0.5))
        assert np.array_equal(got_max, want_max, equal_nan=True)
        assert got_arg == want_arg
    assert not MaskedMax.applies(logits, None)
    assert not MaskedMax.applies(logits.double(), bias)
