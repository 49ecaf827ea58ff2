"""The engine's real KV block pool, shrunk to one layer, one head and one value per
slot, so cache tests can write token ids into pages and read them back.

``pool.data[b]`` is page ``b``'s contents as a list of ints (read and assign), which
lets tests check that a match returns the right pages and that copy-on-write never
changes what another holder sees.
"""

from __future__ import annotations

from agentic_llm.engine.kv.pool import PagedKVPool

__all__ = ["ListBlockPool"]


class _Pages:
    def __init__(self, pool: PagedKVPool) -> None:
        self._keys = pool.k_store[0, 0, :, :, 0]  # [num_blocks, block_size]

    def __getitem__(self, block: int) -> list[int]:
        return [int(v) for v in self._keys[block].tolist()]

    def __setitem__(self, block: int, values: list[int]) -> None:
        self._keys[block] = self._keys.new_tensor([float(v) for v in values])


class ListBlockPool(PagedKVPool):
    """A :class:`PagedKVPool` whose pages hold one integer per token slot."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        super().__init__(num_blocks, block_size, num_layers=1, num_kv_heads=1, head_dim=1)
        self.data = _Pages(self)
