"""Building blocks shared by the supported decoder families."""

from __future__ import annotations

import math
import weakref
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.modules.module import (
    register_module_module_registration_hook,
    register_module_parameter_registration_hook,
)

from agentic_llm.engine.config import RopeScaling
from agentic_llm.engine.models.decoder_step import mlp, rms_norm, rotate

__all__ = [
    "FusedProjection",
    "ParameterWatch",
    "ProjectionBias",
    "RMSNorm",
    "RopeTables",
    "RotaryEmbedding",
    "SwiGLU",
    "projection_weights",
    "rope_inv_freq",
    "store_transposed",
    "transposed_storage",
]


def transposed_storage(w: torch.Tensor) -> torch.Tensor:
    """``w`` (``[out, in]``) as a view of a contiguous ``[in, out]`` tensor.

    ``F.linear(x, w)`` multiplies by ``w.t()``; with this layout that operand is
    contiguous, which CPU BLAS runs faster for the few-row inputs of decoding. Only
    for float32: the bf16 matmul kernels ran 10-40% slower on it than on the
    row-major matrix (SmolLM2's projections, 1-8 rows, a 2-vCPU Xeon with AMX), so a
    narrower weight keeps (or gets) the row-major layout.
    """
    if w.dtype != torch.float32:
        return w.detach().contiguous()
    return w.detach().t().contiguous().t()


def store_transposed(linear: nn.Linear) -> None:
    """Keep ``linear.weight`` (same name, same values) in transposed storage."""
    with torch.no_grad():
        linear.weight = nn.Parameter(transposed_storage(linear.weight), requires_grad=False)


class RMSNorm(nn.Module):
    """Root-mean-square norm computed in float32, scaled by a learned weight."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


def rope_inv_freq(head_dim: int, theta: float, scaling: RopeScaling) -> torch.Tensor:
    """Inverse frequencies of RoPE, with the checkpoint's scaling applied."""
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device="cpu").float() / head_dim))
    if scaling.rope_type == "linear":
        inv = inv / scaling.factor
    elif scaling.rope_type == "llama3":
        old = scaling.original_max_position_embeddings
        low_wl = old / scaling.low_freq_factor
        high_wl = old / scaling.high_freq_factor
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > low_wl, inv / scaling.factor, inv)
        smooth = (old / wavelen - scaling.low_freq_factor) / (
            scaling.high_freq_factor - scaling.low_freq_factor
        )
        smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
        medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
        inv = torch.where(medium, smoothed, scaled)
    return inv


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (rotate-half layout) with a lazily grown cos/sin table."""

    inv_freq: torch.Tensor

    def __init__(self, head_dim: int, theta: float, scaling: RopeScaling) -> None:
        super().__init__()
        self.register_buffer("inv_freq", rope_inv_freq(head_dim, theta, scaling), persistent=False)
        self._cos = torch.empty(0)
        self._sin = torch.empty(0)
        self._cast: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {}

    def _table(self, n: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``cos`` and sign-folded ``sin`` for positions ``0..n-1``, ``[n, 1, d]`` in ``dtype``."""
        if self._cos.shape[0] < n or self._cos.device != device:
            size = max(n, 2 * self._cos.shape[0], 256)
            inv = self.inv_freq.to(device=device, dtype=torch.float32)
            freqs = torch.arange(size, device=device, dtype=torch.float32)[:, None] * inv[None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            sin = emb.sin()
            half = sin.shape[-1] // 2
            # rotate_half(x) * sin == roll(x, half) * [-sin_lo, sin_hi]: one roll, no cat
            sin[:, :half].neg_()
            self._cos, self._sin = emb.cos()[:, None, :], sin[:, None, :]
            self._cast = {}
        if dtype == torch.float32:
            return self._cos, self._sin
        cast = self._cast.get(dtype)
        if cast is None:
            cast = self._cast[dtype] = (self._cos.to(dtype), self._sin.to(dtype))
        return cast

    def cos_sin(self, positions: torch.Tensor, dtype: torch.dtype, max_position: int | None = None) -> RopeTables:
        """Per-token ``cos`` and sign-folded ``sin`` ``[T, 1, d]``, computed once per step.

        ``max_position`` (the largest entry of ``positions``) saves a device sync when known.
        """
        top = int(positions.max()) if max_position is None else max_position
        cos_t, sin_t = self._table(top + 1, positions.device, dtype)
        return RopeTables(cos_t.index_select(0, positions), sin_t.index_select(0, positions))

    def forward(
        self, positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate ``q`` ``[T, h, d]`` and ``k`` ``[T, kvh, d]`` by their positions."""
        t = self.cos_sin(positions, q.dtype)
        return t.apply(q), t.apply(k)


class RopeTables:
    """One step's RoPE factors; :meth:`apply` rotates any ``[T, heads, d]`` tensor."""

    __slots__ = ("cos", "sin_signed")

    def __init__(self, cos: torch.Tensor, sin_signed: torch.Tensor) -> None:
        self.cos = cos
        self.sin_signed = sin_signed

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return rotate(x, self.cos, self.sin_signed)


#: a projection's bias as :class:`~.decoder_step.LayerWeights` takes it
ProjectionBias = torch.Tensor | tuple[torch.Tensor | None, ...] | None


class FusedProjection(NamedTuple):
    """Several linear layers' weights (and biases) stored as row blocks of one matrix."""

    weight: torch.Tensor  # [sum of outputs, in], transposed storage
    bias: torch.Tensor | None  # None unless every layer has a bias
    ptrs: tuple[int, ...]  # each layer's weight data pointer right after fusing

    @classmethod
    def fuse(cls, linears: tuple[nn.Linear, ...]) -> FusedProjection:
        """Fuse ``linears`` (they read the same input): each keeps its parameter names and
        values, now views of the fused matrix, so in-place updates reach it."""
        with torch.no_grad():
            w = transposed_storage(torch.cat(tuple(m.weight for m in linears)))
            biases = [m.bias for m in linears]
            b = torch.cat(tuple(x for x in biases if x is not None)) if all(x is not None for x in biases) else None
            start = 0
            for m in linears:
                n = m.weight.shape[0]
                m.weight = nn.Parameter(w[start : start + n], requires_grad=False)
                if b is not None:
                    m.bias = nn.Parameter(b[start : start + n], requires_grad=False)
                start += n
        return cls(w, b, tuple(m.weight.data_ptr() for m in linears))


def projection_weights(
    fused: FusedProjection | None, linears: tuple[nn.Linear, ...]
) -> tuple[torch.Tensor | tuple[torch.Tensor, ...], ProjectionBias]:
    """``fused``'s matrix and bias while every one of ``linears`` still reads it; else
    their own weights and biases (a parameter was replaced or its storage swapped)."""
    weights = tuple(m.weight for m in linears)
    if fused is not None and tuple(x.data_ptr() for x in weights) == fused.ptrs:
        return fused.weight, fused.bias
    return weights, tuple(m.bias for m in linears)


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))``."""

    def __init__(self, hidden: int, inter: int, bias: bool) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inter, bias=bias)
        self.up_proj = nn.Linear(hidden, inter, bias=bias)
        self.down_proj = nn.Linear(inter, hidden, bias=bias)
        self._fused: FusedProjection | None = None

    def fuse(self) -> None:
        """Store gate and up as views of one matrix, so the MLP runs one input matmul.

        The parameters stay (same names, same values); in-place updates reach the
        fused matrix. If a parameter is later replaced, the separate matmuls run.
        """
        self._fused = FusedProjection.fuse((self.gate_proj, self.up_proj))

    def gate_up(self) -> tuple[torch.Tensor | tuple[torch.Tensor, ...], ProjectionBias]:
        """The gate/up weights and biases as :class:`~.decoder_step.LayerWeights` takes
        them: the fused matrix while the parameters are still its views, else the
        separate ones."""
        return projection_weights(self._fused, (self.gate_proj, self.up_proj))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.gate_up()
        return mlp(x, w, b, self.down_proj.weight, self.down_proj.bias)


class ParameterWatch:
    """Counts parameters (and submodules) set anywhere in one module tree.

    A cache built from a model's parameters compares :attr:`version` to know it must
    be rebuilt: replacing a parameter (``module.weight = Parameter(...)``,
    ``load_state_dict(assign=True)``) or a submodule bumps it. In-place updates keep
    the same tensors and need no rebuild.

    torch reports registrations through process-wide hooks only, so one pair of hooks
    (installed with the first watch, never removed: removing a hook while torch
    iterates over them, as a collected watch would, breaks that iteration) hands
    each registration to the live watches, which are held weakly.
    """

    def __init__(self, root: nn.Module) -> None:
        self.version = 0
        self._ids = {id(m) for m in root.modules()}
        _install_watch_hooks()
        _WATCHES.add(self)

    def note(self, module: nn.Module, value: object) -> None:
        """``value`` (a parameter or submodule) was set on ``module`` (any module at all)."""
        if id(module) in self._ids:
            self.version += 1
            if isinstance(value, nn.Module):  # a new submodule: its parameters are watched too
                self._ids.update(id(m) for m in value.modules())


_WATCHES: weakref.WeakSet[ParameterWatch] = weakref.WeakSet()
_hooks_installed = False


def _install_watch_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return

    def hook(module: nn.Module, name: str, value: object) -> None:
        for watch in list(_WATCHES):
            watch.note(module, value)

    register_module_parameter_registration_hook(hook)
    register_module_module_registration_hook(hook)
    _hooks_installed = True
