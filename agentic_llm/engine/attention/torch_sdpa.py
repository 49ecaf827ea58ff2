"""Portable attention backend: torch's scaled_dot_product_attention over dense K/V.

Rows are split into groups, decode-like rows (a few new tokens) and prefill rows of
similar lengths, so that a long prefill chunk never pads shorter rows to its length. Each
group attends over a dense ``[kv_heads, rows, slots, d]`` K/V tensor: for decode rows
the :class:`~agentic_llm.engine.attention.workspace.KVWorkspace` kept across steps
(when the batch says which sequence each row is), otherwise the rows' pages gathered
from the pool. Queries are scattered into a padded grid (not needed when every row
has one query) and one SDPA call with an additive mask built once per step covers
the group. Works on any device torch supports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from agentic_llm.engine.attention.base import BACKEND_KIND
from agentic_llm.engine.attention.workspace import GROW_SLACK, KVWorkspace, WorkspaceBinding
from agentic_llm.engine.forward import ForwardBatch
from agentic_llm.engine.kv.pool import PagedKVPool, pack_kv
from agentic_llm.engine.native import decode_attention_kernel
from agentic_llm.registry import register

__all__ = ["DecodeState", "TorchSDPABackend", "decode_attention", "workspace_limit", "WORKSPACE_MAX_BYTES", "WORKSPACE_SHARE"]

#: rows computing at most this many tokens form the decode group
_SHORT_QUERY = 16
#: a prefill group's longest row computes at most this many times its shortest row's tokens
_BUCKET_SPREAD = 1.5
#: workspace size limit: a share of the pool's K/V bytes, within fixed bounds. Half:
#: serve's default pool (1,024 pages of 16) for SmolLM2-135M holds 755 MB, and 8
#: decoding rows of ~800 tokens need 290 MB of workspace; with a quarter they ran the
#: generic gather path at every step.
WORKSPACE_SHARE = 0.5
WORKSPACE_MIN_BYTES = 64 * 1024 * 1024
WORKSPACE_MAX_BYTES = 512 * 1024 * 1024


def decode_attention(qg: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
                     scale: float, shared: int = 0, lens: torch.Tensor | None = None) -> torch.Tensor:
    """Attention of one query per row over the decode workspace.

    ``qg`` ``[kv_heads, rows, groups, d]`` (the query heads of a KV head as extra
    queries), ``keys``/``values`` ``[kv_heads, rows, key_len, d]``, ``mask``
    ``[1, rows, 1, key_len]`` additive. With ``shared`` > 0 the first ``shared`` keys
    are the same in every row (``KVWorkspace``'s shared prefix): their scores and
    their share of the output are computed once for all rows' queries, from row 0,
    in one matmul each, instead of row by row; the rest of each row's keys as usual,
    and one softmax over both. Equal to SDPA within float rounding; it reads the
    shared prefix once instead of ``rows`` times (at batch 8 over a 469-token shared
    prompt, SmolLM2-135M: 8.2 ms of attention a step against 18 ms).

    With ``lens`` (int64 ``[rows]``: the keys each row sees, which ``mask`` then
    only restates) float32 CPU tensors go to the C kernel (``native.DecodeAttention``):
    at batch 8 over 600 keys, 320 shared, SmolLM2's shapes, 14.9 ms for 30 layers
    against 33.7 ms for the torch ops below, and 4.6 against 7.8 ms at batch 1, on a
    2-vCPU AMD EPYC.
    """
    if lens is not None:
        kernel = decode_attention_kernel()
        if kernel is not None:
            out = kernel(qg, keys, values, lens, scale, max(shared, 0))
            if out is not None:
                return out
    if shared <= 0:
        return F.scaled_dot_product_attention(qg, keys, values, attn_mask=mask, scale=scale)
    kvh, rows, groups, d = qg.shape
    kp, vp = keys[:, 0, :shared], values[:, 0, :shared]  # [kv_heads, shared, d]
    head = torch.matmul(qg.reshape(kvh, rows * groups, d), kp.transpose(1, 2)).view(kvh, rows, groups, shared)
    tail = torch.matmul(qg, keys[:, :, shared:].transpose(2, 3))  # [kv_heads, rows, groups, rest]
    p = torch.softmax(torch.cat((head, tail), dim=-1).mul_(scale).add_(mask), dim=-1)
    out = torch.matmul(p[..., :shared].reshape(kvh, rows * groups, shared), vp).view(kvh, rows, groups, d)
    return out.add_(torch.matmul(p[..., shared:], values[:, :, shared:]))


def workspace_limit(pool_bytes: int) -> int:
    """Bytes the decode workspace may take beside a K/V pool of ``pool_bytes``: a
    group that needs more decodes on the generic gather path."""
    return min(WORKSPACE_MAX_BYTES, max(WORKSPACE_MIN_BYTES, int(pool_bytes * WORKSPACE_SHARE)))


@dataclass
class _Group:
    rows: list[int]  # batch rows in this group
    rows_t: torch.Tensor | None  # the same as a tensor; None when the group is the whole batch
    token_idx: torch.Tensor | None  # [t] packed token indices; None when the whole batch
    local_rows: torch.Tensor  # [t] row of each token inside the group
    cols: torch.Tensor  # [t] index of each token inside its row's chunk
    block_tables: torch.Tensor  # [g_rows, blocks] trimmed to the group's longest row
    context_lens: list[int]
    query_lens: list[int]
    max_q: int
    key_len: int  # key slots attention reads per row
    ws: WorkspaceBinding | None = None
    context_t: torch.Tensor | None = None  # context_lens as a tensor, when already at hand
    _masks: dict[tuple[int, int, torch.dtype], torch.Tensor] = field(default_factory=dict)
    _lens: torch.Tensor | None = None
    _tok: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def shared(self) -> int:
        """Leading keys every row holds in the same pages (``KVWorkspace.shared``; 0
        without a workspace)."""
        return self.ws.shared if self.ws is not None else 0

    def lens(self) -> torch.Tensor:
        """``context_lens`` as a contiguous int64 CPU tensor (the keys each row's last
        query sees), built once per step."""
        t = self._lens
        if t is None:
            c = self.context_t
            t = self._lens = (c if c is not None and c.device.type == "cpu" and c.dtype == torch.int64
                              and c.is_contiguous() else torch.tensor(self.context_lens, dtype=torch.int64))
        return t

    def token_lens(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per query token of the group (in token order): the keys it sees (causal:
        its row's context less the row's later queries) and its row, as contiguous
        int64 CPU tensors, built once per step."""
        t = self._tok
        if t is None:
            ctx = torch.tensor(self.context_lens, dtype=torch.int64)
            ql = torch.tensor(self.query_lens, dtype=torch.int64)
            rows = self.local_rows.to("cpu", torch.int64).contiguous()
            lens = (ctx[rows] - ql[rows] + self.cols.to("cpu", torch.int64) + 1).contiguous()
            t = self._tok = (lens, rows)
        return t

    def mask(self, groups: int, dtype: torch.dtype, last_only: bool = False) -> torch.Tensor:
        """Additive mask (0 / -inf), built once per step and shared by every layer.

        ``[1, rows, groups * Q, K]`` for the group's queries, or ``[1, rows, 1, K]``
        (broadcast over heads) when each row has one query or only its last is asked.
        Additive rather than boolean because SDPA's CPU kernels run about twice as
        fast with it.
        """
        one = last_only or self.max_q == 1
        key = (1 if one else groups, int(one), dtype)
        m = self._masks.get(key)
        if m is not None:
            return m
        dev = self.block_tables.device
        kpos = torch.arange(self.key_len, device=dev)
        ctx = self.context_t if self.context_t is not None else torch.tensor(self.context_lens, device=dev)
        if one:  # a row's last query sees its whole context
            allowed = (kpos[None, :] < ctx[:, None])[None, :, None, :]
        else:
            ql = torch.tensor(self.query_lens, device=dev)
            qi = torch.arange(self.max_q, device=dev)
            qpos = ctx[:, None] - ql[:, None] + qi[None, :]
            allowed = kpos[None, None, :] <= qpos[:, :, None]  # [R, Q, K]
            # padded query slots must still see one key, or SDPA yields NaN rows
            pad_q = qi[None, :] >= ql[:, None]
            allowed = allowed | (pad_q[:, :, None] & (kpos[None, None, :] == 0))
            r, q, k = allowed.shape
            allowed = allowed[:, None].expand(r, groups, q, k).reshape(1, r, groups * q, k)
        zero = torch.zeros((), dtype=dtype, device=dev)
        m = torch.where(allowed, zero, torch.full((), float("-inf"), dtype=dtype, device=dev))
        self._masks[key] = m
        return m


@dataclass
class _Meta:
    groups: list[_Group]
    row_to_group: dict[int, tuple[int, int]]  # batch row -> (group, local row)


@dataclass
class DecodeState:
    """What a step whose rows all decode one token over the workspace needs per layer.

    The same tensors :meth:`TorchSDPABackend.forward` would use, handed out once per
    step so a specialised decode forward can write K/V and attend without the
    generic per-layer dispatch.

    Attributes:
        pool_flat: per layer, the pool's ``[2 * kv_heads, slots, d]`` view.
        slots: ``[rows]`` pool slot of each row's new token.
        ws_flat: per layer, the workspace's ``[2 * kv_heads, rows * capacity, d]`` view.
        ws_idx: ``[rows]`` workspace slot of each row's new token.
        keys, values: per layer, ``[kv_heads, rows, key_len, d]`` workspace views.
        group: the step's one attention group (its :meth:`mask` is built on first use).
        pool_all: the pool as ``[layers, 2 * kv_heads, slots, d]`` (every layer at once).
        ws_all: the workspace as ``[layers, 2 * kv_heads, rows * capacity, d]``.
        ws_full: the workspace, ``[layers, 2 * kv_heads, rows, capacity, d]``.
    """

    pool_flat: list[torch.Tensor]
    slots: torch.Tensor
    ws_flat: list[torch.Tensor]
    ws_idx: torch.Tensor
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    group: _Group
    pool_all: torch.Tensor
    ws_all: torch.Tensor
    ws_full: torch.Tensor


@register(BACKEND_KIND, "torch_sdpa")
class TorchSDPABackend:
    """Attention with ``torch.nn.functional.scaled_dot_product_attention``."""

    def __init__(self) -> None:
        self.workspace: KVWorkspace | None = None
        #: the workspace's slack when its rows outgrow it (``workspace.GROW_SLACK``;
        #: the engine sets ``workspace.SLACK`` for a compiled decode step)
        self.workspace_grow_slack = GROW_SLACK

    def invalidate(self) -> None:
        """Drop state kept across steps, and the memory it was kept in (after a failed
        step, which may have been short of memory)."""
        if self.workspace is not None:
            self.workspace.invalidate(release=True)

    def _workspace(self, pool: PagedKVPool) -> KVWorkspace:
        if self.workspace is None:
            self.workspace = KVWorkspace(workspace_limit(pool.kv_store.numel() * pool.kv_store.element_size()),
                                         self.workspace_grow_slack)
        return self.workspace

    def prepare(self, batch: ForwardBatch, pool: PagedKVPool) -> None:
        qlens = batch.query_lens
        short = [r for r, n in enumerate(qlens) if n <= _SHORT_QUERY]
        # prefill rows in buckets of similar length: each is padded to its longest
        buckets: list[list[int]] = []
        for r in sorted((r for r, n in enumerate(qlens) if n > _SHORT_QUERY), key=lambda r: -qlens[r]):
            if buckets and qlens[r] * _BUCKET_SPREAD >= qlens[buckets[-1][0]]:
                buckets[-1].append(r)
            else:
                buckets.append([r])
        dev = batch.input_ids.device
        ctx_all = batch.context_lens_list or batch.context_lens.tolist()
        bs = pool.block_size
        groups: list[_Group] = []
        row_to_group: dict[int, tuple[int, int]] = {}
        for rows in [short, *(sorted(b) for b in buckets)]:
            if not rows:
                continue
            whole = len(rows) == batch.num_rows  # one group: the batch's own index tensors serve
            qlens_g = [qlens[r] for r in rows]
            ctx = [ctx_all[r] for r in rows]
            for i, r in enumerate(rows):
                row_to_group[r] = (len(groups), i)
            nb = max(-(-c // bs) for c in ctx)
            if whole:
                rows_t = token_idx = None
                local, cols = batch.token_rows, batch.token_cols
                tables = batch.block_tables[:, :nb]
            else:
                starts = batch.token_starts()
                tok: list[int] = []
                loc: list[int] = []
                col: list[int] = []
                for i, r in enumerate(rows):
                    tok.extend(range(starts[r], starts[r] + qlens_g[i]))
                    loc.extend([i] * qlens_g[i])
                    col.extend(range(qlens_g[i]))
                rows_t = torch.tensor(rows, dtype=torch.long, device=dev)
                token_idx = torch.tensor(tok, dtype=torch.long, device=dev)
                local = torch.tensor(loc, dtype=torch.long, device=dev)
                cols = torch.tensor(col, dtype=torch.long, device=dev)
                tables = batch.block_tables[rows_t, :nb]
            ws = None
            seq = [batch.seq_ids[r] for r in rows] if batch.seq_ids is not None else []
            # decode rows only; a step that skips the workspace advances its rows'
            # starts past what it holds, so the next bind rebuilds
            if rows is short and seq and min(seq) >= 0:
                starts_g = [c - q for c, q in zip(ctx, qlens_g, strict=True)]
                ws = self._workspace(pool).bind(seq, starts_g, ctx, tables, pool)
            groups.append(
                _Group(
                    rows=rows,
                    rows_t=rows_t,
                    token_idx=token_idx,
                    local_rows=local,
                    cols=cols,
                    block_tables=tables,
                    context_lens=ctx,
                    query_lens=qlens_g,
                    max_q=max(qlens_g),
                    key_len=ws.key_len if ws is not None else nb * bs,
                    ws=ws,
                    context_t=batch.context_lens if whole else None,
                )
            )
        batch.attn_meta = _Meta(groups, row_to_group)

    def decode_state(self, batch: ForwardBatch, pool: PagedKVPool, dtype: torch.dtype) -> DecodeState | None:
        """After :meth:`prepare`: the per-layer tensors of a step in which every row
        decodes one token over the bound workspace; None for any other step.

        ``dtype`` is the queries' dtype.
        """
        meta = batch.attn_meta
        if not isinstance(meta, _Meta) or len(meta.groups) != 1:
            return None
        g = meta.groups[0]
        ws = g.ws
        if ws is None or g.max_q != 1 or g.token_idx is not None or ws.kv.dtype != dtype or pool.kv_store.dtype != dtype:
            return None
        layers = pool.num_layers
        flat = [ws.write_view(i) for i in range(layers)]
        kv = [ws.keys_values(i) for i in range(layers)]
        return DecodeState(
            pool_flat=pool.flat_views,
            slots=batch.slots,
            ws_flat=flat,
            ws_idx=ws.write_idx,
            keys=[x[0] for x in kv],
            values=[x[1] for x in kv],
            group=g,
            pool_all=pool.flat_all,
            ws_all=ws.flat_all(),
            ws_full=ws.kv,
        )

    def _store(
        self, layer: int, k: torch.Tensor, v: torch.Tensor, batch: ForwardBatch, pool: PagedKVPool, meta: _Meta
    ) -> None:
        kv = pack_kv(k, v)  # [2 * kv_heads, tokens, d]
        pool.write_kv(layer, batch.slots, kv)
        for g in meta.groups:
            if g.ws is not None:
                g.ws.write(layer, kv if g.token_idx is None else kv[:, g.token_idx])

    def _keys_values(self, layer: int, g: _Group, pool: PagedKVPool, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        if g.ws is not None:
            kg, vg = g.ws.keys_values(layer)
        else:
            kv = pool.gather_kv(layer, g.block_tables)  # [2, kvh, R, K, d]
            kg, vg = kv[0], kv[1]
        if kg.dtype != dtype:
            kg, vg = kg.to(dtype), vg.to(dtype)
        return kg, vg

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
        self._store(layer, k, v, batch, pool, meta)
        if len(meta.groups) == 1:
            return self._group(layer, q, meta.groups[0], pool, scale, batch, meta)
        out = torch.empty_like(q)
        for g in meta.groups:
            out[g.token_idx] = self._group(layer, q[g.token_idx], g, pool, scale, batch, meta)
        return out

    def forward_last(
        self,
        layer: int,
        q_last: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        batch: ForwardBatch,
        pool: PagedKVPool,
        scale: float,
        store: bool = True,
    ) -> torch.Tensor:
        """Store every token's ``k``/``v`` (unless ``store`` is False: already stored);
        attend for each row's last query only.

        ``q_last`` is ``[rows, heads, d]`` (row order); returns the same shape.
        """
        meta = batch.attn_meta
        assert isinstance(meta, _Meta), "prepare() must run before forward_last()"
        if store:
            self._store(layer, k, v, batch, pool, meta)
        if len(meta.groups) == 1:
            return self._last_queries(layer, q_last, meta.groups[0], pool, scale)
        out = torch.empty_like(q_last)
        for g in meta.groups:
            out[g.rows_t] = self._last_queries(layer, q_last[g.rows_t], g, pool, scale)
        return out

    def _last_queries(
        self, layer: int, q: torch.Tensor, g: _Group, pool: PagedKVPool, scale: float
    ) -> torch.Tensor:
        kg, vg = self._keys_values(layer, g, pool, q.dtype)
        rows, heads, d = q.shape
        kv_heads = kg.shape[0]
        groups = heads // kv_heads
        qg = q.view(rows, kv_heads, groups, d).transpose(0, 1)
        lens = g.lens() if q.device.type == "cpu" else None
        out = decode_attention(qg, kg, vg, g.mask(groups, q.dtype, True), scale, g.shared, lens)
        return out.transpose(0, 1).reshape(rows, heads, d)

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
        cap = batch.capture
        if g.max_q == 1 and (cap is None or layer not in cap.layers):
            # one query per row: no padding grid to scatter into
            return self._last_queries(layer, q, g, pool, scale)
        kg, vg = self._keys_values(layer, g, pool, q.dtype)
        rows, heads, d = len(g.rows), q.shape[1], q.shape[2]
        kv_heads = kg.shape[0]
        groups = heads // kv_heads
        if g.max_q <= _SHORT_QUERY and q.device.type == "cpu" and (cap is None or layer not in cap.layers):
            # a few queries per row (decode rows beside rows extending by forced
            # text): each query token is a row of the C kernel, reading its row's K/V
            kernel = decode_attention_kernel()
            if kernel is not None:
                lens, rowmap = g.token_lens()
                tokens = q.shape[0]
                got = kernel(q.view(tokens, kv_heads, groups, d).transpose(0, 1), kg, vg, lens, scale,
                             g.shared, rowmap)
                if got is not None:
                    return got.transpose(0, 1).reshape(tokens, heads, d)
        qp = q.new_zeros((rows, g.max_q, heads, d))
        qp[g.local_rows, g.cols] = q
        # grouped-query layout: the query heads sharing a KV head become extra query
        # rows of that head, so K/V are never repeated; KV heads lead, as in the pool
        qg = qp.view(rows, g.max_q, kv_heads, groups, d).permute(2, 0, 3, 1, 4)
        qg = qg.reshape(kv_heads, rows, groups * g.max_q, d)
        out = F.scaled_dot_product_attention(qg, kg, vg, attn_mask=g.mask(groups, q.dtype), scale=scale)
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
