"""A small CPU block pool for cache tests: reference counts plus page contents.

Each page holds ``block_size`` integers standing in for KV entries, so tests can
check that copy-on-write never changes what another holder sees.
"""

from __future__ import annotations

from collections.abc import Iterable

from agentic_llm.engine.kv.base import BlockPool, OutOfBlocks

__all__ = ["ListBlockPool"]


class ListBlockPool(BlockPool):
    """Reference-counted pages on a free list; contents are Python lists."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        self.num_blocks = num_blocks
        self.block_size = block_size
        self._refs = [0] * num_blocks
        self._free = list(range(num_blocks - 1, -1, -1))
        self.data: list[list[int]] = [[0] * block_size for _ in range(num_blocks)]

    def allocate(self, n: int) -> list[int]:
        if n > len(self._free):
            raise OutOfBlocks(n, len(self._free))
        out = [self._free.pop() for _ in range(n)]
        for b in out:
            self._refs[b] = 1
        return out

    def incref(self, block_ids: Iterable[int]) -> None:
        for b in block_ids:
            if self._refs[b] <= 0:
                raise ValueError(f"incref of free block {b}")
            self._refs[b] += 1

    def free(self, block_ids: Iterable[int]) -> None:
        for b in block_ids:
            if self._refs[b] <= 0:
                raise ValueError(f"double free of block {b}")
            self._refs[b] -= 1
            if self._refs[b] == 0:
                self._free.append(b)

    def ref_count(self, block_id: int) -> int:
        return self._refs[block_id]

    def copy_on_write(self, block_id: int) -> int:
        if self._refs[block_id] == 1:
            return block_id
        (new,) = self.allocate(1)
        self.data[new] = list(self.data[block_id])
        self.free([block_id])
        return new

    @property
    def num_free(self) -> int:
        return len(self._free)

    def check_integrity(self) -> None:
        assert len(set(self._free)) == len(self._free), "block twice on the free list"
        free = set(self._free)
        for b, r in enumerate(self._refs):
            assert r >= 0
            assert (r == 0) == (b in free), f"block {b}: refs {r}, on free list {b in free}"

