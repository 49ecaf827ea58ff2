"""Constraint masks applied to logits: the byte-table unpacking equals the bit-by-bit
reference for every row subset and vocabulary width."""

from __future__ import annotations

import pytest
import torch

from agentic_llm.engine.sampling import apply_bitmask, masked_logits


@pytest.mark.parametrize(("vocab", "words"), [(96, 3), (90, 3), (100, 3), (3072, 96)])
@pytest.mark.parametrize("rows", [[0, 1, 2, 3], [1, 3], [2]])
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
    assert torch.equal(logits, torch.randn(4, vocab, generator=torch.Generator().manual_seed(vocab + len(rows))))
