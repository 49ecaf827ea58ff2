"""LMDB store: persistent across restarts, shared by the processes of one machine.

LMDB commits are atomic (copy-on-write B+tree, a meta page switched last), so a
process killed mid-write leaves the previous state. On top of that every record is a
checksummed frame: a record that fails its check is logged, deleted and reported as
absent, so nothing corrupt is ever served.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

import lmdb

from agentic_llm.cache.stores.base import CacheStore, StoreConfig, decode_key, key_file
from agentic_llm.cache.stores.record import CorruptRecord, ForgedRecord, frame, unframe
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.registry import register

__all__ = ["LmdbStore"]

log = logging.getLogger(__name__)


@register("cache_store", "lmdb")
class LmdbStore(CacheStore):
    """Checksummed records in an LMDB environment at ``path``.

    Args:
        path: directory of the environment (created when missing).
        map_size: maximum size of the database in bytes.
        sync: fsync each commit (durable across power loss, not only process death).
    """

    shared = True

    def __init__(self, path: str | Path, *, map_size: int = 1 << 30, sync: bool = True,
                 hmac_key: bytes | None = None) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._secret = hmac_key if hmac_key is not None else key_file(self.path / "hmac.key")
        try:
            self._env = lmdb.open(
                str(self.path), map_size=map_size, subdir=True, sync=sync, metasync=sync,
                max_dbs=0, lock=True, readahead=False,
            )
        except lmdb.Error as exc:
            raise AgenticError(
                ErrorCode.CACHE_STORE, f"cannot open the LMDB cache at {self.path}: {exc}"
            ) from exc
        # reader slots left behind by killed processes would pin old pages forever
        self._env.reader_check()
        self.corrupt_dropped = 0
        self.forged_dropped = 0
        self.bad_keys = 0

    @classmethod
    def from_config(cls, config: StoreConfig) -> LmdbStore:
        assert config.path is not None  # StoreConfig checked it
        return cls(config.path, map_size=config.map_size, sync=config.sync,
                   hmac_key=config.hmac_key)

    def get(self, key: str) -> bytes | None:
        k = key.encode()
        with self._env.begin(buffers=False) as txn:
            raw = txn.get(k)
        if raw is None:
            return None
        try:
            rec = unframe(raw, key=key, secret=self._secret)
        except CorruptRecord as exc:
            self.corrupt_dropped += 1  # every refused record; tag mismatches also below
            if isinstance(exc, ForgedRecord):
                self.forged_dropped += 1
            log.warning("dropping corrupt subgraph-cache record %r: %s", key, exc)
            self._delete_if_same(k, raw)
            return None
        if rec.expires_at is not None and rec.expires_at <= time.time():
            self._delete_if_same(k, raw)
            return None
        return rec.payload

    def _delete_if_same(self, k: bytes, raw: bytes) -> None:
        # another process may have rewritten the key since we read it
        with self._env.begin(write=True) as txn:
            if txn.get(k) == raw:
                txn.delete(k)

    def put(self, key: str, value: bytes, *, expires_at: float | None = None) -> None:
        try:
            with self._env.begin(write=True) as txn:
                txn.put(key.encode(), frame(value, expires_at, key=key, secret=self._secret))
        except lmdb.MapFullError as exc:
            raise AgenticError(
                ErrorCode.CACHE_STORE,
                f"the LMDB cache at {self.path} is full; raise map_size or lower the cache's max_bytes",
            ) from exc

    def delete(self, keys: Iterable[str]) -> int:
        n = 0
        with self._env.begin(write=True) as txn:
            for key in keys:
                n += bool(txn.delete(key.encode()))
        return n

    def keys(self, prefix: str = "") -> list[str]:
        p = prefix.encode()
        out: list[str] = []
        with self._env.begin() as txn:
            cur = txn.cursor()
            if not cur.set_range(p):
                return out
            for k in cur.iternext(keys=True, values=False):
                if not bytes(k).startswith(p):
                    break
                text = decode_key(bytes(k))
                if text is None:
                    self.bad_keys += 1
                    log.warning("skipping a subgraph-cache key that is not UTF-8: %r", bytes(k))
                    continue
                out.append(text)
        return out

    def integrity(self) -> dict[str, int]:
        return {"corrupt_dropped": self.corrupt_dropped, "forged_dropped": self.forged_dropped,
                "bad_keys": self.bad_keys}

    def verify_all(self) -> tuple[int, int]:
        """Check every record's frame; return (served, corrupt); corrupt ones are dropped."""
        before = self.corrupt_dropped
        good = sum(1 for key in self.keys() if self.get(key) is not None)
        return good, self.corrupt_dropped - before

    def close(self) -> None:
        self._env.close()

