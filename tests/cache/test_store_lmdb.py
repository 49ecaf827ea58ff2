"""LMDB store: records survive kill -9 mid-write and nothing corrupt is ever served."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import lmdb

from agentic_llm.cache.key import SubgraphKey
from agentic_llm.cache.stores import StoreConfig, open_store
from agentic_llm.cache.stores.lmdb_store import LmdbStore
from agentic_llm.cache.subgraph import SubgraphCache
from tests.cache.helpers import hotel_text, make_plan

REPO = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import hashlib, sys
    from agentic_llm.cache.stores.lmdb_store import LmdbStore
    store = LmdbStore(sys.argv[1], map_size=1 << 28)
    round_ = sys.argv[2]
    i = 0
    while True:
        key = f"r{round_}:{i:07d}"
        size = 64 + (i * 7919) % 60000   # some records span several pages
        seed = hashlib.sha256(key.encode()).digest()
        store.put(key, (seed * (size // 32 + 1))[:size])
        if i == 20:
            print("ready", flush=True)
        i += 1
    """
)


def expected_value(key: str) -> bytes:
    i = int(key.split(":")[1])
    size = 64 + (i * 7919) % 60000
    seed = hashlib.sha256(key.encode()).digest()
    return (seed * (size // 32 + 1))[:size]


def test_kill_9_during_writes_leaves_only_verified_records(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for round_ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(round_)],
            stdout=subprocess.PIPE, env=env,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.05 + 0.05 * round_)  # kill at different points of a write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = LmdbStore(tmp_path, map_size=1 << 28)
        keys = store.keys()
        assert len(keys) >= 21 * (round_ + 1)
        for key in keys:
            assert store.get(key) == expected_value(key), key
        assert store.corrupt_dropped == 0
        store.close()


def test_corrupt_record_is_dropped_not_served(tmp_path: Path) -> None:
    store = LmdbStore(tmp_path)
    store.put("good", b"payload-1")
    store.put("bad", b"payload-2")
    store.close()
    env = lmdb.open(str(tmp_path))
    with env.begin(write=True) as txn:
        raw = bytearray(txn.get(b"bad"))
        raw[-1] ^= 0x01  # one flipped bit in the payload
        txn.put(b"bad", bytes(raw))
        txn.put(b"torn", bytes(raw[:20]))
    env.close()
    store = LmdbStore(tmp_path)
    assert store.get("good") == b"payload-1"
    assert store.get("bad") is None
    assert store.get("torn") is None
    assert store.corrupt_dropped == 2
    assert sorted(store.keys()) == ["good"]  # corrupt records were removed
    store.close()


def test_subgraph_cache_persists_across_reopen_and_drops_other_versions(tmp_path: Path) -> None:
    p = make_plan()
    cfg = StoreConfig(kind="lmdb", path=tmp_path)
    cache = SubgraphCache(open_store(cfg), engine_version=p.engine_version)
    cache.register_plan(p, hotel_text())
    cache.close()
    reopened = SubgraphCache(open_store(cfg), engine_version=p.engine_version)
    assert reopened.stats().entries == 1
    assert reopened.lookup_plan(make_plan()).kind == "exact"
    reopened.close()
    upgraded = SubgraphCache(open_store(cfg), engine_version="next-model+g9")
    assert upgraded.stats().entries == 0
    assert upgraded.store.keys() == []
    key = SubgraphKey.from_plan(p)
    assert upgraded.lookup(key, values=p.request.context.values, policy=None).kind == "miss"
    upgraded.close()
