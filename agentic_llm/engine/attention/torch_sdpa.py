"""Portable attention backend: torch's scaled_dot_product_attention over gathered pages.

Each row's pages are gathered into a dense ``[rows, slots, kv_heads, d]`` tensor
(padded to the longest row), queries are scattered into ``[rows, max_q, heads, d]``,
and one SDPA call with a boolean causal-and-length mask covers the whole step.
Works on any device torch supports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    _grouped: dict[int, torch.Tensor] = field(default_factory=dict)

    def grouped_mask(self, groups: int) -> torch.Tensor:
        """The mask for ``groups`` query heads per KV head: ``[R, 1, groups * Q, K]``."""
        m = self._grouped.get(groups)
        if m is None:
            r, _, q, k = self.mask.shape
            m = self.mask[:, :, None].expand(r, 1, groups, q, k).reshape(r, 1, groups * q, k)
            self._grouped[groups] = m
        return m


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
        kv_heads = kg.shape[2]
        groups = heads // kv_heads
        qp = q.new_zeros((rows, meta.max_q, heads, d))
        qp[batch.token_rows, batch.token_cols] = q
        # grouped-query layout: the query heads sharing a KV head become extra query
        # rows of that head, so K/V are never repeated
        qg = qp.permute(0, 2, 1, 3).reshape(rows, kv_heads, groups * meta.max_q, d)
        kg = kg.to(q.dtype).transpose(1, 2)  # [R, kvh, K, d]
        vg = vg.to(q.dtype).transpose(1, 2)
        out = F.scaled_dot_product_attention(qg, kg, vg, attn_mask=meta.grouped_mask(groups), scale=scale)
        cap = batch.capture
        if cap is not None and layer in cap.layers:
            self._capture(layer, qp, kg, groups, batch, scale)
        out = out.reshape(rows, heads, meta.max_q, d).transpose(1, 2)  # [R, Q, h, d]
        return out[batch.token_rows, batch.token_cols]

    @staticmethod
    def _capture(
        layer: int, qp: torch.Tensor, kg: torch.Tensor, groups: int, batch: ForwardBatch, scale: float
    ) -> None:
        cap = batch.capture
        assert cap is not None
        for r in cap.rows:
            j = batch.query_lens[r] - 1
            ctx = int(batch.context_lens[r])
            keys = kg[r, :, :ctx].repeat_interleave(groups, dim=0)  # [h, ctx, d]
            scores = (keys @ qp[r, j, :, :, None]).squeeze(-1).float() * scale  # [h, ctx]
            w = torch.softmax(scores, dim=-1)
            cap.weights[(layer, r)] = w[:, max(0, ctx - cap.window) :].detach().cpu()
