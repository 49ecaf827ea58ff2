"""The C masked row max equals numpy's max and argmax over the masked logits, for
finite rows, rows with NaN or infinities (allowed or not), empty masks, unmasked rows
and any subset of masked rows; the engine's greedy constrained outputs are the same
with it and without it; and the C RMSNorm equals ``F.rms_norm``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from agentic_llm.engine.native import MaskedRowMax, masked_row_max_kernel
from agentic_llm.engine.sampling import masked_logits, row_max


@pytest.fixture(scope="module")
def picker() -> MaskedRowMax:
    fn = masked_row_max_kernel()
    if fn is None:
        pytest.skip("no C compiler to build the masked-row-max kernel")  # a failure in CI (conftest)
    return MaskedRowMax(fn)


@pytest.mark.parametrize("vocab", [70, 96, 3072])
@pytest.mark.parametrize("rows", [[0, 1, 2, 3, 4], [1, 3], [4], [0, 2, 3]])
def test_equals_row_max_of_masked_logits(picker: MaskedRowMax, vocab: int, rows: list[int]) -> None:
    words = (vocab + 31) // 32
    g = torch.Generator().manual_seed(vocab * 7 + len(rows))
    for trial in range(40):
        logits = torch.randn(5, vocab, generator=g)
        if trial % 2:
            logits = logits.round()  # ties: the first maximal entry wins
        mask = torch.zeros(len(rows), words, dtype=torch.int32)
        dense = torch.rand(len(rows), vocab, generator=g) < (0.01 if trial % 3 else 0.6)
        for i in range(len(rows)):
            for j in dense[i].nonzero().flatten().tolist():
                word = int(mask[i, j >> 5]) & 0xFFFFFFFF | (1 << (j & 31))
                mask[i, j >> 5] = word - (1 << 32) if word >= 1 << 31 else word
        if trial == 5:
            mask[0] = 0  # allows nothing: max -inf, argmax 0
        if trial in (6, 7):
            logits[rows[0], 3] = float("nan")  # a broken row, wherever the NaN sits
        if trial == 8:
            logits[rows[-1], 1] = float("inf")
        if trial == 9:
            logits[rows[-1], 2] = float("-inf")
        if trial == 10:  # the only allowed token's logit is -inf: the row allows nothing
            mask[-1] = 0
            mask[-1, 0] = 1 << 2
            logits[rows[-1], 2] = float("-inf")
        want_max, want_arg = row_max(masked_logits(logits, mask, rows))
        got_max, got_arg, all_finite = picker(logits, mask, rows)
        got_max = got_max.copy()  # the next call reuses the buffer
        assert all_finite == bool(np.isfinite(want_max).all()), trial
        assert np.array_equal(got_max, want_max, equal_nan=True), (trial, got_max, want_max)
        assert got_arg == want_arg, trial


def test_only_applies_to_cpu_float32_rows(picker: MaskedRowMax) -> None:
    assert MaskedRowMax.applies(torch.zeros(2, 90))
    assert not MaskedRowMax.applies(torch.zeros(2, 90, dtype=torch.float64))
    assert not MaskedRowMax.applies(torch.zeros(90, 2).t())  # rows not contiguous
    with pytest.raises(ValueError, match="cannot cover"):
        picker(torch.zeros(2, 100), torch.zeros(2, 3, dtype=torch.int32), [0, 1])


def test_rms_norm_rows_equals_torch() -> None:
    """The C RMSNorm at each instruction-set level the CPU has (0: baseline, 1: AVX2,
    2: AVX-512)."""
    from agentic_llm.engine.native import RmsNorm, native_library, rms_norm_kernel

    kernel = rms_norm_kernel()
    if kernel is None:
        pytest.skip("no C compiler")  # a failure in CI (conftest)
    for level in range(kernel.level + 1):
        check_rms_norm(RmsNorm(native_library(), level), level)


def check_rms_norm(k: Any, seed: int) -> None:
    """Equal to F.rms_norm within rounding; a row's result is the same whatever rows
    come with it (row count, thread split); strided rows are read in place; what it
    does not take (a fake tensor, a per-head strided view, another dtype) it
    declines."""
    g = torch.Generator().manual_seed(seed)
    for rows, width in ((1, 576), (8, 64), (5, 7), (700, 576)):
        x, w = torch.randn(rows, width, generator=g) * 3, torch.randn(width, generator=g)
        y = k(x, w, 1e-5)
        assert y is not None
        assert torch.allclose(y, torch.nn.functional.rms_norm(x, (width,), w, 1e-5), atol=1e-5, rtol=1e-5)
        assert torch.equal(k(x[:1], w, 1e-5), y[:1])  # type: ignore[arg-type]
    big = torch.randn(1000, 576, generator=g)  # long enough to be split between threads
    w = torch.randn(576, generator=g)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = k(big, w, 1e-6)
        torch.set_num_threads(2)
        two = k(big, w, 1e-6)
    finally:
        torch.set_num_threads(before)
    assert one is not None and two is not None and torch.equal(one, two)
    wide = torch.randn(4, 1000, generator=g)[:, :576]  # rows 1000 apart
    assert torch.allclose(k(wide, w, 1e-6), torch.nn.functional.rms_norm(wide, (576,), w, 1e-6), atol=1e-5)  # type: ignore[arg-type]
    heads = torch.randn(4, 5, 64)[:, 1:4]  # three heads of each row: not evenly spaced rows
    assert k(heads, torch.randn(64), 1e-6) is None
    assert k(torch.randn(4, 576, dtype=torch.float64), w, 1e-6) is None
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        assert k(torch.randn(4, 576), torch.randn(576), 1e-6) is None
