"""What a subgraph cache knows locally about its entries: sizes, use, groups, eviction order.

The store holds the records; this index holds the bookkeeping that ranks them, so a
hit never rewrites a record. With a shared store (Redis) each process ranks the
entries it has seen; the store's own expiry covers the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agentic_llm.cache.key import SubgraphKey

__all__ = ["EntryIndex", "EntryMeta"]


@dataclass
class EntryMeta:
    """Bookkeeping of one entry."""

    size: int
    last_used: float
    hits: int
    expires_at: float  # wall-clock time
    lib: bool  # a /lib/** path: kept longer
    group: str  # the key's group prefix (fuzzy candidates)


class EntryIndex:
    """Entries by store key, grouped for fuzzy lookups, ranked for eviction.

    Args:
        frequency_weight_s: eviction credit, in seconds of recency, per doubling of hits.
        lib_bonus_s: eviction credit of ``/lib/**`` entries.
    """

    def __init__(self, *, frequency_weight_s: float, lib_bonus_s: float) -> None:
        self.frequency_weight_s = frequency_weight_s
        self.lib_bonus_s = lib_bonus_s
        self._meta: dict[str, EntryMeta] = {}
        self._groups: dict[str, set[str]] = {}
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._meta)

    def __contains__(self, skey: object) -> bool:
        return skey in self._meta

    def get(self, skey: str) -> EntryMeta | None:
        return self._meta.get(skey)

    def members(self, group: str) -> list[str]:
        """Store keys of the entries of ``group``."""
        return list(self._groups.get(group, ()))

    def add(self, skey: str, key: SubgraphKey, size: int, now: float, expires_at: float) -> EntryMeta:
        """Track an entry (replacing what was tracked under ``skey``)."""
        self.remove(skey)
        group = key.group_prefix()
        lib = key.path == "/lib" or key.path.startswith("/lib/")
        meta = EntryMeta(size, now, 0, expires_at, lib, group)
        self._meta[skey] = meta
        self._groups.setdefault(group, set()).add(skey)
        self.bytes += size
        return meta

    def remove(self, skey: str) -> bool:
        """Stop tracking ``skey``; True when it was tracked."""
        meta = self._meta.pop(skey, None)
        if meta is None:
            return False
        self.bytes -= meta.size
        members = self._groups.get(meta.group)
        if members is not None:
            members.discard(skey)
            if not members:
                del self._groups[meta.group]
        return True

    def tenant_victims(self, tenant_prefix: str, limit: int, *, keep: str = "") -> list[str]:
        """Entries of one tenant (store keys under ``tenant_prefix``) past ``limit``,
        lowest-ranked first; ``keep`` is never chosen."""
        mine = [(k, m) for k, m in self._meta.items() if k.startswith(tenant_prefix)]
        excess = len(mine) - limit
        if excess <= 0:
            return []
        ranked = sorted((km for km in mine if km[0] != keep), key=lambda km: self.score(km[1]))
        return [k for k, _ in ranked[:excess]]

    def score(self, meta: EntryMeta) -> float:
        """Eviction rank: lowest goes first."""
        return (meta.last_used + self.frequency_weight_s * math.log2(1 + meta.hits)
                + (self.lib_bonus_s if meta.lib else 0.0))

    def victims(self, *, max_entries: int, max_bytes: int, wall: float, keep: str = "") -> list[str]:
        """Entries to drop so the index fits its limits: expired ones, then by score.

        Past a limit it evicts down to 10% below it, so that a full cache does not rank
        its entries on every insert; ``keep`` (the entry just added) is never chosen.
        """
        if len(self._meta) <= max_entries and self.bytes <= max_bytes:
            return []
        out = [k for k, m in self._meta.items() if m.expires_at <= wall and k != keep]
        n = len(self._meta) - len(out)
        b = self.bytes - sum(self._meta[k].size for k in out)
        if n <= max_entries and b <= max_bytes:
            return out
        target_n = max_entries - max_entries // 10
        target_b = max_bytes - max_bytes // 10
        doomed = set(out)
        for k, m in sorted(self._meta.items(), key=lambda km: self.score(km[1])):
            if n <= target_n and b <= target_b:
                break
            if k == keep or k in doomed:
                continue
            out.append(k)
            n -= 1
            b -= m.size
        return out
