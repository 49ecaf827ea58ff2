"""Radix prefix cache: a tree over token ids whose values are KV pages of a block pool.

Every edge of the tree holds a whole number of pages: ``len(node.key) ==
len(node.block_ids) * block_size``. The cache only ever indexes *full* pages; a
sequence that extends a partially filled shared page takes a private copy through
:meth:`BlockPool.copy_on_write`, which is the pool's business.

Contract (the prefix-cache protocol of the engine):

* :meth:`RadixCache.match` returns the longest cached prefix at page granularity.
  The caller receives one pool reference on every returned block (already taken) and
  the matched path is locked against eviction until :meth:`RadixCache.release`.
* :meth:`RadixCache.insert` indexes the full pages of a finished sequence. The cache
  takes its own reference on each block it newly indexes; pages already indexed keep
  their cached copy and the caller's duplicates stay the caller's to free.
* :meth:`RadixCache.evict` drops least-recently-used unlocked leaves and returns how
  many blocks went back to the pool's free list.
* Nodes untouched for longer than ``ttl_s`` are dropped lazily (on match, insert and
  evict) when nothing locks them; the cache never holds more than ``capacity_blocks``
  pages except while locks pin them.
* ``queries_tokens`` / ``hit_tokens`` count tokens looked up and tokens found, the
  meaning vLLM gives to ``prefix_cache_queries`` / ``prefix_cache_hits``.

The engine's prefill needs at least one uncached token to produce logits; it passes
``tokens[:-1]`` (or trims the match) when the whole prompt could hit.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator, Sequence

from agentic_llm.cache.radix.integrity import check_tree, walk
from agentic_llm.cache.radix.node import Handle, Node, PrefixMatch, RadixStats
from agentic_llm.engine.kv.base import BlockPool

__all__ = ["RadixCache", "DEFAULT_TTL_S"]

DEFAULT_TTL_S = 24 * 3600.0


class RadixCache:
    """Longest-prefix cache of KV pages over a :class:`BlockPool`.

    Args:
        pool: the block pool whose pages the cache indexes.
        capacity_blocks: most pages the cache holds references on (default: the
            whole pool). Inserting past it evicts least-recently-used leaves.
        ttl_s: a node untouched this long is dropped when nothing locks it.
        clock: seconds, monotonic; tests pass a fake.
    """

    def __init__(
        self,
        pool: BlockPool,
        *,
        capacity_blocks: int | None = None,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity_blocks is not None and capacity_blocks < 0:
            raise ValueError(f"capacity_blocks must be >= 0, got {capacity_blocks}")
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self.pool = pool
        self.block_size = pool.block_size
        self.capacity_blocks = pool.num_blocks if capacity_blocks is None else capacity_blocks
        self.ttl_s = ttl_s
        self._clock = clock
        self._root = Node(key=(), block_ids=[], parent=None, last_access=clock())
        # sweeping the whole tree for expired nodes costs O(nodes); do it at most
        # this often, which delays expiry by at most this much
        self._sweep_every = min(ttl_s / 16, 60.0)
        self._next_sweep = clock() + self._sweep_every
        self._live: dict[int, Handle] = {}
        self.cached_blocks = 0
        self.queries_tokens = 0
        self.hit_tokens = 0
        self.evicted_blocks = 0
        self.expired_blocks = 0

    # ------------------------------------------------------------------ protocol

    def match(self, tokens: Sequence[int]) -> PrefixMatch:
        """Longest cached prefix of ``tokens`` at page granularity.

        Returns:
            PrefixMatch whose ``block_ids`` the caller now holds one reference on each,
            ``num_tokens`` a multiple of ``block_size``, and ``handle`` to pass to
            :meth:`release` once the request no longer needs the path kept.
        """
        now = self._clock()
        self._expire(now)
        bs = self.block_size
        node = self._root
        node.last_access = now
        blocks: list[int] = []
        pos = 0
        n_full = len(tokens) // bs
        while pos // bs < n_full:
            child = node.children.get(tuple(tokens[pos : pos + bs]))
            if child is None:
                break
            k = self._common_blocks(child, tokens, pos)
            if k < len(child.block_ids):
                child = self._split(child, k)
            child.last_access = now
            blocks.extend(child.block_ids)
            pos += k * bs
            node = child
        handle = Handle(node)
        self._lock(node, +1)
        self._live[id(handle)] = handle
        if blocks:
            self.pool.incref(blocks)
        self.queries_tokens += len(tokens)
        self.hit_tokens += pos
        return PrefixMatch(blocks, pos, handle)

    def insert(self, tokens: Sequence[int], block_ids: Sequence[int]) -> None:
        """Index the full pages ``block_ids`` holding ``tokens[: len(block_ids) * block_size]``.

        Pages already cached for the same tokens are kept as they are; the cache takes
        one reference on each page it newly indexes. The caller keeps its own
        references either way.

        Raises:
            ValueError: fewer tokens than the blocks can hold.
        """
        bs = self.block_size
        n = len(block_ids)
        if len(tokens) < n * bs:
            raise ValueError(f"{n} blocks need {n * bs} tokens, got {len(tokens)}")
        now = self._clock()
        self._expire(now)
        node = self._root
        node.last_access = now
        pos = 0
        while pos // bs < n:
            first = tuple(tokens[pos : pos + bs])
            child = node.children.get(first)
            if child is None:
                new_blocks = list(block_ids[pos // bs :])
                leaf = Node(
                    key=tuple(tokens[pos : n * bs]),
                    block_ids=new_blocks,
                    parent=node,
                    last_access=now,
                )
                node.children[first] = leaf
                self.pool.incref(new_blocks)
                self.cached_blocks += len(new_blocks)
                break
            k = self._common_blocks(child, tokens[: n * bs], pos)
            if k < len(child.block_ids):
                child = self._split(child, k)
            child.last_access = now
            pos += k * bs
            node = child
        over = self.cached_blocks - self.capacity_blocks
        if over > 0:
            self._evict(over, count_freed=False)

    def pin(self, tokens: Sequence[int]) -> object | None:
        """Lock the longest cached prefix of ``tokens`` without taking page references.

        For holders that want cached KV kept resident without using it now (the
        subgraph cache keeps one per entry). Returns a handle for :meth:`release`, or
        None when not even one page is cached. Counters are not touched.
        """
        now = self._clock()
        bs = self.block_size
        node = self._root
        pos = 0
        while pos // bs < len(tokens) // bs:
            child = node.children.get(tuple(tokens[pos : pos + bs]))
            if child is None:
                break
            k = self._common_blocks(child, tokens, pos)
            if k < len(child.block_ids):
                child = self._split(child, k)
            pos += k * bs
            node = child
        if node is self._root:
            return None
        n: Node | None = node
        while n is not None:
            n.last_access = now
            n = n.parent
        handle = Handle(node)
        self._lock(node, +1)
        self._live[id(handle)] = handle
        return handle

    def release(self, handle: object) -> None:
        """Unlock the path a :meth:`match` locked. Each handle is released once.

        Raises:
            ValueError: ``handle`` did not come from this cache or was released already.
        """
        if not isinstance(handle, Handle) or self._live.pop(id(handle), None) is not handle:
            raise ValueError("unknown or already released prefix-cache handle")
        handle.active = False
        self._lock(handle.node, -1)

    def evict(self, num_blocks: int) -> int:
        """Free up to ``num_blocks`` pages nobody else holds; return how many were freed.

        Least-recently-used unlocked leaves go first; leaves whose pages are all still
        held by running sequences are kept (dropping them would free nothing).
        """
        if num_blocks <= 0:
            return 0
        freed = self._expire(self._clock())
        if freed < num_blocks:
            freed += self._evict(num_blocks - freed, count_freed=True)
        return freed

    # ------------------------------------------------------------------ extras

    def expire(self) -> int:
        """Drop every unlocked node untouched for ``ttl_s`` now; return pages freed in the pool."""
        return self._expire(self._clock(), force=True)

    def stats(self) -> RadixStats:
        """Sizes and counters."""
        return RadixStats(
            nodes=sum(1 for _ in self._walk()) - 1,
            cached_blocks=self.cached_blocks,
            locked_handles=len(self._live),
            queries_tokens=self.queries_tokens,
            hit_tokens=self.hit_tokens,
            evicted_blocks=self.evicted_blocks,
            expired_blocks=self.expired_blocks,
        )

    def cached_block_ids(self) -> list[int]:
        """Every page the cache holds a reference on."""
        return [b for node in self._walk() for b in node.block_ids]

    def clear(self) -> int:
        """Drop every unlocked node (all of them when nothing is locked); return pages released."""
        before = self.cached_blocks
        self._evict(self.cached_blocks + 1, count_freed=False)
        return before - self.cached_blocks

    def check_integrity(self) -> None:
        """Raise ``AssertionError`` when the tree, the locks or the pool disagree
        (see :func:`agentic_llm.cache.radix.integrity.check_tree`)."""
        check_tree(self._root, list(self._live.values()), self.pool, self.block_size, self.cached_blocks)
    # ------------------------------------------------------------------ internals

    def _walk(self) -> Iterator[Node]:
        return walk(self._root)

    def _common_blocks(self, child: Node, tokens: Sequence[int], pos: int) -> int:
        """Whole pages of ``child.key`` equal to ``tokens[pos:]`` (at least 1 by lookup)."""
        bs = self.block_size
        key = child.key
        limit = min(len(child.block_ids), (len(tokens) - pos) // bs)
        k = 1
        while k < limit and tuple(tokens[pos + k * bs : pos + (k + 1) * bs]) == key[k * bs : (k + 1) * bs]:
            k += 1
        return k

    def _split(self, child: Node, k: int) -> Node:
        """Cut ``child``'s edge after ``k`` pages; return the new upper node."""
        bs = self.block_size
        parent = child.parent
        assert parent is not None
        upper = Node(
            key=child.key[: k * bs],
            block_ids=child.block_ids[:k],
            parent=parent,
            last_access=child.last_access,
            lock_ref=child.lock_ref,
        )
        parent.children[upper.key[:bs]] = upper
        child.key = child.key[k * bs :]
        child.block_ids = child.block_ids[k:]
        child.parent = upper
        upper.children[child.key[:bs]] = child
        return upper

    def _lock(self, node: Node | None, delta: int) -> None:
        while node is not None:
            node.lock_ref += delta
            node = node.parent

    def _remove_leaf(self, leaf: Node) -> int:
        """Drop an unlocked leaf, releasing the cache's references; return pages freed."""
        parent = leaf.parent
        assert parent is not None and not leaf.children and leaf.lock_ref == 0
        del parent.children[leaf.key[: self.block_size]]
        freed = sum(1 for b in leaf.block_ids if self.pool.ref_count(b) == 1)
        self.pool.free(leaf.block_ids)
        self.cached_blocks -= len(leaf.block_ids)
        leaf.parent = None
        return freed

    def _evict(self, goal: int, *, count_freed: bool) -> int:
        """Drop LRU unlocked leaves until ``goal`` pages are freed (or released)."""
        heap: list[tuple[float, int, Node]] = [
            (n.last_access, n.uid, n)
            for n in self._walk()
            if n is not self._root and not n.children and n.lock_ref == 0
        ]
        heapq.heapify(heap)
        done = 0
        while heap and done < goal:
            _, _, leaf = heapq.heappop(heap)
            if count_freed and all(self.pool.ref_count(b) > 1 for b in leaf.block_ids):
                continue  # pages still used elsewhere: dropping the index frees nothing
            parent = leaf.parent
            released = len(leaf.block_ids)
            freed = self._remove_leaf(leaf)
            self.evicted_blocks += released
            done += freed if count_freed else released
            if parent is not None and parent is not self._root and not parent.children and parent.lock_ref == 0:
                heapq.heappush(heap, (parent.last_access, parent.uid, parent))
        return done

    def _expire(self, now: float, *, force: bool = False) -> int:
        """Drop unlocked subtrees untouched for ``ttl_s``; return pages freed in the pool.

        A parent is touched whenever a child is, so an expired node's whole subtree is
        expired too, and an unlocked node has no locked descendant.
        """
        if now < self._next_sweep and not force:
            return 0
        self._next_sweep = now + self._sweep_every
        deadline = now - self.ttl_s
        freed = 0
        stack = [self._root]
        while stack:
            node = stack.pop()
            for child in list(node.children.values()):
                if child.last_access < deadline and child.lock_ref == 0:
                    freed += self._drop_subtree(child)
                else:
                    stack.append(child)
        return freed

    def _drop_subtree(self, top: Node) -> int:
        order = []
        stack = [top]
        while stack:
            n = stack.pop()
            order.append(n)
            stack.extend(n.children.values())
        freed = 0
        for n in reversed(order):  # leaves first
            self.expired_blocks += len(n.block_ids)
            freed += self._remove_leaf(n)
        return freed
