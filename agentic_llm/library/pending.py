"""Served requests awaiting their outcome report, kept in the serving process.

Used when the library store is not shared (LMDB, memory); with Redis the records live
in the store so any replica can take the report. Bounded: past ``cap`` records, or
once expired, the oldest are dropped first (one TTL for all, so expiry follows
insertion order). A record is kept as its JSON bytes, about a third of the memory
of the dict tree.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from agentic_llm.library.records import dumpb, loadb

__all__ = ["PendingOutcomes"]


class PendingOutcomes:
    def __init__(self, cap: int, ttl_sec: float) -> None:
        self.cap = cap
        self.ttl_sec = ttl_sec
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def ids(self) -> list[str]:
        """Request ids held, oldest first."""
        with self._lock:
            return list(self._items)

    def put(self, request_id: str, record: dict[str, Any]) -> None:
        now = time.time()
        with self._lock:
            items = self._items
            items[request_id] = (now + self.ttl_sec, dumpb(record))
            items.move_to_end(request_id)
            while items and (len(items) > self.cap or next(iter(items.values()))[0] <= now):
                items.popitem(last=False)

    def get(self, request_id: str) -> dict[str, Any] | None:
        item = self._items.get(request_id)
        if item is None or item[0] <= time.time():
            return None
        obj = loadb(item[1])
        return obj if isinstance(obj, dict) else None

    def pop(self, request_id: str) -> None:
        with self._lock:
            self._items.pop(request_id, None)
