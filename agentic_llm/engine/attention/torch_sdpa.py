"""Portable attention backend: torch's scaled_dot_product_attention over gathered pages.

Rows are split into two groups, decode-like rows (a few new tokens) and prefill
rows, so that a long prefill chunk never pads every decode row to its length. In
each group the rows' pages are gathered into a dense ``[kv_heads, rows, slots, d]``
tensor (padded to the group's longest row), queries are scattered into a padded
grid, and one SDPA call with a boolean causal-and-length mask covers the group.
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

#: rows computing at most this many tokens form the decode group
_SHORT_QUERY = 16


@dataclass
class _Group:
    rows: list[int]  # batch rows in this group
    token_idx: torch.Tensor  # [t] packed token indices of the group
    local_rows: torch.Tensor  # [t] row of each token inside the group
    cols: torch.Tensor  # [t] index of each token inside its row's chunk
    block_tables: torch.Tensor  # [g_rows, blocks] trimmed to the group's longest row
    context_lens: list[int]
    query_lens: list[int]
    mask: torch.Tensor  # [g_rows, 1, Q, K] bool, True = may attend
    max_q: int
    _grouped: dict[tuple[int, torch.dtype], torch.Tensor] = field(default_factory=dict)

    def grouped_mask(self, groups: int, dtype: torch.dtype) -> torch.Tensor:
        """Additive mask (0 / -inf) for ``groups`` query heads per KV head: ``[1, rows, groups * Q, K]``.

        Additive rather than boolean because SDPA's CPU kernels run about twice as
        fast with it; built once per step and shared by every layer.
        """
        m = self._grouped.get((groups, dtype))
        if m is None:
            r, _, q, k = self.mask.shape
            allowed = self.mask[:, :, None].expand(r, 1, groups, q, k).reshape(1, r, groups * q, k)
            m = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, float("-inf"))
            self._grouped[(groups, dtype)] = m
        return m


@dataclass
class _Meta:
    groups: list[_Group]
    row_to_group: dict[int, tuple[int, int]]  # batch row -> (group, local row)


@register(BACKEND_KIND, "torch_sdpa")
class TorchSDPABackend:
    """Attention with ``torch.nn.functional.scaled_dot_product_attention``."""

    def prepare(self, batch: ForwardBatch, pool: PagedKVPool) -> None:
        short = [r for r, n in enumerate(batch.query_lens) if n <= _SHORT_QUERY]
        long = [r for r, n in enumerate(batch.query_lens) if n > _SHORT_QUERY]
        dev = batch.input_ids.device
        ctx_all = batch.context_lens.tolist()
        starts: list[int] = []
        acc = 0
        for n in batch.query_lens:
            starts.append(acc)
            acc += n
        groups: list[_Group] = []
        row_to_group: dict[int, tuple[int, int]] = {}
        for rows in (short, long):
            if not rows:
                continue
            qlens = [batch.query_lens[r] for r in rows]
            ctx = [ctx_all[r] for r in rows]
            whole = len(rows) == batch.num_rows  # one group: the batch's own index tensors serve
            tok: list[int] = []
            local: list[int] = []
            cols: list[int] = []
            for i, r in enumerate(rows):
                row_to_group[r] = (len(groups), i)
                if not whole:
                    tok.extend(range(starts[r], starts[r] + qlens[i]))
                    local.extend([i] * qlens[i])
                    cols.extend(range(qlens[i]))
            nb = max(-(-c // pool.block_size) for c in ctx)
            max_q = max(qlens)
            kpos = torch.arange(nb * pool.block_size, device=dev)
            ql = torch.tensor(qlens, device=dev)
            qpos = torch.tensor(ctx, device=dev)[:, None] - ql[:, None] + torch.arange(max_q, device=dev)[None, :]
            mask = kpos[None, None, :] <= qpos[:, :, None]  # [R, Q, K]
            # padded query slots must still see one key, or SDPA yields NaN rows
            pad_q = torch.arange(max_q, device=dev)[None, :] >= ql[:, None]
            mask = mask | (pad_q[:, :, None] & (kpos[None, None, :] == 0))

            def t(x: list[int]) -> torch.Tensor:
                return torch.tensor(x, dtype=torch.long, device=dev)

            groups.append(
                _Group(
                    rows=rows,
                    token_idx=torch.arange(acc, device=dev) if whole else t(tok),
                    local_rows=batch.token_rows if whole else t(local),
                    cols=batch.token_cols if whole else t(cols),
                    block_tables=batch.block_tables[:, :nb] if whole else batch.block_tables[t(rows), :nb],
                    context_lens=ctx,
                    query_lens=qlens,
                    mask=mask[:, None],
                    max_q=max_q,
                )
            )
        batch.attn_meta = _Meta(groups, row_to_group)

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
        if len(meta.groups) == 1 and meta.groups[0].token_idx.shape[0] == q.shape[0]:
            out = self._group(layer, q, meta.groups[0], pool, scale, batch, meta)
            return out
        out = torch.empty_like(q)
        for g in meta.groups:
            out[g.token_idx] = self._group(layer, q[g.token_idx], g, pool, scale, batch, meta)
        return out

    def _group(
        self,
        layer: int,
        q: torch.Tensor,
        g: _Group,
        pool: PagedKVPool,
        scale: float,
        batch: ForwardBatch,
        meta: _Meta,
    ) -> torch.Tensor:
        kv = pool.gather_kv(layer, g.block_tables)  # [2, kvh, R, K, d]
        if kv.dtype != q.dtype:
            kv = kv.to(q.dtype)
        kg, vg = kv[0], kv[1]
        rows, heads, d = len(g.rows), q.shape[1], q.shape[2]
        kv_heads = kg.shape[0]
        groups = heads // kv_heads
        if g.max_q == 1 and batch.capture is None:
            # decode rows only: one query per row, no padding grid to scatter into
            qg = q.view(rows, kv_heads, groups, d).transpose(0, 1)
            out = F.scaled_dot_product_attention(qg, kg, vg, attn_mask=g.grouped_mask(groups, q.dtype), scale=scale)
            return out.transpose(0, 1).reshape(rows, heads, d)
        qp = q.new_zeros((rows, g.max_q, heads, d))
        qp[g.local_rows, g.cols] = q
        # grouped-query layout: the query heads sharing a KV head become extra query
        # rows of that head, so K/V are never repeated; KV heads lead, as in the pool
        qg = qp.view(rows, g.max_q, kv_heads, groups, d).permute(2, 0, 3, 1, 4)
        qg = qg.reshape(kv_heads, rows, groups * g.max_q, d)
        out = F.scaled_dot_product_attention(qg, kg, vg, attn_mask=g.grouped_mask(groups, q.dtype), scale=scale)
        cap = batch.capture
        if cap is not None and layer in cap.layers:
            for r in cap.rows:
                gi, local = meta.row_to_group[r]
                if g is meta.groups[gi]:
                    self._capture(layer, r, local, qp, kg, groups, g, cap.window, cap.weights, scale)
        out = out.view(kv_heads, rows, groups, g.max_q, d).permute(1, 3, 0, 2, 4)  # [R, Q, kvh, g, d]
        return out.reshape(rows, g.max_q, heads, d)[g.local_rows, g.cols]

    @staticmethod
    def _capture(
        layer: int,
        row: int,
        local: int,
        qp: torch.Tensor,
        kg: torch.Tensor,
        groups: int,
        g: _Group,
        window: int,
        weights: dict[tuple[int, int], torch.Tensor],
        scale: float,
    ) -> None:
        j = g.query_lens[local] - 1
        ctx = g.context_lens[local]
        keys = kg[:, local, :ctx].repeat_interleave(groups, dim=0)  # [h, ctx, d]
        scores = (keys @ qp[local, j, :, :, None]).squeeze(-1).float() * scale  # [h, ctx]
        w = torch.softmax(scores, dim=-1)
        weights[(layer, row)] = w[:, max(0, ctx - window) :].detach().cpu()
