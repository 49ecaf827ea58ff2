"""A dense K/V copy of the decoding rows, kept from one step to the next.

Paged attention on the CPU pays, at every layer of every step, for gathering each
row's pages into a dense tensor, although a decoding row only adds one token per
step. The workspace keeps that dense tensor, ``[layers, 2 * kv_heads, rows, capacity,
head_dim]``, across steps: while the same sequences decode in the same order, a step
only appends the new tokens' K/V (next to the write into the pool, which stays the
source of truth). Any other change (a row joins or leaves, a row was recomputed, the
capacity is reached) rebuilds it with one gather of every layer, into the buffer
the previous rebuild used when it is large enough: a new allocation of this size is
fresh memory the kernel maps page by page at first touch, which cost a 230 MB gather
(batch 8 x 600 tokens of SmolLM2-135M) 226-286 ms against 47-54 ms into the kept
buffer on a 2-vCPU AMD EPYC.

Sequences are identified by ``ForwardBatch.seq_ids``; a row is reused only when its
sequence id matches and the tokens already in the workspace are exactly the tokens
the row had computed before this step.

A rebuild also measures the rows' shared prefix: the leading tokens every row holds
in the same pool pages (a prefix the radix cache shares, as between the siblings of
a fork or requests with one system prompt). Shared pages are never written (a row
that writes into one copies it first), so those tokens' K/V are equal in every row
and attention may read them once for all rows (``torch_sdpa.decode_attention``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agentic_llm.engine.forward import long_tensor
from agentic_llm.engine.kv.pool import PagedKVPool

__all__ = ["KVWorkspace", "SHARED_MIN_TOKENS", "GROW_SLACK", "SLACK", "WorkspaceBinding", "shared_prefix"]

#: extra key slots allocated past the longest row at a rebuild (rounded to pages).
#: The compiled decode step attends over the whole capacity, so slack costs
#: attention at every step, while running out of it costs one gather; and every
#: rebuild gathers the slack too: 16 measured about 3% faster than 64 at batch 32 on
#: the shipped model (48 new tokens).
SLACK = 16
#: the slack when the same rows outgrow the workspace, for the eager step (which
#: attends over the rows' keys only, so slack costs memory and gather bytes, not
#: attention): steadily decoding rows then rebuild a quarter as often (each a gather
#: of every row's K/V, about 30 ms at batch 8 x 580 tokens of SmolLM2-135M; batch 8
#: TPOT 64.4 ms against 68.6 ms in one `bench engine` run), while a rebuild after
#: rows joined or left keeps ``SLACK`` (with 64 there too, `bench scheduler` on
#: SmolLM2, where rows come and go at most steps, took 26.1 s against 20.8 s)
GROW_SLACK = 64
#: key lengths are rounded up to this, so SDPA sees few distinct shapes
_ALIGN = 8
#: a shared prefix shorter than this is not reported (attention reads it per row)
SHARED_MIN_TOKENS = 64
#: a rebuild that needs a larger buffer allocates this much more (within the byte
#: limit), so rows that keep growing reuse it at their next rebuilds
_BUFFER_HEADROOM = 1.25


@dataclass
class WorkspaceBinding:
    """The workspace as one step uses it.

    Attributes:
        kv: ``[layers, 2 * kv_heads, rows, capacity, head_dim]``.
        write_idx: ``[tokens]`` flat ``row * capacity + position`` of each new token.
        key_len: key slots attention reads (covers every row's context).
    """

    kv: torch.Tensor
    write_idx: torch.Tensor
    key_len: int
    #: views reused from step to step while ``kv`` stays the same tensor
    views: dict[tuple[int, int], tuple[torch.Tensor, ...]]
    #: leading tokens every row holds in the same pool pages (0: none, or too few)
    shared: int = 0

    def write_view(self, layer: int) -> torch.Tensor:
        """``layer``'s ``[2 * kv_heads, rows * capacity, head_dim]`` view (rows flattened)."""
        flat = self.views.get((layer, -1))
        if flat is None:
            _, heads2, rows, cap, d = self.kv.shape
            flat = self.views[(layer, -1)] = (self.kv[layer].view(heads2, rows * cap, d),)
        return flat[0]

    def flat_all(self) -> torch.Tensor:
        """Every layer as ``[layers, 2 * kv_heads, rows * capacity, head_dim]``."""
        layers, heads2, rows, cap, d = self.kv.shape
        return self.kv.view(layers, heads2, rows * cap, d)

    def write(self, layer: int, kv_new: torch.Tensor) -> None:
        """Store this step's ``[2 * kv_heads, tokens, head_dim]`` K/V of ``layer``."""
        self.write_view(layer).index_copy_(1, self.write_idx, kv_new)

    def keys_values(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V of ``layer`` as ``[kv_heads, rows, key_len, head_dim]`` views."""
        kv_pair = self.views.get((layer, self.key_len))
        if kv_pair is None:
            kv = self.kv[layer, :, :, : self.key_len]
            half = kv.shape[0] // 2
            kv_pair = self.views[(layer, self.key_len)] = (kv[:half], kv[half:])
        return kv_pair[0], kv_pair[1]


def shared_prefix(block_tables: torch.Tensor, computed: int, block_size: int) -> int:
    """Leading tokens that every row of ``block_tables`` holds in the same pages and
    has computed (``computed``: the fewest tokens any row had in the pool), or 0 when
    that is under ``SHARED_MIN_TOKENS`` or there is one row."""
    if block_tables.shape[0] < 2 or computed < SHARED_MIN_TOKENS:
        return 0
    pages = min(block_tables.shape[1], computed // block_size + 1)
    same = (block_tables[:, :pages] == block_tables[:1, :pages]).all(dim=0)
    lead = int(same.long().cumprod(0).sum())
    n = min(lead * block_size, computed)
    return n if n >= SHARED_MIN_TOKENS else 0


class KVWorkspace:
    """Dense K/V of one group of rows, reused while the same sequences keep decoding.

    Args:
        max_bytes: the workspace is not used for a group that would need more.
        grow_slack: key slots allocated past the longest row when the same rows
            outgrow the workspace (``SLACK`` at any other rebuild).
    """

    def __init__(self, max_bytes: int, grow_slack: int = GROW_SLACK) -> None:
        self.max_bytes = max_bytes
        self.grow_slack = grow_slack
        self.kv: torch.Tensor | None = None
        self.seq_ids: tuple[int, ...] = ()
        self.lens: list[int] = []
        self.num_rebuilds = 0
        self.shared = 0
        self._views: dict[tuple[int, int], tuple[torch.Tensor, ...]] = {}
        #: flat storage ``kv`` is a view of, kept from one rebuild to the next
        self._buffer: torch.Tensor | None = None

    @property
    def buffer_bytes(self) -> int:
        """Bytes of the kept buffer (0 before the first rebuild)."""
        return 0 if self._buffer is None else self._buffer.numel() * self._buffer.element_size()

    def invalidate(self, release: bool = False) -> None:
        """Forget the contents (the next bind rebuilds); ``release`` also frees the
        buffer they were kept in."""
        if release:
            self._buffer = None
        self.kv = None
        self.seq_ids = ()
        self.lens = []
        self.shared = 0
        self._views = {}

    def bind(
        self,
        seq_ids: list[int],
        starts: list[int],
        ctx: list[int],
        block_tables: torch.Tensor,
        pool: PagedKVPool,
    ) -> WorkspaceBinding | None:
        """Hold rows ``seq_ids`` whose first ``starts[i]`` tokens are in the pool.

        ``block_tables`` are the rows' padded page tables (covering ``ctx``). Returns
        None (and drops the workspace) when it would exceed ``max_bytes``.
        """
        need = max(ctx)
        kv = self.kv
        ids = tuple(seq_ids)
        same_rows = ids == self.seq_ids and starts == self.lens
        if kv is None or not same_rows or need > kv.shape[3]:
            slack = self.grow_slack if kv is not None and same_rows else SLACK
            kv = self._rebuild(len(ids), need, block_tables, pool, slack)
            if kv is None:
                self.invalidate(release=True)
                return None
            self.seq_ids = ids
            self.shared = shared_prefix(block_tables, min(starts), pool.block_size)
        cap = kv.shape[3]
        idx: list[int] = []
        for i, (s, c) in enumerate(zip(starts, ctx, strict=True)):
            base = i * cap
            idx.extend(range(base + s, base + c))
        self.lens = list(ctx)
        key_len = min(cap, -(-need // _ALIGN) * _ALIGN)
        return WorkspaceBinding(kv, long_tensor(idx, kv.device), key_len, self._views, self.shared)

    def _rebuild(
        self, rows: int, need: int, block_tables: torch.Tensor, pool: PagedKVPool, slack: int
    ) -> torch.Tensor | None:
        bs = pool.block_size
        store = pool.kv_store  # [layers, 2, kv_heads, blocks, block_size, d]
        layers, _, kvh, blocks, _, d = store.shape
        page_bytes = layers * 2 * kvh * rows * bs * d * store.element_size()
        # the slack shrinks to what the byte limit leaves: dropping the workspace
        # instead would rebuild it at the next step, and again each time rows
        # outgrow that small slack
        nb = min(-(-(need + slack) // bs), self.max_bytes // page_bytes)
        if nb * bs < need:
            return None
        have = min(nb, block_tables.shape[1])
        table = block_tables[:, :have]
        if have < nb:  # the slack past the tables reads page 0; the mask hides it
            table = torch.cat((table, table.new_zeros((rows, nb - have))), dim=1)
        src = store.view(layers * 2 * kvh, blocks, bs, d)
        numel = layers * 2 * kvh * rows * nb * bs * d
        buf = self._buffer
        if buf is None or buf.numel() < numel or buf.dtype != store.dtype or buf.device != store.device:
            # the old contents are not read (the gather reads the pool): free them first
            self.kv, self._views, self._buffer = None, {}, None
            room = self.max_bytes // store.element_size()
            buf = self._buffer = torch.empty(max(numel, min(room, int(numel * _BUFFER_HEADROOM))),
                                             dtype=store.dtype, device=store.device)
        kv = buf[:numel].view(layers * 2 * kvh, rows * nb, bs, d)
        torch.index_select(src, 1, table.reshape(-1), out=kv)
        kv = kv.view(layers, 2 * kvh, rows, nb * bs, d)
        self.kv = kv
        self._views = {}
        self.num_rebuilds += 1
        return kv
