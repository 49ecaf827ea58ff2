"""Portable attention backend: torch's scaled_dot_product_attention over gathered pages.

Each row's pages are gathered into a dense ``[rows, slots, kv_heads, d]`` tensor
(padded to the longest row), queries are scattered into ``[rows, max_q, heads, d]``,
and one SDPA call with a boolean causal-and-length mask covers the whole step.
Works on any device torch supports.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from agentic_llm.engine.attention.base import BACKEND_KIND
from agentic_llm.engine.forward import ForwardBatch
from agentic_llm.engine.kv.pool import PagedKVPool
from agentic_llm.registry import register

__all__ = ["TorchSDPABackend"]


@dataclass
class _Meta:
    mask: torch.Tensor  # [R, 1, Q, K] bool, True = may attend
    max_q: int


@register(BACKEND_KIND, "torch_sdpa")
class TorchSDPABackend:
    """Attention with ``torch.nn.functional.scaled_dot_product_attention``."""

    def prepare(self, batch: ForwardBatch, pool: PagedKVPool) -> None:
        max_q = batch.max_query_len
        num_slots = batch.block_tables.shape[1] * pool.block_size
        dev = batch.input_ids.device
        kpos = torch.arange(num_slots, device=dev)
        qlens = torch.tensor(batch.query_lens, device=dev)
        starts = batch.context_lens - qlens
        qpos = starts[:, None] + torch.arange(max_q, device=dev)[None, :]  # [R, Q]
        mask = kpos[None, None, :] <= qpos[:, :, None]  # [R, Q, K]
        # padded query slots must still see one key, or SDPA yields NaN rows
        pad_q = torch.arange(max_q, device=dev)[None, :] >= qlens[:, None]
        mask = mask | (pad_q[:, :, None] & (kpos[None, None, :] == 0))
        batch.attn_meta = _Meta(mask=mask[:, None], max_q=max_q)

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
        meta = batch.attn_meta
        assert isinstance(meta, _Meta), "prepare() must run before forward()"
        pool.write(layer, batch.slots, k, v)
        kg, vg = pool.gather(layer, batch.block_tables)  # [R, K, kvh, d]
        rows, heads, d = batch.num_rows, q.shape[1], q.shape[2]
        qp = q.new_zeros((rows, meta.max_q, heads, d))
        qp[batch.token_rows, batch.token_cols] = q
        qp = qp.transpose(1, 2)  # [R, h, Q, d]
        kg = kg.to(q.dtype).transpose(1, 2)  # [R, kvh, K, d]
        vg = vg.to(q.dtype).transpose(1, 2)
        groups = heads // kg.shape[1]
        if groups > 1:
            kg = kg.repeat_interleave(groups, dim=1)
            vg = vg.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(qp, kg, vg, attn_mask=meta.mask, scale=scale)
        cap = batch.capture
        if cap is not None and layer in cap.layers:
            self._capture(layer, qp, kg, batch, scale)
        return out.transpose(1, 2)[batch.token_rows, batch.token_cols]

    @staticmethod
    def _capture(
        layer: int, qp: torch.Tensor, kg: torch.Tensor, batch: ForwardBatch, scale: float
    ) -> None:
        cap = batch.capture
        assert cap is not None
        for r in cap.rows:
            j = batch.query_lens[r] - 1
            ctx = int(batch.context_lens[r])
            scores = (kg[r, :, :ctx] @ qp[r, :, j, :, None]).squeeze(-1).float() * scale  # [h, ctx]
            w = torch.softmax(scores, dim=-1)
            cap.weights[(layer, r)] = w[:, max(0, ctx - cap.window):].detach().cpu()
