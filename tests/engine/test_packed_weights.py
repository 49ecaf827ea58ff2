"""Packed projection weights (``models.packed``, ``EngineConfig.pack_weights``): oneDNN
copies used from their row threshold, the few-row C kernel up to 8 rows of a float32
weight, both given up when the weight changes in place or dies, and the engine's
outputs stay those of the plain matmuls within float rounding."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from agentic_llm.engine import LLMEngine
from agentic_llm.engine.engine_config import EngineConfig
from agentic_llm.engine.models import packed
from agentic_llm.engine.models.decoder_step import linear
from agentic_llm.engine.native import (
    ROWS_MATMUL_MAX_ROWS,
    RowsMatmul,
    native_library,
    rows_matmul_kernel,
)

from .conftest import generate_staggered, random_prompts
from .test_fast_decode import assert_same

pytestmark = pytest.mark.skipif(not packed.available("cpu"), reason="torch built without oneDNN")


def test_used_from_the_row_threshold_and_dropped_on_change() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(160, 32, generator=g)  # widens 5x: float32 packs it
    packs = packed.WeightPacks(native=False)  # oneDNN's copy alone
    packs.pack([w])
    assert len(packs) == 1 and packs.nbytes == w.nbytes
    x8, x1 = torch.randn(8, 32, generator=g), torch.randn(1, 32, generator=g)
    y = packed.packed_linear(x8, w)
    assert y is not None and torch.allclose(y, x8 @ w.t(), atol=1e-5)
    assert packed.packed_linear(x1, w) is None  # float32 below 4 rows: the plain matmul
    assert torch.equal(linear(x1, w), torch.nn.functional.linear(x1, w))
    # an in-place update makes the copy stale: the plain matmul (and the new values) again
    with torch.no_grad():
        w.mul_(2.0)
    assert packed.packed_linear(x8, w) is None
    assert torch.equal(linear(x8, w), torch.nn.functional.linear(x8, w))
    # repacking picks the new values up; clearing or collecting the weight drops the entry
    packs.pack([w])
    assert torch.allclose(packed.packed_linear(x8, w), x8 @ w.t(), atol=1e-5)  # type: ignore[arg-type]
    packs.clear()
    assert packed.packed_linear(x8, w) is None and len(packs) == 0
    packs.pack([w])
    key = id(w)
    del w
    gc.collect()
    assert key not in packed._PACKS


def test_which_float32_weights_pack() -> None:
    # packed float32 gained nothing on square and narrowing matrices
    assert packed.min_rows_for(torch.float32, (3072, 576)) == 4
    assert packed.min_rows_for(torch.float32, (960, 576)) is None
    assert packed.min_rows_for(torch.float32, (576, 1536)) is None
    assert packed.min_rows_for(torch.float16, (3072, 576)) is None
    packs = packed.WeightPacks(native=False)
    packs.pack([torch.randn(48, 32)])
    assert len(packs) == 0


needs_rows_kernel = pytest.mark.skipif(rows_matmul_kernel() is None,
                                       reason="no C compiler, or not an x86-64 CPU with AVX2")


def reference(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (x.double() @ w.double().t()).float()


@needs_rows_kernel
def test_rows_kernel_products() -> None:
    """Every instruction set the CPU has (1: AVX2, 2: AVX-512 too)."""
    kernel = rows_matmul_kernel()
    assert kernel is not None and kernel.level >= 1
    for level in range(1, kernel.level + 1):
        check_rows_kernel(RowsMatmul(native_library(), level))


def check_rows_kernel(k: RowsMatmul) -> None:
    """Every row count it takes, shapes with and without a vector tail, a weight row
    count that is no multiple of its block; the same bits whatever the thread count."""
    g = torch.Generator().manual_seed(3)
    for rows in range(1, ROWS_MATMUL_MAX_ROWS + 1):
        for n, d in ((1, 1), (5, 7), (7, 33), (100, 64), (301, 576), (2000, 40)):
            x, w = torch.randn(rows, d, generator=g), torch.randn(n, d, generator=g)
            y = k(x, w)
            assert y is not None and y.shape == (rows, n)
            assert torch.allclose(y, reference(x, w), atol=1e-4 * d**0.5, rtol=1e-5)
    x, w = torch.randn(8, 576, generator=g), torch.randn(3000, 576, generator=g)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = k(x, w)
        torch.set_num_threads(2)
        two = k(x, w)
    finally:
        torch.set_num_threads(before)
    assert one is not None and two is not None and torch.equal(one, two)
    # a strided input is made contiguous; what it does not take it declines
    xt = torch.randn(576, 4, generator=g).t()
    assert torch.allclose(k(xt, w), reference(xt, w), atol=1e-3)  # type: ignore[arg-type]
    assert k(torch.randn(ROWS_MATMUL_MAX_ROWS + 1, 576), w) is None
    assert k(torch.randn(2, 576, dtype=torch.float64), w) is None
    assert k(torch.randn(2, 575), w) is None


@needs_rows_kernel
def test_rows_kernel_takes_up_to_eight_rows_of_float32() -> None:
    g = torch.Generator().manual_seed(1)
    w = torch.randn(160, 32, generator=g).t().contiguous().t()  # transposed storage, as the engine keeps it
    square = torch.randn(32, 32, generator=g)  # no oneDNN copy in float32; row-major already
    packs = packed.WeightPacks()
    packs.pack([w, square])
    assert len(packs) == 2
    # w: oneDNN's copy and a row-major copy; square: itself, no copy
    assert packs.nbytes == 2 * w.nbytes
    for rows in (1, 4, 8):
        x = torch.randn(rows, 32, generator=g)
        for m in (w, square):
            y = packed.packed_linear(x, m)
            assert y is not None and torch.allclose(y, reference(x, m), atol=1e-4)
    # from 9 rows: oneDNN's copy for the wide matrix, the plain matmul for the square one
    x9 = torch.randn(9, 32, generator=g)
    assert packed.packed_linear(x9, w) is not None and packed.packed_linear(x9, square) is None
    # stale after an in-place update, like oneDNN's copy
    with torch.no_grad():
        w.add_(1.0)
    x = torch.randn(3, 32, generator=g)
    assert packed.packed_linear(x, w) is None
    assert torch.equal(linear(x, w), torch.nn.functional.linear(x, w))
    # bf16 weights never take it
    b = torch.randn(48, 32).to(torch.bfloat16)
    packs.pack([b])
    assert all(not e.native for e in packed._PACKS.values() if e.ref() is b)


def test_bf16_weights_pack_from_one_row() -> None:
    w = torch.randn(48, 32).to(torch.bfloat16)
    packs = packed.WeightPacks()
    packs.pack([w])
    x = torch.randn(1, 32)
    y = linear(x, w)  # float32 in, bf16 weight: through the pack when there is one, back to float32
    assert y.dtype == torch.float32
    assert torch.allclose(y, x.to(torch.bfloat16).float() @ w.float().t(), atol=2e-2, rtol=2e-2)
    if packed.min_rows_for(torch.bfloat16) is None:
        # this oneDNN build has no bf16 matmul: nothing is packed, the plain matmul runs
        assert len(packs) == 0 and packed.packed_linear(x.to(torch.bfloat16), w) is None
    else:
        assert len(packs) == 1 and packed.packed_linear(x.to(torch.bfloat16), w) is not None


#: a gate/up matrix that widens its input 5x (the conftest default, 1.5x, is not packed)
WIDE = {"intermediate_size": 160}


def wide_bytes(eng: LLMEngine) -> int:
    """Bytes of the copies of the matmul weights (fused, as the steps read them): a
    oneDNN copy of each wide float32 matrix and, with the C kernel, a row-major copy
    of each one not already row-major."""
    mw = eng.model.weights()
    ws = [x for w in mw.layers for x in (w.qkv, w.o, w.gate_up, w.down)] + [mw.head]
    onednn = sum(w.nbytes for w in ws if packed.min_rows_for(w.dtype, w.shape) is not None)
    rowmajor = sum(w.nbytes for w in ws if not w.is_contiguous()) if rows_matmul_kernel() is not None else 0
    return onednn + rowmajor


def test_engine_setting(checkpoint_factory: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    d = checkpoint_factory("llama", **WIDE)
    assert EngineConfig().pack_weights is None
    on = LLMEngine.from_pretrained(d, num_blocks=32, block_size=4)
    assert on.model.packed_bytes == wide_bytes(on) > 0
    off = LLMEngine.from_pretrained(d, num_blocks=32, block_size=4, pack_weights=False)
    assert off.model.packed_bytes == 0
    # the automatic setting leaves models past the size limit unpacked (the copies cost memory)
    monkeypatch.setattr(packed, "AUTO_MAX_BYTES", 1)
    assert LLMEngine.from_pretrained(d, num_blocks=32, block_size=4).model.packed_bytes == 0
    assert LLMEngine.from_pretrained(d, num_blocks=32, block_size=4, pack_weights=True).model.packed_bytes > 0


def make(d: Path, pack: bool, fast: bool = True, weight_dtype: torch.dtype | None = None) -> LLMEngine:
    eng = LLMEngine.from_pretrained(d, num_blocks=96, block_size=4, pack_weights=pack, weight_dtype=weight_dtype)
    eng.model.decode_runner.enabled = fast
    return eng


@pytest.mark.parametrize("family", ["llama", "qwen2", "llama-linear-tied"])
def test_outputs_match_plain_matmuls(family: str, checkpoint_factory: Callable[..., Path]) -> None:
    d = checkpoint_factory(family, **WIDE)
    prompts = random_prompts(5, [7, 2, 13, 4, 9], seed=41)
    with_packs, plain = make(d, True), make(d, False)
    assert with_packs.model.packed_bytes > 0
    a = generate_staggered(with_packs, prompts, (10, 4, 8, 12, 6), top_k=3)
    b = generate_staggered(plain, prompts, (10, 4, 8, 12, 6), top_k=3)
    for x, y in zip(a, b, strict=True):
        assert x.output_token_ids == y.output_token_ids
        for s, t in zip(x.diagnostics, y.diagnostics, strict=True):
            assert s.logprob == pytest.approx(t.logprob, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("weight_dtype", [None, torch.bfloat16])
def test_flat_runner_bit_identical_with_packs(weight_dtype: torch.dtype | None,
                                             checkpoint_factory: Callable[..., Path]) -> None:
    """The packed matmul is chosen by rows and weight alone: the flat decode runner and
    the generic layers still compute the same bits (5 rows, then fewer as they leave)."""
    d = checkpoint_factory("llama", **WIDE)
    prompts = random_prompts(5, [7, 2, 13, 4, 9], seed=42)
    fast, generic = make(d, True, True, weight_dtype), make(d, True, False, weight_dtype)
    # float32 packs the wide gate/up matrix; bf16 every matrix where oneDNN has bf16 matmuls
    assert fast.model.packed_bytes > 0 or packed.min_rows_for(torch.bfloat16) is None
    a = generate_staggered(fast, prompts, (10, 4, 8, 12, 6), top_k=3)
    b = generate_staggered(generic, prompts, (10, 4, 8, 12, 6), top_k=3)
    assert fast.model.decode_runner.num_steps > 5 and generic.model.decode_runner.num_steps == 0
    assert_same(a, b)


def test_autograd_keeps_the_plain_ops() -> None:
    """The copies and the C kernels record no gradient: with one to record, ``linear``
    and ``rms_norm`` run torch's own ops and gradients flow."""
    from agentic_llm.engine.models.decoder_step import rms_norm

    w = torch.randn(160, 32)
    packs = packed.WeightPacks()
    packs.pack([w])
    x = torch.randn(4, 32, requires_grad=True)
    assert packed.packed_linear(x, w) is None
    linear(x, w).sum().backward()
    assert x.grad is not None and torch.allclose(x.grad, w.sum(0).expand(4, 32), atol=1e-4)
    with torch.no_grad():
        assert packed.packed_linear(x, w) is not None
    norm_w = torch.ones(32, requires_grad=True)
    rms_norm(torch.randn(4, 32), norm_w, 1e-6).sum().backward()
    assert norm_w.grad is not None
