"""The contract of the paged KV block pool.

KV entries live in fixed-size pages ("blocks") of ``block_size`` token slots each.
A sequence owns an ordered list of block ids (its block table); token ``t`` of the
sequence lives in block ``table[t // block_size]`` at slot ``t % block_size``.

Blocks are reference counted so that several owners can share one: sequences of a
fork group share the pages of their common prefix, and the radix prefix cache holds
a reference on every page it indexes. A page is back on the free list exactly when
its count reaches zero. A sequence that wants to write into a page that others also
hold must first take a private copy (:meth:`BlockPool.copy_on_write`).

The constructor of an implementation must not need a GPU: tests build pools on the
CPU with a few blocks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import NamedTuple

__all__ = ["BlockPool", "OutOfBlocks", "PoolStats"]


class OutOfBlocks(RuntimeError):
    """Raised when an allocation asks for more free blocks than the pool has."""

    def __init__(self, wanted: int, free: int) -> None:
        super().__init__(f"wanted {wanted} KV blocks, {free} free")
        self.wanted = wanted
        self.free = free


class PoolStats(NamedTuple):
    num_blocks: int
    free_blocks: int
    used_blocks: int
    shared_blocks: int  # blocks with a reference count above one


class BlockPool(ABC):
    """Fixed-size KV pages with reference counts.

    Attributes:
        block_size: token slots per block.
        num_blocks: blocks in the pool.
    """

    block_size: int
    num_blocks: int

    @abstractmethod
    def allocate(self, n: int) -> list[int]:
        """Take ``n`` free blocks, each with reference count 1.

        Raises:
            OutOfBlocks: fewer than ``n`` blocks are free; nothing is taken.
        """

    @abstractmethod
    def incref(self, block_ids: Iterable[int]) -> None:
        """Add one reference to each block (sharing). Each must be allocated."""

    @abstractmethod
    def free(self, block_ids: Iterable[int]) -> None:
        """Drop one reference from each block; blocks reaching zero become free."""

    @abstractmethod
    def ref_count(self, block_id: int) -> int:
        """Current reference count of ``block_id`` (0 when free)."""

    @abstractmethod
    def copy_on_write(self, block_id: int) -> int:
        """Return a block the caller may write to in place of ``block_id``.

        When the caller is the only holder, that is ``block_id`` itself. Otherwise a
        new block is allocated, the KV contents of every layer are copied into it,
        the caller's reference on ``block_id`` is dropped, and the new id returned.

        Raises:
            OutOfBlocks: a copy was needed and no block is free.
        """

    @property
    @abstractmethod
    def num_free(self) -> int:
        """Blocks on the free list."""

    def stats(self) -> PoolStats:
        shared = sum(1 for b in range(self.num_blocks) if self.ref_count(b) > 1)
        return PoolStats(self.num_blocks, self.num_free, self.num_blocks - self.num_free, shared)

    @abstractmethod
    def check_integrity(self) -> None:
        """Raise ``AssertionError`` if internal state is inconsistent.

        Checks at least: every block is either free (count 0, on the free list once)
        or allocated (count > 0, not on the free list).
        """
