"""Limits, switches and counters of the subgraph cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["SubgraphCacheConfig", "SubgraphCacheStats"]


@dataclass(frozen=True)
class SubgraphCacheConfig:
    """Limits and switches of a :class:`SubgraphCache`.

    Attributes:
        ttl_s: lifetime of an entry.
        max_entries: most entries this process keeps track of.
        max_bytes: most record bytes this process keeps track of.
        fuzzy: serve fuzzy hits (rebinding values).
        max_fuzzy_candidates: entries of the group tried per fuzzy lookup.
        frequency_weight_s: eviction credit per doubling of an entry's hits.
        lib_bonus_s: eviction credit of ``/lib/**`` entries.
    """

    ttl_s: float = 24 * 3600.0
    max_entries: int = 100_000
    max_bytes: int = 256 << 20
    fuzzy: bool = True
    max_fuzzy_candidates: int = 4
    frequency_weight_s: float = 600.0
    lib_bonus_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {self.ttl_s}")
        if self.max_entries < 1 or self.max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be at least 1")
        if self.max_fuzzy_candidates < 1:
            raise ValueError("max_fuzzy_candidates must be at least 1")


class SubgraphCacheStats(NamedTuple):
    entries: int
    bytes: int
    exact_hits: int
    fuzzy_hits: int
    misses: int
    stale: int  # stored answers refused because they no longer validate
    ambiguous: int  # fuzzy candidates that could not be rebound safely
    evictions: int
    invalidations: int
    malformed: int = 0  # records that did not decode (skipped and deleted)
    foreign: int = 0  # records stored under a key not their own (dropped)
    corrupt_dropped: int = 0  # frames refused by the store (bad structure or tag)
    forged_dropped: int = 0  # frames whose HMAC tag did not match (store)
    bad_keys: int = 0  # store keys that are not UTF-8 (skipped)
