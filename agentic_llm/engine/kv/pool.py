"""The paged KV block pool: K/V tensors for every layer plus reference-counted pages."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable

import torch

from agentic_llm.engine.kv.base import BlockPool, OutOfBlocks

__all__ = ["PagedKVPool", "bytes_per_block", "pack_kv"]


def bytes_per_block(
    num_layers: int, block_size: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype
) -> int:
    """Bytes one block takes across all layers, K and V together."""
    elem = torch.empty((), dtype=dtype).element_size()
    return 2 * num_layers * block_size * num_kv_heads * head_dim * elem


def pack_kv(k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """K and V ``[tokens, kv_heads, d]`` as one ``[2 * kv_heads, tokens, d]`` tensor (pool order).

    When ``v`` directly follows ``k`` in memory (both views of one fused projection
    output), this is a view and nothing is copied.
    """
    t, kvh, d = k.shape
    if (
        v.shape == k.shape
        and v.dtype == k.dtype
        and v.device == k.device
        and v.stride() == k.stride()
        and k.stride(2) == 1
        and k.stride(1) == d
        and v.data_ptr() == k.data_ptr() + kvh * d * k.element_size()
    ):
        kv = k.as_strided((t, 2 * kvh, d), k.stride())
    else:
        kv = torch.cat((k, v), dim=1)
    return kv.transpose(0, 1)


class PagedKVPool(BlockPool):
    """K/V pages for every layer.

    Storage is one tensor :attr:`kv_store`, ``[layers, 2, kv_heads, blocks, block_size,
    head_dim]`` (K then V; :attr:`k_store` / :attr:`v_store` are its halves), heads
    outside blocks, so that a layer's write is one ``index_copy_`` and gathering the pages of many rows is one copy of contiguous pages that
    lands directly in the ``[kv_heads, rows, slots, head_dim]`` layout attention
    reads. :attr:`k_cache` / :attr:`v_cache` are views indexed by block first,
    ``[layers, blocks, kv_heads, block_size, head_dim]``.

    Args:
        num_blocks: pages in the pool.
        block_size: token slots per page.
        num_layers, num_kv_heads, head_dim: the model's KV geometry.
        dtype, device: storage of the K/V tensors.
        shuffle_seed: when set, the free list starts in a random order, so that a
            sequence's pages are scattered across the pool (tests use this to show
            block tables are honoured).
    """

    def __init__(
        self,
        num_blocks: int,
        block_size: int,
        num_layers: int,
        num_kv_heads: int,
        head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        shuffle_seed: int | None = None,
    ) -> None:
        if num_blocks <= 0 or block_size <= 0:
            raise ValueError(f"num_blocks ({num_blocks}) and block_size ({block_size}) must be > 0")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.num_layers = num_layers
        # K and V share one tensor, so a layer's write and gather are one op each
        shape = (num_layers, 2, num_kv_heads, num_blocks, block_size, head_dim)
        self.kv_store = torch.zeros(shape, dtype=dtype, device=device)
        self.k_store = self.kv_store[:, 0]
        self.v_store = self.kv_store[:, 1]
        self._kv_heads = num_kv_heads
        self._head_dim = head_dim
        # per layer, ``[2 * kv_heads, slots, head_dim]`` views for writes (built once)
        self._flat = [
            self.kv_store[i].view(2 * num_kv_heads, num_blocks * block_size, head_dim) for i in range(num_layers)
        ]
        self._refs = [0] * num_blocks
        order = list(range(num_blocks))
        if shuffle_seed is not None:
            random.Random(shuffle_seed).shuffle(order)
        self._free: deque[int] = deque(order)

    @property
    def k_cache(self) -> torch.Tensor:
        """K as ``[layers, blocks, kv_heads, block_size, head_dim]`` (a view)."""
        return self.k_store.transpose(1, 2)

    @property
    def v_cache(self) -> torch.Tensor:
        """V as ``[layers, blocks, kv_heads, block_size, head_dim]`` (a view)."""
        return self.v_store.transpose(1, 2)

    @classmethod
    def from_memory_budget(
        cls,
        budget_bytes: int,
        block_size: int,
        num_layers: int,
        num_kv_heads: int,
        head_dim: int,
        **kwargs: object,
    ) -> PagedKVPool:
        """A pool with as many blocks as ``budget_bytes`` holds (at least one)."""
        dtype = kwargs.get("dtype", torch.float32)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"dtype must be a torch.dtype, got {dtype!r}")
        per = bytes_per_block(num_layers, block_size, num_kv_heads, head_dim, dtype)
        n = max(1, budget_bytes // per)
        return cls(n, block_size, num_layers, num_kv_heads, head_dim, **kwargs)  # type: ignore[arg-type]

    # -- reference counting --------------------------------------------------
    def allocate(self, n: int) -> list[int]:
        if n < 0:
            raise ValueError("cannot allocate a negative number of blocks")
        if n > len(self._free):
            raise OutOfBlocks(n, len(self._free))
        out = [self._free.popleft() for _ in range(n)]
        for b in out:
            self._refs[b] = 1
        return out

    def incref(self, block_ids: Iterable[int]) -> None:
        for b in block_ids:
            if self._refs[b] <= 0:
                raise ValueError(f"incref on free block {b}")
            self._refs[b] += 1

    def free(self, block_ids: Iterable[int]) -> None:
        for b in block_ids:
            if self._refs[b] <= 0:
                raise ValueError(f"free of block {b}, which is already free")
            self._refs[b] -= 1
            if self._refs[b] == 0:
                self._free.append(b)

    def ref_count(self, block_id: int) -> int:
        return self._refs[block_id]

    def copy_on_write(self, block_id: int) -> int:
        if self._refs[block_id] <= 0:
            raise ValueError(f"copy_on_write of free block {block_id}")
        if self._refs[block_id] == 1:
            return block_id
        (new,) = self.allocate(1)
        self.kv_store[:, :, :, new].copy_(self.kv_store[:, :, :, block_id])
        self.free([block_id])
        return new

    def copy_blocks(self, src: list[int], dst: list[int]) -> None:
        """Copy the K/V of pages ``src[i]`` into ``dst[i]`` on every layer (one gather, one scatter)."""
        if not src:
            return
        layers, two, kvh, blocks, bs, d = self.kv_store.shape
        flat = self.kv_store.view(layers * two * kvh, blocks, bs * d)
        dev = self.kv_store.device
        src_t = torch.tensor(src, dtype=torch.long, device=dev)
        dst_t = torch.tensor(dst, dtype=torch.long, device=dev)
        flat.index_copy_(1, dst_t, flat.index_select(1, src_t))

    @property
    def num_free(self) -> int:
        return len(self._free)

    def check_integrity(self) -> None:
        free = list(self._free)
        if len(set(free)) != len(free):
            raise AssertionError("a block is on the free list twice")
        free_set = set(free)
        for b, r in enumerate(self._refs):
            if r < 0:
                raise AssertionError(f"block {b} has negative reference count {r}")
            if (r == 0) != (b in free_set):
                raise AssertionError(f"block {b}: count {r} but on free list = {b in free_set}")

    # -- slot access used by attention backends --------------------------------
    def write(self, layer: int, slots: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store ``k``/``v`` (``[tokens, kv_heads, head_dim]``) at flat slots ``block * block_size + offset``."""
        self.write_kv(layer, slots, pack_kv(k, v))

    @property
    def flat_views(self) -> list[torch.Tensor]:
        """Per layer, ``[2 * kv_heads, num_blocks * block_size, head_dim]`` views of the store
        (K heads then V heads; slot ``block * block_size + offset``)."""
        return self._flat

    @property
    def flat_all(self) -> torch.Tensor:
        """Every layer as ``[layers, 2 * kv_heads, num_blocks * block_size, head_dim]``."""
        return self.kv_store.view(self.num_layers, 2 * self._kv_heads, self.num_blocks * self.block_size,
                                  self._head_dim)

    def write_kv(self, layer: int, slots: torch.Tensor, kv: torch.Tensor) -> None:
        """Store ``kv`` (``[2 * kv_heads, tokens, head_dim]``, K heads then V heads) at flat slots."""
        if kv.dtype != self.kv_store.dtype:
            kv = kv.to(self.kv_store.dtype)
        self._flat[layer].index_copy_(1, slots, kv)

    def gather_kv(self, layer: int, block_tables: torch.Tensor) -> torch.Tensor:
        """K and V of padded block tables as one ``[2, kv_heads, rows, slots, head_dim]`` tensor."""
        rows, nb = block_tables.shape
        src = self.kv_store[layer].view(2 * self._kv_heads, self.num_blocks, self.block_size, self._head_dim)
        out = src.index_select(1, block_tables.reshape(-1))
        return out.view(2, self._kv_heads, rows, nb * self.block_size, self._head_dim)

    def gather(self, layer: int, block_tables: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """K/V of padded block tables ``[rows, max_blocks]`` as ``[kv_heads, rows, slots, head_dim]``."""
        kv = self.gather_kv(layer, block_tables)
        return kv[0], kv[1]
