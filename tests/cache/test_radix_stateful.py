"""RadixCache invariants under random programs of match / insert / evict / release.

A sequence model holds its own page references, exactly as the engine does; after
every step the cache's and the pool's integrity checks pass and every page's
reference count equals the cache's one (when indexed) plus one per sequence
holding it. Matched pages always hold the tokens they were matched for.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from agentic_llm.cache.radix import RadixCache
from agentic_llm.engine.kv.base import OutOfBlocks
from tests.cache.pool import ListBlockPool

BS = 2
NUM_BLOCKS = 24

# a tiny alphabet and a few fixed heads make shared prefixes common
heads = st.sampled_from([[], [0, 0, 1, 1], [0, 0, 1, 1, 2, 2], [3, 3]])
token_lists = st.builds(lambda h, t: h + t, heads, st.lists(st.integers(0, 3), max_size=9))


@dataclass
class Seq:
    tokens: list[int]
    table: list[int]
    handle: object | None


class RadixMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.t = 0.0
        self.pool = ListBlockPool(NUM_BLOCKS, BS)
        self.cache = RadixCache(self.pool, capacity_blocks=16, ttl_s=50.0, clock=lambda: self.t)
        self.seqs: list[Seq] = []
        self.pins: list[object] = []

    @rule(tokens=token_lists)
    def admit(self, tokens: list[int]) -> None:
        m = self.cache.match(tokens)
        assert m.num_tokens % BS == 0 and m.num_tokens == len(m.block_ids) * BS
        for i, b in enumerate(m.block_ids):
            assert self.pool.data[b] == tokens[i * BS : (i + 1) * BS], "matched a wrong page"
        need = len(tokens) // BS - len(m.block_ids)
        try:
            new = self.pool.allocate(need)
        except OutOfBlocks:
            self.cache.evict(need - self.pool.num_free)
            try:
                new = self.pool.allocate(need)
            except OutOfBlocks:
                self.pool.free(m.block_ids)
                self.cache.release(m.handle)
                return
        for i, b in enumerate(new, start=len(m.block_ids)):
            self.pool.data[b] = tokens[i * BS : (i + 1) * BS]
        self.seqs.append(Seq(tokens, list(m.block_ids) + new, m.handle))

    @precondition(lambda self: self.seqs)
    @rule(i=st.integers(0, 100), then_match=st.booleans())
    def finish(self, i: int, then_match: bool) -> None:
        seq = self.seqs.pop(i % len(self.seqs))
        self.cache.insert(seq.tokens, seq.table)
        if then_match and self.cache.cached_blocks < self.cache.capacity_blocks:
            m = self.cache.match(seq.tokens)
            assert m.num_tokens == len(seq.table) * BS, "a just-inserted sequence must hit"
            self.pool.free(m.block_ids)
            self.cache.release(m.handle)
        self.pool.free(seq.table)
        if seq.handle is not None:
            self.cache.release(seq.handle)

    @precondition(lambda self: any(s.handle is not None for s in self.seqs))
    @rule(i=st.integers(0, 100))
    def release_early(self, i: int) -> None:
        held = [s for s in self.seqs if s.handle is not None]
        seq = held[i % len(held)]
        self.cache.release(seq.handle)
        seq.handle = None

    @precondition(lambda self: self.seqs)
    @rule(i=st.integers(0, 100))
    def abort(self, i: int) -> None:
        seq = self.seqs.pop(i % len(self.seqs))
        self.pool.free(seq.table)
        if seq.handle is not None:
            self.cache.release(seq.handle)

    @rule(tokens=token_lists)
    def pin(self, tokens: list[int]) -> None:
        handle = self.cache.pin(tokens)
        if handle is not None:
            self.pins.append(handle)

    @precondition(lambda self: self.pins)
    @rule(i=st.integers(0, 100))
    def unpin(self, i: int) -> None:
        self.cache.release(self.pins.pop(i % len(self.pins)))

    @rule(n=st.integers(0, 8))
    def evict(self, n: int) -> None:
        free_before = self.pool.num_free
        freed = self.cache.evict(n)
        assert self.pool.num_free - free_before == freed

    @rule(dt=st.sampled_from([1.0, 10.0, 60.0]))
    def tick(self, dt: float) -> None:
        self.t += dt

    @invariant()
    def consistent(self) -> None:
        self.cache.check_integrity()
        self.pool.check_integrity()
        expected = Counter(self.cache.cached_block_ids())
        for s in self.seqs:
            expected.update(s.table)
        for b in range(NUM_BLOCKS):
            assert self.pool.ref_count(b) == expected[b], f"block {b} refcount"
        locked = sum(1 for s in self.seqs if s.handle is not None) + len(self.pins)
        assert self.cache.stats().locked_handles == locked

    def teardown(self) -> None:
        for h in self.pins:
            self.cache.release(h)
        for s in self.seqs:
            self.pool.free(s.table)
            if s.handle is not None:
                self.cache.release(s.handle)
        self.cache.clear()
        assert self.pool.num_free == NUM_BLOCKS, "pages leaked"


RadixMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)
TestRadixMachine = RadixMachine.TestCase
