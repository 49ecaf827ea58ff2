"""The radix cache's self-check, used by tests and debugging."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from agentic_llm.cache.radix.node import Handle, Node
from agentic_llm.engine.kv.base import BlockPool

__all__ = ["check_tree", "walk", "reachable"]


def walk(root: Node) -> Iterator[Node]:
    """Every node under ``root``, ``root`` included."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.children.values())


def reachable(node: Node, root: Node, block_size: int) -> bool:
    """``node`` is still linked into the tree under ``root``."""
    while node.parent is not None:
        if node.parent.children.get(node.key[:block_size]) is not node:
            return False
        node = node.parent
    return node is root


def check_tree(root: Node, handles: Sequence[Handle], pool: BlockPool, block_size: int,
               cached_blocks: int) -> None:
    """Raise ``AssertionError`` when the tree, the locks or the pool disagree.

    Checks: every edge holds whole pages and is filed under its first page's tokens;
    parent links; no page is indexed twice and each indexed page is allocated in the
    pool; ``cached_blocks`` equals the pages indexed; every node's lock count equals
    the live handles whose path runs through it; a parent was touched no earlier than
    its children; every live handle points into the tree.
    """
    bs = block_size
    expected_locks: dict[int, int] = {}
    for h in handles:
        assert h.active, "released handle still registered"
        n: Node | None = h.node
        while n is not None:
            expected_locks[n.uid] = expected_locks.get(n.uid, 0) + 1
            n = n.parent
    seen: set[int] = set()
    total = 0
    for node in walk(root):
        assert node.lock_ref == expected_locks.get(node.uid, 0), (
            f"node lock_ref {node.lock_ref} != {expected_locks.get(node.uid, 0)}"
        )
        if node is not root:
            assert node.block_ids, "non-root node without pages"
            assert len(node.key) == len(node.block_ids) * bs, "edge is not whole pages"
            assert node.parent is not None
            assert node.parent.children.get(node.key[:bs]) is node, "misfiled child"
            assert node.parent.last_access >= node.last_access, "parent older than child"
        for b in node.block_ids:
            assert b not in seen, f"block {b} indexed twice"
            seen.add(b)
            assert pool.ref_count(b) >= 1, f"cached block {b} is free in the pool"
        total += len(node.block_ids)
        for first, child in node.children.items():
            assert child.parent is node, "broken parent link"
            assert child.key[:bs] == first, "child key mismatch"
    assert total == cached_blocks, f"cached_blocks {cached_blocks} != {total}"
    for h in handles:
        assert reachable(h.node, root, bs), "a live handle points at a dropped node"
