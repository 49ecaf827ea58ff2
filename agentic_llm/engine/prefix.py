"""The prefix-cache protocol the engine drives.

A prefix cache indexes full KV blocks by the tokens they hold, so a new request whose
prompt starts like an earlier one skips prefilling that part. The engine:

* calls :meth:`PrefixCache.match` when it admits a request (prefill then starts at
  ``num_tokens``; the request holds one reference on each returned block);
* calls :meth:`PrefixCache.insert` when a request finishes or is preempted, before
  dropping its own block references, then :meth:`PrefixCache.release`;
* calls :meth:`PrefixCache.evict` when the pool runs out of blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable

__all__ = ["PrefixMatch", "PrefixCache"]


class PrefixMatch(NamedTuple):
    """The longest cached prefix of a token sequence.

    Attributes:
        block_ids: blocks holding the prefix, in order; the caller owns one reference
            on each (already incref'd by the cache).
        num_tokens: tokens covered, ``len(block_ids) * block_size``.
        handle: pass to :meth:`PrefixCache.release` when done; the matched path
            cannot be evicted until then.
    """

    block_ids: list[int]
    num_tokens: int
    handle: object


@runtime_checkable
class PrefixCache(Protocol):
    """Token-prefix index over KV blocks (implemented by ``agentic_llm.cache.radix``)."""

    queries_tokens: int  # tokens looked up by match()
    hit_tokens: int  # tokens match() found

    def match(self, tokens: Sequence[int]) -> PrefixMatch:
        """Longest cached prefix of ``tokens`` at block granularity; locks it."""
        ...

    def insert(self, tokens: Sequence[int], block_ids: Sequence[int]) -> None:
        """Index ``tokens[: len(block_ids) * block_size]`` as held by ``block_ids``.

        The cache takes its own reference on each block it newly indexes; the
        caller keeps its references.
        """
        ...

    def release(self, handle: object) -> None:
        """Unlock the path a :meth:`match` returned."""
        ...

    def evict(self, num_blocks: int) -> int:
        """Drop the cache's reference on up to ``num_blocks`` unlocked blocks; return how many."""
        ...
