"""Copy-on-write at the pool level, with the radix cache holding shared pages.

A holder that writes into a shared page goes through ``copy_on_write`` first; the
other holders (fork siblings, the radix cache) must keep seeing the old contents.
Runs against the engine's real K/V pool.
"""

from __future__ import annotations

import random

import torch

from agentic_llm.cache.radix import RadixCache
from agentic_llm.engine.kv.pool import PagedKVPool

BS, LAYERS, HEADS, DIM = 4, 2, 2, 3


def make_pool(n: int = 16) -> PagedKVPool:
    return PagedKVPool(n, BS, LAYERS, HEADS, DIM, shuffle_seed=7)


def fill(pool: PagedKVPool, block: int, offset: int, n: int, value: float) -> None:
    slots = torch.arange(block * BS + offset, block * BS + offset + n)
    for layer in range(LAYERS):
        t = torch.full((n, HEADS, DIM), value + layer)
        pool.write(layer, slots, t, -t)


def page(pool: PagedKVPool, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    return pool.k_cache[:, block].clone(), pool.v_cache[:, block].clone()


def test_sole_holder_writes_in_place() -> None:
    pool = make_pool()
    (b,) = pool.allocate(1)
    assert pool.copy_on_write(b) == b
    pool.check_integrity()


def test_write_through_cow_leaves_the_other_holder_unchanged() -> None:
    pool = make_pool()
    (b,) = pool.allocate(1)
    fill(pool, b, 0, 2, 1.0)  # a partial page: two of four slots
    pool.incref([b])  # a fork sibling shares it
    before = page(pool, b)
    mine = pool.copy_on_write(b)
    assert mine != b and pool.ref_count(b) == 1 and pool.ref_count(mine) == 1
    assert torch.equal(pool.k_cache[:, mine], before[0])  # the copy starts equal
    fill(pool, mine, 2, 2, 5.0)  # the writer extends its private copy
    after = page(pool, b)
    assert torch.equal(after[0], before[0]) and torch.equal(after[1], before[1])
    assert not torch.equal(pool.k_cache[:, mine], before[0])
    pool.check_integrity()


def test_random_writes_never_change_cached_pages() -> None:
    rng = random.Random(3)
    pool = make_pool(32)
    cache = RadixCache(pool)
    tokens = list(range(12))
    table = pool.allocate(3)
    for i, b in enumerate(table):
        fill(pool, b, 0, BS, float(10 * i))
    cache.insert(tokens, table)
    pool.free(table)  # only the cache holds the pages now
    snapshot = {b: page(pool, b) for b in table}
    for _ in range(30):
        m = cache.match(tokens)
        held = list(m.block_ids)
        # a sequence rewriting a random slot of a shared page must copy first
        i = rng.randrange(len(held))
        held[i] = pool.copy_on_write(held[i])
        assert held[i] not in snapshot
        fill(pool, held[i], rng.randrange(BS), 1, rng.uniform(100, 200))
        for b, (k, v) in snapshot.items():
            assert torch.equal(pool.k_cache[:, b], k) and torch.equal(pool.v_cache[:, b], v)
        pool.free(held)
        cache.release(m.handle)
        cache.check_integrity()
        pool.check_integrity()
    assert pool.num_free == 32 - 3
