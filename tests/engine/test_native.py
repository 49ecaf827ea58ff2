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


def _decode_case(rows: int, groups: int, d: int, lens: list[int], shared: int, seed: int = 0) -> tuple[Any, ...]:
    """A workspace-shaped case: ``qg`` as the engine views it (a transposed view),
    keys/values as views of ``[2 * kv_heads, rows, capacity, d]``, the first
    ``shared`` keys equal in every row."""
    gen = torch.Generator().manual_seed(seed)
    kvh = 2
    cap = max(lens) + 5
    ws = torch.randn(2 * kvh, rows, cap, d, generator=gen)
    if shared:
        ws[:, 1:, :shared] = ws[:, :1, :shared]
    key_len = max(lens)
    q = torch.randn(rows, kvh * groups, d, generator=gen)
    qg = q.view(rows, kvh, groups, d).transpose(0, 1)
    kv = ws[:, :, :key_len]
    lens_t = torch.tensor(lens, dtype=torch.int64)
    mask = torch.where(torch.arange(key_len)[None, :] < lens_t[:, None], 0.0, float("-inf"))[None, :, None, :]
    return qg, kv[:kvh], kv[kvh:], mask, lens_t


def test_decode_attention_kernel_equals_sdpa() -> None:
    """The C decode attention against SDPA over each row's keys: row counts, group
    counts (the unrolled 1-3 and the generic loop), head sizes with and without the
    4-vector chunks, lengths off the blocks of 4 and 8, a shared prefix read from row
    0, and the same bits at 1 and 2 threads."""
    import torch.nn.functional as F

    from agentic_llm.engine.attention.torch_sdpa import decode_attention
    from agentic_llm.engine.native import decode_attention_kernel

    kernel = decode_attention_kernel()
    if kernel is None:
        pytest.skip("no C compiler or no AVX2+FMA")  # a failure in CI (conftest)
    cases = [(1, 3, 64, [37], 0), (3, 1, 32, [9, 70, 1], 0), (4, 2, 64, [100, 81, 99, 130], 80),
             (8, 3, 64, [600, 590, 611, 580, 600, 605, 599, 601], 320), (2, 5, 40, [17, 23], 16),
             (5, 4, 128, [66, 67, 68, 69, 70], 66)]
    threads = torch.get_num_threads()
    try:
        for rows, groups, d, lens, shared in cases:
            qg, k, v, mask, lens_t = _decode_case(rows, groups, d, lens, shared)
            scale = d ** -0.5
            ref = F.scaled_dot_product_attention(qg, k, v, attn_mask=mask, scale=scale)
            torch.set_num_threads(2)
            got = kernel(qg, k, v, lens_t, scale, shared)
            assert got is not None, (rows, groups, d)
            assert got.shape == ref.shape
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=2e-6)
            torch.set_num_threads(1)
            assert torch.equal(kernel(qg, k, v, lens_t, scale, shared), got)  # thread split: same bits
            # decode_attention with lens takes the kernel; without, torch's ops agree
            assert torch.equal(decode_attention(qg, k, v, mask, scale, shared, lens_t), got)
            torch.testing.assert_close(decode_attention(qg, k, v, mask, scale, shared), ref, rtol=1e-5, atol=2e-6)
            if shared:  # the prefix is read from row 0 only
                k[:, 1:, :shared] = float("nan")
                v[:, 1:, :shared] = float("nan")
                assert torch.equal(kernel(qg, k, v, lens_t, scale, shared), got)
    finally:
        torch.set_num_threads(threads)


def test_decode_attention_kernel_declines_what_it_does_not_cover() -> None:
    from agentic_llm.engine.native import decode_attention_kernel

    kernel = decode_attention_kernel()
    if kernel is None:
        pytest.skip("no C compiler or no AVX2+FMA")  # a failure in CI (conftest)
    qg, k, v, _mask, lens = _decode_case(2, 3, 64, [20, 30], 0)
    assert kernel(qg, k, v, lens, 0.125, 0) is not None
    assert kernel(qg, k, v, lens + 1, 0.125, 0) is None  # a row past the keys given
    assert kernel(qg, k, v, lens, 0.125, 25) is None  # a shared prefix longer than a row
    assert kernel(qg.bfloat16(), k.bfloat16(), v.bfloat16(), lens, 0.125, 0) is None
    assert kernel(qg, k, v, lens.int(), 0.125, 0) is None  # int32 lengths
    q60, k60, v60, _m, l60 = _decode_case(2, 3, 60, [20, 30], 0)
    assert kernel(q60, k60, v60, l60, 0.125, 0) is None  # head size not a multiple of 8
    with torch.enable_grad():
        assert kernel(qg.clone().requires_grad_(), k, v, lens, 0.125, 0) is None  # autograd records


def test_decode_attention_kernel_with_several_queries_per_row() -> None:
    """Rows that extend by a few tokens: each query token is a row of the kernel
    (``rowmap`` names its K/V row) with its causal length; equal to SDPA over the
    padded query grid with the causal mask, shared prefix included."""
    import torch.nn.functional as F

    from agentic_llm.engine.native import decode_attention_kernel

    kernel = decode_attention_kernel()
    if kernel is None:
        pytest.skip("no C compiler or no AVX2+FMA")  # a failure in CI (conftest)
    gen = torch.Generator().manual_seed(3)
    kvh, groups, d, shared = 2, 3, 64, 70
    ctx, ql = [90, 75, 101], [1, 4, 7]  # tokens each row computes this step (its last ones)
    rows, key_len, max_q = len(ctx), max(ctx), max(ql)
    ws = torch.randn(2 * kvh, rows, key_len + 3, d, generator=gen)
    ws[:, 1:, :shared] = ws[:, :1, :shared]
    k, v = ws[:kvh, :, :key_len], ws[kvh:, :, :key_len]
    rowmap = torch.tensor([r for r in range(rows) for _ in range(ql[r])], dtype=torch.int64)
    cols = torch.tensor([c for r in range(rows) for c in range(ql[r])], dtype=torch.int64)
    lens = torch.tensor([ctx[r] - ql[r] + c + 1 for r in range(rows) for c in range(ql[r])], dtype=torch.int64)
    tokens = len(rowmap)
    q = torch.randn(tokens, kvh * groups, d, generator=gen)
    got = kernel(q.view(tokens, kvh, groups, d).transpose(0, 1), k, v, lens, d ** -0.5, shared, rowmap)
    assert got is not None
    # reference: SDPA per row over its padded queries, causal within the row
    qp = torch.zeros(rows, max_q, kvh, groups, d)
    qp[rowmap, cols] = q.view(tokens, kvh, groups, d)
    ref = torch.empty(tokens, kvh, groups, d)
    for r in range(rows):
        kpos = torch.arange(key_len)
        qpos = ctx[r] - ql[r] + torch.arange(max_q)
        mask = torch.where(kpos[None, :] <= qpos[:, None], 0.0, float("-inf"))  # [Q, K]
        qr = qp[r].permute(1, 2, 0, 3).reshape(kvh, groups * max_q, d)
        o = F.scaled_dot_product_attention(qr, k[:, r], v[:, r], attn_mask=mask.repeat(groups, 1), scale=d ** -0.5)
        o = o.view(kvh, groups, max_q, d).permute(2, 0, 1, 3)
        sel = rowmap == r
        ref[sel] = o[cols[sel]]
    torch.testing.assert_close(got.transpose(0, 1), ref, rtol=1e-5, atol=2e-6)
    assert kernel(q.view(tokens, kvh, groups, d).transpose(0, 1), k, v, lens, d ** -0.5, shared,
                  rowmap.clone().fill_(rows)) is None  # a K/V row that does not exist
