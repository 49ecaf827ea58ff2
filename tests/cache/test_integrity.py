"""Cache integrity: authenticated records, a hit only for its own key, path and group,
undecodable keys and malformed records skipped and counted (never fatal)."""

from __future__ import annotations

from pathlib import Path

import lmdb
import pytest

from agentic_llm.cache.key import SubgraphKey
from agentic_llm.cache.stores.lmdb_store import LmdbStore
from agentic_llm.cache.stores.memory import MemoryStore
from agentic_llm.cache.stores.record import ForgedRecord, frame, unframe
from agentic_llm.cache.subgraph import SubgraphCache
from tests.cache.helpers import hotel_text, make_plan

SECRET = b"0123456789abcdef0123456789abcdef"


def test_a_record_is_bound_to_its_key_and_secret() -> None:
    data = frame(b"payload", None, key="sg:a", secret=SECRET)
    assert unframe(data, key="sg:a", secret=SECRET).payload == b"payload"
    with pytest.raises(ForgedRecord):
        unframe(data, key="sg:b", secret=SECRET)  # moved
    with pytest.raises(ForgedRecord):
        unframe(data, key="sg:a", secret=b"another key of 32 bytes........")  # forged


def _lmdb_cache(path: Path) -> tuple[SubgraphCache, LmdbStore]:
    store = LmdbStore(path, map_size=1 << 24, hmac_key=SECRET)
    return SubgraphCache(store, engine_version=make_plan().engine_version), store


def test_forged_record_is_never_served(tmp_path: Path) -> None:
    cache, store = _lmdb_cache(tmp_path)
    p = make_plan(city="Lima", budget=50)
    entry = cache.register_plan(p, hotel_text("Lima", 50))
    assert entry is not None and cache.lookup_plan(p).kind == "exact"
    skey = SubgraphKey.from_plan(p).store_key()
    # an attacker with write access but without the key rewrites the record
    forged = entry.to_bytes().replace(b"Lima", b"Evil")
    with store._env.begin(write=True) as txn:  # raw bytes, past the store's API
        txn.put(skey.encode(), frame(forged, entry.expires_at, key=skey,
                                     secret=b"attacker guess, 32 bytes long..."))
    assert cache.lookup_plan(p).kind == "miss"
    assert store.forged_dropped == 1
    cache.close()


def test_another_paths_record_moved_into_this_group_is_not_served(tmp_path: Path) -> None:
    cache, store = _lmdb_cache(tmp_path)
    other = make_plan(city="Lima", budget=50, path="/dynamic/other")
    entry = cache.register_plan(other, hotel_text("Lima", 50, path="/dynamic/other"))
    assert entry is not None
    mine = make_plan(city="Oslo", budget=70, path="/dynamic/plan_1")
    # the genuine record of /dynamic/other, copied under a key of /dynamic/plan_1's group
    # (re-authenticated, as a writer holding the key but confused about keys would)
    target = SubgraphKey.from_plan(mine).group_prefix() + "0" * 32
    store.put(target, entry.to_bytes(), expires_at=entry.expires_at)
    found = cache.lookup_plan(mine)
    assert found.kind == "miss", found.text
    assert cache.stats().foreign == 1
    # and a frame copied byte for byte under another key fails its tag
    with store._env.begin(write=True) as txn:
        raw = txn.get(SubgraphKey.from_plan(other).store_key().encode())
        txn.put(target.encode(), raw)
    assert cache.lookup_plan(mine).kind == "miss"
    assert store.forged_dropped >= 1
    cache.close()


def test_memory_store_serves_a_record_only_under_its_own_key() -> None:
    store = MemoryStore()
    cache = SubgraphCache(store, engine_version=make_plan().engine_version)
    other = make_plan(city="Lima", budget=50, path="/dynamic/other")
    entry = cache.register_plan(other, hotel_text("Lima", 50, path="/dynamic/other"))
    assert entry is not None
    mine = make_plan(city="Lima", budget=50, path="/dynamic/plan_1")
    store.put(SubgraphKey.from_plan(mine).store_key(), entry.to_bytes())
    assert cache.lookup_plan(mine).kind == "miss"


def test_undecodable_keys_and_malformed_records_are_skipped_and_counted(tmp_path: Path) -> None:
    with lmdb.open(str(tmp_path), map_size=1 << 24) as env, env.begin(write=True) as txn:
        txn.put(b"sg:\xc9bad", b"whatever")
    cache, store = _lmdb_cache(tmp_path)  # opening indexes the store: must not raise
    p = make_plan()
    assert cache.register_plan(p, hotel_text()) is not None
    # a well-authenticated record that is not a cache entry
    bad_key = SubgraphKey.from_plan(make_plan(city="X")).store_key()
    store.put(bad_key, b'{"key": [1, 2], "text": 3}')
    assert cache.lookup_plan(make_plan(city="Oslo", budget=70)).kind in ("fuzzy", "miss")
    assert cache.lookup_plan(make_plan(city="X")).kind in ("fuzzy", "miss")
    assert cache.invalidate_path("/dynamic") >= 1
    assert cache.clear() >= 0
    stats = cache.stats()
    assert stats.bad_keys >= 1 and stats.malformed >= 1
    cache.close()
