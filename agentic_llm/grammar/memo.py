"""``BoundedMemo``: a memo dictionary with a fixed entry budget.

The grammar layer memoizes per text (token prices of a closing text, the tokens
that prefix a slot text, a slot's prefix closure). Many of those texts name the
request's own target path, so under unique traffic every request adds entries
that are never read again. A memo that only grows is a slow leak in a server that
runs for days; one that is cleared whole when full drops its hot entries with the
cold ones and holds its largest size most of the time.

``BoundedMemo`` is a plain ``dict`` (reads cost what a dict read costs; the hot
path reads far more than it writes) whose ``__setitem__`` keeps at most
``capacity`` entries: inserting a new key into a full memo first drops the older
half, oldest first (insertion order). Writes and evictions from several threads
are safe under the GIL: two threads may evict the same key, and either may
recompute an entry the other just dropped; both results are equal.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

__all__ = ["BoundedMemo", "CLOSURE_MEMO_ENTRIES", "DERIVED_MEMO_ENTRIES", "TEXT_MEMO_ENTRIES"]

#: entries of a per-text memo (token prices, prefix tokens, "a token runs past"):
#: 0.1-0.3 KB each as measured, so at most 1-3 MB each; the texts every request
#: shares (field lines, the header, the END marker) number in the hundreds
TEXT_MEMO_ENTRIES = 8192
#: entries of the prefix-closure memo (two small arrays each, about 0.5 KB)
CLOSURE_MEMO_ENTRIES = 4096
#: candidate lists derived from one xgrammar mask row (some hold thousands of ids)
DERIVED_MEMO_ENTRIES = 1024


class BoundedMemo(dict):  # type: ignore[type-arg]
    """A ``dict`` that keeps at most ``capacity`` entries.

    Args:
        capacity: most entries; inserting past it drops the oldest half first.

    Raises:
        ValueError: when ``capacity`` is below 2.
    """

    __slots__ = ("capacity",)

    def __init__(self, capacity: int) -> None:
        super().__init__()
        if capacity < 2:
            raise ValueError(f"BoundedMemo capacity must be at least 2, got {capacity}")
        self.capacity = capacity

    def __setitem__(self, key: Any, value: Any) -> None:
        if len(self) >= self.capacity and key not in self:
            self.evict(len(self) - self.capacity // 2)
        dict.__setitem__(self, key, value)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        hit = self.get(key, _MISSING)
        if hit is _MISSING:
            self[key] = hit = default
        return hit

    def evict(self, n: int) -> None:
        """Drop the ``n`` oldest entries."""
        for k in list(islice(iter(self), max(n, 0))):
            self.pop(k, None)


_MISSING = object()
