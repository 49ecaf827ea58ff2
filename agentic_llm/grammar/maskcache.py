"""``MaskCache``: xgrammar token masks remembered by lexical class.

One cache per compiled grammar, shared by every matcher of that grammar (and so by
every request with the same node-type whitelist). Entries are keyed by
``lexclass.mask_key``; each holds xgrammar's packed mask row and a small memo of
what the matcher derives from the row (candidate token lists), so a position whose
class was seen before costs a dictionary lookup instead of a mask computation.

Reads and writes are plain dictionary operations, atomic under the GIL, so matchers
on different threads can share a cache; two threads missing the same key at once
both compute the same row, and either result is correct.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentic_llm.grammar.memo import DERIVED_MEMO_ENTRIES, BoundedMemo

__all__ = ["MaskCache", "MaskEntry"]


@dataclass(eq=False)
class MaskEntry:
    """xgrammar's mask row for one lexical class and what was derived from it."""

    row: np.ndarray
    #: keyed partly by slot texts, so bounded (oldest half dropped when full)
    memo: dict[Any, Any] = field(default_factory=lambda: BoundedMemo(DERIVED_MEMO_ENTRIES))


class MaskCache:
    """Bounded map from lexical class to ``MaskEntry``.

    Args:
        capacity: entries kept; past it the oldest half is dropped (a row is
            ``vocab_size / 8`` bytes, about 19 KB for a 151k vocabulary).
    """

    def __init__(self, capacity: int = 4096) -> None:
        if capacity < 2:
            raise ValueError("MaskCache capacity must be at least 2")
        self.capacity = capacity
        self._entries: dict[Any, MaskEntry] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Any) -> MaskEntry | None:
        e = self._entries.get(key)
        if e is None:
            self.misses += 1
        else:
            self.hits += 1
        return e

    def put(self, key: Any, row: np.ndarray) -> MaskEntry:
        if len(self._entries) >= self.capacity:
            # insertion order: drop the older half
            for k in list(self._entries)[: self.capacity // 2]:
                self._entries.pop(k, None)
        e = MaskEntry(row)
        self._entries[key] = e
        return e

    def clear(self) -> None:
        self._entries.clear()
        self.hits = self.misses = 0
