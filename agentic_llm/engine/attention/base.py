"""The attention-backend interface.

A backend writes the step's new K/V into the paged pool and computes attention of
the packed queries over each row's pages. Backends register under the registry kind
``"attention_backend"``; the engine picks one by name (``torch_sdpa`` is the portable
default), so GPU kernels (FlashInfer, FlashAttention) plug in without touching the
model code.
"""

from __future__ import annotations

from typing import Protocol

import torch

from agentic_llm.engine.forward import ForwardBatch
from agentic_llm.engine.kv.pool import PagedKVPool

__all__ = ["AttentionBackend", "BACKEND_KIND"]

BACKEND_KIND = "attention_backend"


class AttentionBackend(Protocol):
    """Paged attention over a packed batch."""

    def prepare(self, batch: ForwardBatch, pool: PagedKVPool) -> None:
        """Build per-step metadata (masks, index tensors) into ``batch.attn_meta``."""
        ...

    def forward(
        self,
        layer: int,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        batch: ForwardBatch,
        pool: PagedKVPool,
        scale: float,
    ) -> torch.Tensor:
        """Store ``k``/``v`` (``[T, kv_heads, d]``) and return attention ``[T, heads, d]``.

        ``q`` is ``[T, heads, d]``. When ``batch.capture`` names ``layer``, the backend
        records the attention weights of the captured rows' last query token.
        """
        ...
