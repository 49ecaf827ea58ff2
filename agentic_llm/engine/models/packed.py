"""Projection weights pre-packed for oneDNN's CPU matmul, used where they are faster.

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

The packs are copies: they add the projections' bytes once more, which is why
``EngineConfig.pack_weights`` leaves them off past a size (``AUTO_MAX_BYTES``).
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Iterable

import torch

__all__ = ["AUTO_MAX_BYTES", "WeightPacks", "available", "min_rows_for", "packed_linear"]

#: ``pack_weights=None`` packs when the projections take at most this many bytes
AUTO_MAX_BYTES = 1 << 30

#: the smallest row count at which a packed matmul of this dtype is faster
_MIN_ROWS = {torch.float32: 4, torch.bfloat16: 1}

#: weight id -> (weak reference to it, its version when packed, the packed copy,
#: smallest row count to use it); shared by every model in the process, entries
#: removed when their weight is collected or their model repacks
_PACKS: dict[int, tuple[weakref.ref[torch.Tensor], int, torch.Tensor, int]] = {}


def available(device: torch.device | str) -> bool:
    """Whether weights can be packed for ``device`` (a CPU with oneDNN)."""
    return torch.device(device).type == "cpu" and torch.backends.mkldnn.is_available()


def min_rows_for(dtype: torch.dtype, shape: tuple[int, ...] | torch.Size | None = None) -> int | None:
    """Rows from which a packed weight of ``dtype`` (and ``[out, in]`` ``shape``) is
    used; None: not packed. A float32 weight is packed only when it widens its input
    at least 4 times (SmolLM2's gate/up and LM head): the packed kernel was no faster
    on the square and narrowing matrices (q/k/v, o, down: 0.9-1.0x at 8 rows, and
    0.8x for down at 32 rows)."""
    if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return None
    if dtype == torch.float32 and shape is not None and shape[0] < 4 * shape[1]:
        return None
    return _MIN_ROWS.get(dtype)


def packed_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor | None:
    """``x @ w.T`` through ``w``'s packed copy (in ``w``'s dtype; ``x`` must already be
    in it), or None when ``w`` has no current pack or ``x`` has too few rows."""
    entry = _PACKS.get(id(w))
    if entry is None or x.dim() != 2 or x.shape[0] < entry[3]:
        return None
    ref, version, packed, _ = entry
    if ref() is not w or w._version != version:
        return None  # another tensor reuses the id, or the weight changed in place
    return torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")


def _drop(key: int, ref: weakref.ref[torch.Tensor]) -> None:
    """Remove the entry of ``key`` if it is still the one made with ``ref``."""
    entry = _PACKS.get(key)
    if entry is not None and entry[0] is ref:
        del _PACKS[key]


class WeightPacks:
    """The packed copies of one model's projection weights."""

    def __init__(self) -> None:
        self._keys: list[tuple[int, weakref.ref[torch.Tensor]]] = []

    def __len__(self) -> int:
        return len(self._keys)

    def pack(self, weights: Iterable[torch.Tensor]) -> None:
        """Replace the packs with fresh ones of ``weights`` (2-D tensors; a dtype with
        no packed kernel, or a weight seen twice, is skipped)."""
        self.clear()
        for w in weights:
            rows = min_rows_for(w.dtype, w.shape)
            if rows is None or w.dim() != 2 or id(w) in _PACKS:
                continue
            with torch.no_grad():
                packed = torch.ops.mkldnn._reorder_linear_weight(w.detach().contiguous())
            key = id(w)
            # the entry goes when the weight is collected (the callback holds no pack)
            ref = weakref.ref(w, functools.partial(_drop, key))
            _PACKS[key] = (ref, w._version, packed, rows)
            self._keys.append((key, ref))

    def clear(self) -> None:
        for key, ref in self._keys:
            _drop(key, ref)
        self._keys = []

    def __del__(self) -> None:
        self.clear()

    @property
    def nbytes(self) -> int:
        """Bytes the packed copies stand for (their weights' own size)."""
        return sum(w.nbytes for _, ref in self._keys if (w := ref()) is not None)
