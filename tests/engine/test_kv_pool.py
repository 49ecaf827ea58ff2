"""The paged KV block pool: reference counts, copy-on-write, integrity."""

from __future__ import annotations

import pytest
import torch

from agentic_llm.engine.kv import BlockPool, OutOfBlocks, PagedKVPool, bytes_per_block


def pool(n: int = 8, **kw: object) -> PagedKVPool:
    return PagedKVPool(n, 4, 3, 2, 8, **kw)  # type: ignore[arg-type]


def test_allocate_free_refcounts() -> None:
    p = pool()
    assert isinstance(p, BlockPool) and p.num_free == 8
    a = p.allocate(3)
    assert len(set(a)) == 3 and p.num_free == 5 and all(p.ref_count(b) == 1 for b in a)
    p.incref(a[:2])
    assert p.stats().shared_blocks == 2 and p.stats().used_blocks == 3
    p.free(a)
    assert p.num_free == 6 and p.ref_count(a[2]) == 0 and p.ref_count(a[0]) == 1
    p.free(a[:2])
    assert p.num_free == 8
    p.check_integrity()


def test_out_of_blocks_takes_nothing() -> None:
    p = pool(4)
    p.allocate(3)
    with pytest.raises(OutOfBlocks) as exc:
        p.allocate(2)
    assert exc.value.wanted == 2 and exc.value.free == 1 and p.num_free == 1
    p.check_integrity()


def test_misuse_is_refused() -> None:
    p = pool()
    (b,) = p.allocate(1)
    p.free([b])
    with pytest.raises(ValueError):
        p.free([b])
    with pytest.raises(ValueError):
        p.incref([b])
    with pytest.raises(ValueError):
        p.copy_on_write(b)
    with pytest.raises(ValueError):
        PagedKVPool(0, 4, 1, 1, 8)


def test_copy_on_write() -> None:
    p = pool()
    (b,) = p.allocate(1)
    assert p.copy_on_write(b) == b  # sole holder writes in place
    p.k_cache[:, b].normal_()
    p.v_cache[:, b].normal_()
    p.incref([b])
    c = p.copy_on_write(b)
    assert c != b and p.ref_count(b) == 1 and p.ref_count(c) == 1
    assert torch.equal(p.k_cache[:, c], p.k_cache[:, b]) and torch.equal(p.v_cache[:, c], p.v_cache[:, b])
    p.k_cache[1, c].zero_()
    assert p.k_cache[1, b].abs().sum() > 0  # the copy is independent
    p.check_integrity()


def test_cow_needs_a_free_block() -> None:
    p = pool(1)
    (b,) = p.allocate(1)
    p.incref([b])
    with pytest.raises(OutOfBlocks):
        p.copy_on_write(b)
    assert p.ref_count(b) == 2


def test_sized_from_memory_budget() -> None:
    per = bytes_per_block(3, 4, 2, 8, torch.float32)
    assert per == 2 * 3 * 4 * 2 * 8 * 4
    p = PagedKVPool.from_memory_budget(per * 10 + 5, 4, 3, 2, 8)
    assert p.num_blocks == 10
    half = PagedKVPool.from_memory_budget(per * 10, 4, 3, 2, 8, dtype=torch.float16)
    assert half.num_blocks == 20 and half.k_cache.dtype == torch.float16


def test_shuffled_free_list_scatters() -> None:
    p = pool(32, shuffle_seed=3)
    got = p.allocate(8)
    assert got != list(range(8)) and sorted(set(got)) == sorted(got)


def test_write_and_gather_through_tables() -> None:
    p = pool(6)
    table = [4, 1]
    k = torch.randn(6, 2, 8)
    v = torch.randn(6, 2, 8)
    slots = torch.tensor([table[t // 4] * 4 + t % 4 for t in range(6)])
    p.write(2, slots, k, v)
    kg, vg = p.gather(2, torch.tensor([table, [0, 4]]))  # [kv_heads, rows, slots, d]
    assert kg.shape == (2, 2, 8, 8)
    assert torch.equal(kg[:, 0, :6].transpose(0, 1), k) and torch.equal(vg[:, 0, :6].transpose(0, 1), v)
    assert torch.equal(kg[:, 1, 4:], kg[:, 0, :4])  # block 4 again, second in the table
    assert torch.equal(p.k_cache[2, 4, :, 1], k[1])  # block-first view


def test_integrity_catches_corruption() -> None:
    p = pool()
    a = p.allocate(2)
    p._refs[a[0]] = 0  # simulate a lost reference
    with pytest.raises(AssertionError):
        p.check_integrity()
