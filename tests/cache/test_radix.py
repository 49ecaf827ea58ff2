"""RadixCache: matching, insertion, locking, eviction, TTL and counters."""

from __future__ import annotations

import pytest

from agentic_llm.cache.radix import RadixCache
from tests.cache.pool import ListBlockPool

BS = 4


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def run_sequence(pool: ListBlockPool, cache: RadixCache, tokens: list[int]) -> list[int]:
    """Prefill ``tokens`` the way the engine does; return the finished block table."""
    m = cache.match(tokens)
    n_full = len(tokens) // BS
    new = pool.allocate(n_full - len(m.block_ids))
    table = list(m.block_ids) + new
    for i, b in enumerate(new, start=len(m.block_ids)):
        pool.data[b] = tokens[i * BS : (i + 1) * BS]
    cache.insert(tokens, table)
    pool.free(table)
    cache.release(m.handle)
    return table


def test_match_empty_cache_counts_queries() -> None:
    pool = ListBlockPool(8, BS)
    cache = RadixCache(pool)
    m = cache.match(list(range(10)))
    assert m.block_ids == [] and m.num_tokens == 0
    assert cache.queries_tokens == 10 and cache.hit_tokens == 0
    cache.release(m.handle)
    cache.check_integrity()


def test_insert_then_match_full_pages_only() -> None:
    pool = ListBlockPool(16, BS)
    cache = RadixCache(pool)
    toks = list(range(11))  # two full pages and a partial one
    table = run_sequence(pool, cache, toks)
    assert len(table) == 2
    assert all(pool.ref_count(b) == 1 for b in table)  # only the cache holds them now
    m = cache.match(toks + [99])
    assert m.block_ids == table and m.num_tokens == 8
    assert all(pool.ref_count(b) == 2 for b in table)  # the caller got its reference
    assert cache.hit_tokens == 8
    cache.release(m.handle)
    pool.free(m.block_ids)
    cache.check_integrity()
    pool.check_integrity()


def test_divergent_suffix_splits_edge() -> None:
    pool = ListBlockPool(16, BS)
    cache = RadixCache(pool)
    a = [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    b = [1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4]
    ta = run_sequence(pool, cache, a)
    tb = run_sequence(pool, cache, b)
    assert tb[:2] == ta[:2] and tb[2] != ta[2]
    assert cache.stats().nodes == 3
    m = cache.match([1, 1, 1, 1, 2, 2, 2, 9])  # diverges inside the second page
    assert m.num_tokens == 4 and m.block_ids == ta[:1]
    cache.release(m.handle)
    pool.free(m.block_ids)
    cache.check_integrity()


def test_duplicate_insert_keeps_cached_pages() -> None:
    pool = ListBlockPool(16, BS)
    cache = RadixCache(pool)
    toks = list(range(8))
    first = pool.allocate(2)
    cache.insert(toks, first)
    dup = pool.allocate(2)
    cache.insert(toks, dup)
    assert cache.cached_block_ids() == first or sorted(cache.cached_block_ids()) == sorted(first)
    assert [pool.ref_count(b) for b in dup] == [1, 1]  # the cache took no reference
    pool.free(dup)
    pool.free(first)
    assert pool.num_free == 14
    cache.check_integrity()


def test_locked_path_survives_eviction_and_release_unlocks() -> None:
    pool = ListBlockPool(16, BS)
    cache = RadixCache(pool)
    toks = list(range(8))
    run_sequence(pool, cache, toks)
    m = cache.match(toks)
    pool.free(m.block_ids)  # the caller drops its pages but keeps the lock
    assert cache.evict(10) == 0
    assert cache.cached_blocks == 2
    cache.release(m.handle)
    assert cache.evict(10) == 2
    assert pool.num_free == 16
    cache.check_integrity()


def test_release_twice_is_an_error() -> None:
    pool = ListBlockPool(4, BS)
    cache = RadixCache(pool)
    m = cache.match([1, 2, 3, 4])
    cache.release(m.handle)
    with pytest.raises(ValueError):
        cache.release(m.handle)
    with pytest.raises(ValueError):
        cache.release(object())


def test_evict_skips_pages_still_in_use_and_is_lru() -> None:
    pool = ListBlockPool(16, BS)
    clock = Clock()
    cache = RadixCache(pool, clock=clock)
    old = [5] * 8
    new = [6] * 8
    run_sequence(pool, cache, old)
    clock.t += 1
    run_sequence(pool, cache, new)
    assert cache.evict(2) == 2
    assert cache.match(new).num_tokens == 8  # the older one went first
    busy = pool.allocate(1)
    pool.data[busy[0]] = [7] * 4
    cache.insert([7] * 4, busy)  # a running sequence still holds this page
    freed = cache.evict(100)
    assert pool.ref_count(busy[0]) == 2  # kept: dropping it would free nothing
    assert freed == 0  # the matched path above is locked
    cache.check_integrity()


def test_capacity_bounds_cached_pages() -> None:
    pool = ListBlockPool(32, BS)
    clock = Clock()
    cache = RadixCache(pool, capacity_blocks=4, clock=clock)
    for v in range(5):
        clock.t += 1
        run_sequence(pool, cache, [v] * 8)
        assert cache.cached_blocks <= 4
    m = cache.match([4] * 8)
    assert m.num_tokens == 8  # the newest survived
    cache.release(m.handle)
    pool.free(m.block_ids)
    cache.check_integrity()


def test_ttl_drops_unlocked_old_nodes_only() -> None:
    pool = ListBlockPool(16, BS)
    clock = Clock()
    cache = RadixCache(pool, ttl_s=100.0, clock=clock)
    run_sequence(pool, cache, [1] * 8)
    run_sequence(pool, cache, [2] * 8)
    held = cache.match([2] * 8)
    clock.t += 101
    assert cache.expire() == 2  # [1]*8 expired and freed; [2]*8 is locked
    assert cache.match([1] * 8).num_tokens == 0
    cache.release(held.handle)
    pool.free(held.block_ids)
    clock.t += 101
    cache.expire()
    assert cache.cached_blocks == 0
    assert pool.num_free == 16


def test_rejects_too_few_tokens_and_bad_config() -> None:
    pool = ListBlockPool(4, BS)
    cache = RadixCache(pool)
    with pytest.raises(ValueError):
        cache.insert([1, 2, 3], [0])
    with pytest.raises(ValueError):
        RadixCache(pool, ttl_s=0)
    with pytest.raises(ValueError):
        RadixCache(pool, capacity_blocks=-1)


def test_pin_keeps_pages_resident_without_references() -> None:
    pool = ListBlockPool(16, BS)
    clock = Clock()
    cache = RadixCache(pool, ttl_s=10.0, clock=clock)
    toks = list(range(8))
    run_sequence(pool, cache, toks)
    assert cache.pin([50, 51, 52, 53]) is None
    handle = cache.pin(toks + [1, 2])
    assert handle is not None
    assert [pool.ref_count(b) for b in cache.cached_block_ids()] == [1, 1]  # no new references
    assert cache.queries_tokens == 8  # pins are not queries
    clock.t += 100
    assert cache.expire() == 0 and cache.evict(10) == 0  # locked: neither expires nor evicts
    cache.check_integrity()
    cache.release(handle)
    assert cache.evict(10) == 2


def test_subgraph_cache_releases_pinned_kv_when_its_entry_goes() -> None:
    from agentic_llm.cache.subgraph import SubgraphCache
    from tests.cache.helpers import hotel_text, make_plan

    pool = ListBlockPool(16, BS)
    radix = RadixCache(pool)
    toks = list(range(8))
    run_sequence(pool, radix, toks)
    p = make_plan()
    sg = SubgraphCache(engine_version=p.engine_version, release_kv=radix.release)
    sg.register_plan(p, hotel_text(), kv_tokens=8, kv_handle=radix.pin(toks))
    found = sg.lookup_plan(p)
    assert found.kv_hint is not None and found.kv_hint.handle is not None
    assert radix.stats().locked_handles == 1
    assert sg.invalidate_path("/dynamic") == 1
    assert radix.stats().locked_handles == 0
    radix.check_integrity()
