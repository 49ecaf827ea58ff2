"""BottleneckInjector: route each token to knowledge slots and fuse their values.

For a packed ``[T, hidden]`` attention output ``h``:

1. query projection: ``q = W_q (h - center)`` (normalised) into the bottleneck space;
   ``W_q`` is a fixed random matrix with orthonormal rows (seeded), so cosine
   similarity in the bottleneck approximates cosine similarity of the hidden states;
2. top-k routing: cosine scores against the unit-norm slot keys, invisible slots
   masked out, ``top_k`` best kept, those under ``min_score`` dropped;
3. value projection: a softmax (temperature ``temperature``) over the kept scores
   mixes the slots' values, then the optional low-rank value adapter;
4. fusion: ``out = h + gate * aux`` for tokens whose gate is positive and exactly
   ``h`` elsewhere (``torch.where``, so untouched tokens are bit-identical).

Norm clipping happens when a value is written to the store (see KVStore), which keeps
it off the per-token path. Everything here is tensor code with shapes that depend on
the batch shape only: no ``.item()``, no branches on tensor values.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from agentic_llm.aga.config import AGAConfig
from agentic_llm.aga.types import ActiveView

__all__ = ["BottleneckInjector", "InjectionResult"]


class InjectionResult(NamedTuple):
    """Output of one injection: new hidden states and per-token facts for diagnostics."""

    hidden: torch.Tensor  # [T, H]
    gate: torch.Tensor  # [T] gate actually applied (0 where nothing was injected)
    top_score: torch.Tensor  # [T] best visible cosine score
    top_slot: torch.Tensor  # [T] slot index of the best score


class BottleneckInjector:
    """Query projection, routing, value mixing and fusion."""

    def __init__(self, config: AGAConfig, *, device: torch.device, dtype: torch.dtype) -> None:
        self.config = config
        self.top_k = config.gate2_top_k
        self.min_score = config.gate2_min_score
        self.inv_temperature = 1.0 / config.gate2_temperature
        gen = torch.Generator().manual_seed(config.seed)
        raw = torch.randn(config.hidden_dim, config.bottleneck_dim, generator=gen)
        # Orthonormal columns: the projection preserves angles as well as a random
        # bottleneck can (Johnson-Lindenstrauss) and needs no training.
        q, _ = torch.linalg.qr(raw)
        self.w_query = q.T.contiguous().to(device=device, dtype=dtype)  # [d_b, H]
        self.center: torch.Tensor | None = None
        self._cache: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self.value_down: torch.Tensor | None = None
        self.value_up: torch.Tensor | None = None

    # -- setup ---------------------------------------------------------------------
    def set_center(self, center: torch.Tensor | None) -> None:
        """Subtract ``center`` (e.g. the mean attention output) before projecting.

        Hidden states of a model share a large common component; removing it makes
        cosine routing discriminate between prompts.
        """
        self._cache = {}
        if center is None:
            self.center = None
            return
        self.center = center.detach().reshape(-1).to(self.w_query)

    def set_value_adapter(self, down: torch.Tensor | None, up: torch.Tensor | None) -> None:
        """Install the low-rank value adapter ``aux + up @ (down @ aux)`` (trained elsewhere)."""
        if (down is None) != (up is None):
            raise ValueError("set both value adapter matrices or neither")
        if down is not None and up is not None:
            rank = self.config.value_bottleneck_dim
            h = self.config.hidden_dim
            if tuple(down.shape) != (rank, h) or tuple(up.shape) != (h, rank):
                raise ValueError(f"value adapter must be down [{rank}, {h}] and up [{h}, {rank}]")
            down, up = down.detach().to(self.w_query), up.detach().to(self.w_query)
        self.value_down, self.value_up = down, up

    def to(self, device: torch.device, dtype: torch.dtype) -> None:
        """Move the projection (and center, adapter) to ``device``/``dtype``."""
        self._cache = {}
        self.w_query = self.w_query.to(device=device, dtype=dtype)
        for name in ("center", "value_down", "value_up"):
            t = getattr(self, name)
            if t is not None:
                setattr(self, name, t.to(device=device, dtype=dtype))

    # -- hot path ------------------------------------------------------------------
    def _weights(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The query projection (and the projected center, as a bias) in ``dtype``, cached."""
        cached = self._cache.get(dtype)
        if cached is None:
            w = self.w_query.to(dtype)
            bias = None if self.center is None else -(w @ self.center.to(dtype))
            cached = (w, bias)
            self._cache[dtype] = cached
        return cached

    def project_query(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[T, d_b]`` unit-norm queries of ``[T, H]`` hidden states."""
        w, bias = self._weights(hidden.dtype)
        return F.normalize(F.linear(hidden, w, bias), dim=-1)

    def inject(
        self,
        hidden: torch.Tensor,
        view: ActiveView,
        invisible: torch.Tensor,
        gate: torch.Tensor,
        *,
        track_usage: bool = True,
    ) -> InjectionResult:
        """Inject into ``hidden`` ``[T, H]``.

        Args:
            view: the store's active buffers.
            invisible: ``[T, S]`` bool, slots each token may NOT route to (Gate-0).
            gate: ``[T]`` gate before routing (Gate-1 times decay, early exit applied).
            track_usage: record routed slots for LRU eviction (once per step suffices).
        """
        t = hidden.shape[0]
        dtype = hidden.dtype
        w_q, bias = self._weights(dtype)
        keys, values = view.keys, view.values
        if keys.dtype != dtype:
            keys, values = keys.to(dtype), values.to(dtype)
        q = F.linear(hidden, w_q, bias)
        # cosine = (q . k) / |q| with unit keys; |q| divides the [T, S] scores once.
        scores = (q @ keys.T).div_(q.norm(dim=-1, keepdim=True).clamp_min_(1e-12))
        scores.masked_fill_(invisible, -2.0)
        k = min(self.top_k, scores.shape[-1])
        top, idx = scores.topk(k, dim=-1)
        below = top < self.min_score
        w = torch.softmax((top * self.inv_temperature).masked_fill_(below, -1e4), dim=-1)
        if t * k <= values.shape[0]:
            aux = torch.bmm(w.unsqueeze(1), values[idx]).squeeze(1)  # gather k rows per token
        else:
            # Long prefill: a dense [T, S] weight matrix beats gathering T*k rows.
            aux = torch.zeros_like(scores).scatter_(1, idx, w) @ values
        if self.value_down is not None and self.value_up is not None:
            aux = aux + F.linear(F.linear(aux, self.value_down.to(dtype)), self.value_up.to(dtype))
        # A token whose best visible slot is under the floor gets gate 0 (its softmax
        # weights are meaningless and the fusion ignores them).
        applied_gate = gate * (top[:, 0] >= self.min_score)
        if track_usage:
            # LRU bookkeeping on the device: a token's routed slot gets the current step;
            # unrouted tokens write into the scratch cell at index max_slots.
            spill = view.usage.shape[0] - 1
            view.usage.scatter_(0, idx[:, 0].masked_fill(below[:, 0], spill),
                                view.clock.expand(t))
        fused = self.fuse(hidden, applied_gate, aux)
        return InjectionResult(fused, applied_gate, top[:, 0], idx[:, 0])

    @staticmethod
    def fuse(hidden: torch.Tensor, gate: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        """``hidden + gate * aux`` where the gate is positive, exactly ``hidden`` elsewhere."""
        g = gate.unsqueeze(-1)
        if g.dtype != hidden.dtype:
            g = g.to(hidden.dtype)
        return torch.where(g > 0, torch.addcmul(hidden, g, aux), hidden)
