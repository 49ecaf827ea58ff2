"""KVStore: preallocation, LRU eviction with pinning, namespaces, caching, thread safety."""

from __future__ import annotations

import threading

import pytest
import torch

from agentic_llm.aga import KVStore
from agentic_llm.errors import AgenticError, ErrorCode


def _store(slots: int = 4, **kw: object) -> KVStore:
    return KVStore(slots, 8, 16, **kw)  # type: ignore[arg-type]


def _kv(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, generator=g), torch.randn(16, generator=g)


def test_buffers_are_preallocated_and_memory_matches_the_seed_figure() -> None:
    store = KVStore(256, 64, 4096, dtype=torch.float16)
    # values dominate: 256 * 4096 * 2 bytes = 2 MiB; keys and masks add ~36 KiB
    assert 2.0 < store.memory_bytes() / 2**20 < 2.1
    before = store.get_active().values.data_ptr()
    store.put("a", torch.randn(64), torch.randn(4096))
    assert store.get_active().values.data_ptr() == before  # no reallocation on write


def test_lru_evicts_least_recently_routed_unpinned_slot() -> None:
    store = _store(3)
    for i, name in enumerate("abc"):
        store.put(name, *_kv(i))
        store.tick()
    store.set_pinned("a", "default", True)
    view = store.get_active()
    view.usage[store.get("b").slot] = view.clock + 5  # type: ignore[union-attr]  # b was routed recently
    _, evicted = store.put("d", *_kv(9))
    assert evicted is not None and evicted.id == "c"
    assert store.get("a") is not None and store.get("b") is not None
    assert store.evictions == 1


def test_all_pinned_refuses_with_a_clear_error() -> None:
    store = _store(2)
    store.put("a", *_kv(0), pinned=True)
    store.put("b", *_kv(1), pinned=True)
    with pytest.raises(AgenticError) as info:
        store.put("c", *_kv(2))
    assert info.value.code == ErrorCode.RESOURCE_UNAVAILABLE and "pinned" in info.value.message
    assert len(store) == 2


def test_bad_vectors_are_refused_without_side_effects() -> None:
    store = _store()
    store.put("ok", *_kv(0))
    version = store.version
    for key, value in ((torch.randn(7), torch.randn(16)), (torch.zeros(8), torch.randn(16)),
                       (torch.randn(8), torch.full((16,), float("nan")))):
        with pytest.raises(AgenticError):
            store.put("bad", key, value)
    with pytest.raises(AgenticError):
        store.put("", *_kv(1))
    assert store.version == version and len(store) == 1


def test_values_are_clipped_and_reliability_scaled_keys_normalized() -> None:
    store = _store(value_norm_target=2.0)
    store.put("a", torch.full((8,), 3.0), torch.full((16,), 10.0), reliability=0.5)
    k, v = store.vectors("a")
    assert torch.allclose(k.norm(), torch.tensor(1.0))
    assert torch.allclose(v.norm(), torch.tensor(1.0), atol=1e-5)  # clipped to 2, times 0.5


def test_get_active_is_cached_until_a_change() -> None:
    store = _store()
    v1 = store.get_active()
    assert store.get_active() is v1
    store.put("a", *_kv(0))
    v2 = store.get_active()
    assert v2 is not v1 and v2.version > v1.version
    assert bool(v2.valid[store.get("a").slot])  # type: ignore[union-attr]


def test_visibility_respects_namespaces() -> None:
    store = _store(4)
    store.put("a", *_kv(0), namespace="t1")
    store.put("b", *_kv(1), namespace="t2")
    vis = store.visibility((("t1",), ("t2",), ("t1", "t2"), ("nobody",)))
    sa, sb = store.get("a", "t1").slot, store.get("b", "t2").slot  # type: ignore[union-attr]
    assert vis[0, sa] and not vis[0, sb]
    assert vis[1, sb] and not vis[1, sa]
    assert vis[2, sa] and vis[2, sb]
    assert not vis[3].any()
    store.remove("a", "t1")
    assert not store.visibility((("t1",),))[0].any()


def test_concurrent_writers_keep_the_store_consistent() -> None:
    store = _store(64)
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for i in range(40):
                store.put(f"{t}-{i % 10}", *_kv(t * 100 + i), namespace=f"ns{t}")
                if i % 7 == 0:
                    store.remove(f"{t}-{(i + 3) % 10}", f"ns{t}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    entries = store.entries()
    slots = [e.slot for e in entries]
    assert len(slots) == len(set(slots)) == len(store)
    assert int(store.get_active().valid.sum()) == len(store)
    assert sum(store.namespaces().values()) == len(store)
