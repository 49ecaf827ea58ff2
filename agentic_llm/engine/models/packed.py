"""Projection weight copies for faster CPU matmuls: oneDNN-packed, and row-major for the C kernel.

``F.linear`` on the CPU hands a weight to the BLAS in its plain layout at every call.
oneDNN can reorder a weight once into the blocked layout its kernels read
(``mkldnn._reorder_linear_weight``) and multiply by it directly
(``mkldnn._linear_pointwise``). Measured on SmolLM2-135M's projections (2-vCPU Xeon,
2 threads), the packed float32 matmul of the widening gate/up matrix is 1.26-1.5x
faster from 4 input rows up (a decode batch of 4 or more), equal at 2 rows and 0.72x
at 1 row, while for the square and narrowing matrices it gained nothing; the packed
bf16 matmul is 1.1-1.7x faster at every row count, 1 included, for every matrix.

A :class:`WeightPacks` holds one model's packed copies, keyed by the parameter
tensor they were made from. :func:`packed_linear` answers for a weight only while
that tensor is alive and unchanged (its version counter, which every in-place
update bumps, equals the one packed), and only for at least ``min_rows`` rows;
otherwise the caller runs ``F.linear`` on the weight itself. The choice depends on
the row count and the weight alone, so every path that runs a step of the same rows
(generic layers, flat decode runner) computes the same bits. The compiled decode step
takes the weights as plain inputs and does not read the packs.

A float32 weight also gets a row-major copy (none when it already is row-major)
for the few-row C matmul (``native.RowsMatmul``), which from 1 to 8 rows (decode
batches up to 8) takes precedence over both the BLAS and the oneDNN copy (at 8 and 4
rows it streams SmolLM2's projections about a quarter faster; at 1 row, where the
BLAS already reads at the memory bandwidth, equally fast; figures in docs/engine.md,
"Few-row matmul in C"). The engine's float32
projections are kept in transposed storage (``layers.transposed_storage``, faster for
the BLAS), which the C kernel would read with a stride, hence the copy.

The packs are copies: they add up to twice the projections' bytes, which is why
``EngineConfig.pack_weights`` leaves them off past a size (``AUTO_MAX_BYTES``).
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Iterable
from typing import NamedTuple

import torch

from agentic_llm.engine.native import ROWS_MATMUL_MAX_ROWS, rows_matmul_kernel

__all__ = ["AUTO_MAX_BYTES", "WeightPacks", "available", "min_rows_for", "packed_linear"]

#: ``pack_weights=None`` packs when the projections take at most this many bytes
AUTO_MAX_BYTES = 1 << 30

#: the smallest row count at which a packed matmul of this dtype is faster
_MIN_ROWS = {torch.float32: 4, torch.bfloat16: 1}

class _Pack(NamedTuple):
    """What is kept for one weight."""

    ref: weakref.ref[torch.Tensor]
    version: int  # the weight's version counter when packed
    onednn: torch.Tensor | None  # oneDNN's blocked copy
    min_rows: int  # rows from which ``onednn`` is used
    #: the C few-row kernel applies (float32); ``rowmajor`` is its copy, None when
    #: the weight itself is row-major
    native: bool
    rowmajor: torch.Tensor | None


#: weight id -> its pack; shared by every model in the process, entries removed when
#: their weight is collected or their model repacks
_PACKS: dict[int, _Pack] = {}

def available(device: torch.device | str) -> bool:
    """Whether weights can be packed for ``device`` (a CPU with oneDNN or the C kernel)."""
    return torch.device(device).type == "cpu" and (torch.backends.mkldnn.is_available()
                                                   or rows_matmul_kernel() is not None)


def min_rows_for(dtype: torch.dtype, shape: tuple[int, ...] | torch.Size | None = None) -> int | None:
    """Rows from which a oneDNN-packed weight of ``dtype`` (and ``[out, in]`` ``shape``)
    is used; None: no oneDNN copy. A float32 weight gets one only when it widens its
    input at least 4 times (SmolLM2's gate/up and LM head): the packed kernel was no
    faster on the square and narrowing matrices (q/k/v, o, down: 0.9-1.0x at 8 rows,
    and 0.8x for down at 32 rows)."""
    if not torch.backends.mkldnn.is_available():
        return None
    if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return None
    if dtype == torch.float32 and shape is not None and shape[0] < 4 * shape[1]:
        return None
    return _MIN_ROWS.get(dtype)


def packed_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor | None:
    """``x @ w.T`` through ``w``'s packs (in ``w``'s dtype; ``x`` must already be in
    it): the C kernel from 1 to 8 rows of a float32 weight, else oneDNN's copy from
    its row count; None when ``w`` has no current pack for ``x``'s row count, or when
    autograd would record the product."""
    entry = _PACKS.get(id(w))
    if entry is None or x.dim() != 2:
        return None
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad):
        return None  # the copies and the C kernel record no gradient
    if entry.ref() is not w or w._version != entry.version:
        return None  # another tensor reuses the id, or the weight changed in place
    rows = x.shape[0]
    if entry.native and rows <= ROWS_MATMUL_MAX_ROWS:
        kernel = rows_matmul_kernel()
        if kernel is not None:
            y = kernel(x, entry.rowmajor if entry.rowmajor is not None else w)
            if y is not None:
                return y
    if entry.onednn is None or rows < entry.min_rows:
        return None
    return torch.ops.mkldnn._linear_pointwise(x, entry.onednn, None, "none", [], "")


def _drop(key: int, ref: weakref.ref[torch.Tensor]) -> None:
    """Remove the entry of ``key`` if it is still the one made with ``ref``."""
    entry = _PACKS.get(key)
    if entry is not None and entry.ref is ref:
        del _PACKS[key]


class WeightPacks:
    """The packed copies of one model's projection weights.

    Args:
        native: also use the few-row C kernel for float32 weights (when it exists
            on this machine).
    """

    def __init__(self, native: bool = True) -> None:
        self._keys: list[tuple[int, weakref.ref[torch.Tensor]]] = []
        self.native = native
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._keys)

    def pack(self, weights: Iterable[torch.Tensor]) -> None:
        """Replace the packs with fresh ones of ``weights`` (2-D tensors; a weight with
        nothing to pack, or seen twice, is skipped)."""
        self.clear()
        native = self.native and rows_matmul_kernel() is not None
        for w in weights:
            if w.dim() != 2 or id(w) in _PACKS:
                continue
            rows = min_rows_for(w.dtype, w.shape)
            use_native = native and w.dtype == torch.float32 and w.device.type == "cpu"
            if rows is None and not use_native:
                continue
            with torch.no_grad():
                onednn = (torch.ops.mkldnn._reorder_linear_weight(w.detach().contiguous())
                          if rows is not None else None)
                rowmajor = None if not use_native or w.is_contiguous() else w.detach().contiguous()
            key = id(w)
            # the entry goes when the weight is collected (the callback holds no pack)
            ref = weakref.ref(w, functools.partial(_drop, key))
            _PACKS[key] = _Pack(ref, w._version, onednn, rows or 0, use_native, rowmajor)
            self._keys.append((key, ref))
            self._bytes += (w.nbytes if onednn is not None else 0) + (rowmajor.nbytes if rowmajor is not None else 0)

    def clear(self) -> None:
        for key, ref in self._keys:
            _drop(key, ref)
        self._keys = []
        self._bytes = 0

    def __del__(self) -> None:
        self.clear()

    @property
    def nbytes(self) -> int:
        """Bytes of the copies (a oneDNN copy counted as its weight's size)."""
        return self._bytes
