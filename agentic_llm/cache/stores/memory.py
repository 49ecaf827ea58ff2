"""In-process store: a dictionary, lost when the process exits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from agentic_llm.cache.stores.base import CacheStore, StoreConfig
from agentic_llm.registry import register

__all__ = ["MemoryStore"]


@register("cache_store", "memory")
class MemoryStore(CacheStore):
    """Records in a dictionary; expired records vanish on read."""

    shared = False

    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: StoreConfig) -> MemoryStore:
        return cls()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            value, exp = item
            if exp is not None and exp <= time.time():
                del self._data[key]
                return None
            return value

    def put(self, key: str, value: bytes, *, expires_at: float | None = None) -> None:
        with self._lock:
            self._data[key] = (bytes(value), expires_at)

    def delete(self, keys: Iterable[str]) -> int:
        with self._lock:
            return sum(1 for k in keys if self._data.pop(k, None) is not None)

    def keys(self, prefix: str = "") -> list[str]:
        with self._lock:
            return [k for k in self._data if k.startswith(prefix)]

    def close(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
