"""Nodes, handles and counters of the radix prefix cache."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import NamedTuple

try:  # the engine defines the protocol's result type; keep one type when it exists
    from agentic_llm.engine.prefix import PrefixMatch
except ImportError:  # pragma: no cover - only before the engine's module exists

    class PrefixMatch(NamedTuple):  # type: ignore[no-redef]
        """Result of :meth:`RadixCache.match`."""

        block_ids: list[int]
        num_tokens: int
        handle: object


__all__ = ["Node", "Handle", "RadixStats", "PrefixMatch"]

_node_ids = itertools.count()


@dataclass(eq=False)
class Node:
    """One edge of the tree plus the node it leads to."""

    key: tuple[int, ...]
    block_ids: list[int]
    parent: Node | None
    last_access: float
    children: dict[tuple[int, ...], Node] = field(default_factory=dict)
    # number of live handles whose matched path runs through this node
    lock_ref: int = 0
    uid: int = field(default_factory=lambda: next(_node_ids))


@dataclass(eq=False)
class Handle:
    """A lock on the path from the root to ``node``, returned inside PrefixMatch."""

    node: Node
    active: bool = True


class RadixStats(NamedTuple):
    """Counters and sizes of a :class:`RadixCache`."""

    nodes: int
    cached_blocks: int
    locked_handles: int
    queries_tokens: int
    hit_tokens: int
    evicted_blocks: int
    expired_blocks: int
