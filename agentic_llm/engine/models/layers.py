"""Building blocks shared by the supported decoder families."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from agentic_llm.engine.config import RopeScaling

__all__ = ["RMSNorm", "RopeTables", "RotaryEmbedding", "SwiGLU", "rope_inv_freq", "transposed_storage", "store_transposed"]


def transposed_storage(w: torch.Tensor) -> torch.Tensor:
    """``w`` (``[out, in]``) as a view of a contiguous ``[in, out]`` tensor.

    ``F.linear(x, w)`` multiplies by ``w.t()``; with this layout that operand is
    contiguous, which CPU BLAS runs faster for the few-row inputs of decoding.
    """
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
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:
            # one fused kernel instead of six elementwise ops
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        dtype = x.dtype
        h = F.rms_norm(x.float(), (x.shape[-1],), None, self.eps)
        return self.weight * h.to(dtype)


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
        rolled = torch.roll(x, x.shape[-1] // 2, dims=-1)
        return torch.addcmul(x * self.cos, rolled, self.sin_signed)

    def apply_(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` in place (both operands are formed before the result is written)."""
        rolled = torch.roll(x, x.shape[-1] // 2, dims=-1)
        return torch.addcmul(x * self.cos, rolled, self.sin_signed, out=x)


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))``."""

    def __init__(self, hidden: int, inter: int, bias: bool) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inter, bias=bias)
        self.up_proj = nn.Linear(hidden, inter, bias=bias)
        self.down_proj = nn.Linear(inter, hidden, bias=bias)

        self._fused: torch.Tensor | None = None  # [2 * inter, hidden]: gate rows then up rows
        self._fused_bias: torch.Tensor | None = None
        self._fused_ptrs: tuple[int, int] = (0, 0)

    def fuse(self) -> None:
        """Store gate and up as views of one matrix, so the MLP runs one input matmul.

        The parameters stay (same names, same values); in-place updates reach the
        fused matrix. If a parameter is later replaced, the unfused path is used.
        """
        with torch.no_grad():
            w = transposed_storage(torch.cat((self.gate_proj.weight, self.up_proj.weight)))
            inter = self.gate_proj.weight.shape[0]
            self.gate_proj.weight = nn.Parameter(w[:inter], requires_grad=False)
            self.up_proj.weight = nn.Parameter(w[inter:], requires_grad=False)
            b = None
            if self.gate_proj.bias is not None and self.up_proj.bias is not None:
                b = torch.cat((self.gate_proj.bias, self.up_proj.bias))
                self.gate_proj.bias = nn.Parameter(b[:inter], requires_grad=False)
                self.up_proj.bias = nn.Parameter(b[inter:], requires_grad=False)
        self._fused, self._fused_bias = w, b
        self._fused_ptrs = (self.gate_proj.weight.data_ptr(), self.up_proj.weight.data_ptr())

    def _fused_weights(self) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        w = self._fused
        if w is not None and (self.gate_proj.weight.data_ptr(), self.up_proj.weight.data_ptr()) == self._fused_ptrs:
            return w, self._fused_bias
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = self._fused_weights()
        if fused is not None:
            return self.down_proj(self._act(F.linear(x, fused[0], fused[1])))
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))

    def add_to(self, residual: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``residual + forward(x)`` (the same arithmetic as the hooked path, not an addmm)."""
        fused = self._fused_weights()
        if fused is None:
            return residual + self.forward(x)
        act = self._act(F.linear(x, fused[0], fused[1]))
        return residual + F.linear(act, self.down_proj.weight, self.down_proj.bias)

    @staticmethod
    def _act(gate_up: torch.Tensor) -> torch.Tensor:
        # in place on the fresh matmul output: no temporaries for silu and the product
        inter = gate_up.shape[-1] // 2
        gate = gate_up[..., :inter]
        F.silu(gate, inplace=True)
        return gate.mul_(gate_up[..., inter:])
