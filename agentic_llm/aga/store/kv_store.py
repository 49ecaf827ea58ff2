"""KVStore: preallocated knowledge slots with LRU eviction, pinning and namespaces.

All vectors live in buffers allocated once on the model's device, so the injection
path reads fixed-shape tensors (a validity mask says which slots are occupied) and
stays compatible with CUDA graphs. Host-side bookkeeping (ids, namespaces, pins) sits
behind one re-entrant lock; writers fill a slot's vectors before marking it valid and
clear the mark before reusing it, so a concurrent forward never routes to a half
written slot.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from agentic_llm.aga.store.vectors import check_vector
from agentic_llm.aga.types import (
    DEFAULT_NAMESPACE,
    SOURCE_REGISTERED,
    ActiveView,
    KnowledgeEntry,
)
from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["KVStore"]


class KVStore:
    """Fixed-capacity slot store.

    Args:
        max_slots: number of slots, allocated up front.
        key_dim: width of routing keys (the bottleneck).
        value_dim: width of values (the model's hidden size).
        device / dtype: where and how values are kept (keys follow ``dtype`` too).
        value_norm_target: values longer than this are scaled down to it (None: no clip).
    """

    def __init__(
        self,
        max_slots: int,
        key_dim: int,
        value_dim: int,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        value_norm_target: float | None = None,
    ) -> None:
        if max_slots < 1 or key_dim < 1 or value_dim < 1:
            raise AgenticError(ErrorCode.INVALID_CONFIG,
                               "max_slots, key_dim and value_dim must be positive")
        self.max_slots = max_slots
        self.key_dim = key_dim
        self.value_dim = value_dim
        self.device = torch.device(device)
        self.dtype = dtype
        self.value_norm_target = value_norm_target
        self._keys = torch.zeros(max_slots, key_dim, device=self.device, dtype=dtype)
        self._values = torch.zeros(max_slots, value_dim, device=self.device, dtype=dtype)
        self._valid = torch.zeros(max_slots, device=self.device, dtype=torch.bool)
        self._ns_ids = torch.zeros(max_slots, device=self.device, dtype=torch.long)
        self._usage = torch.zeros(max_slots + 1, device=self.device, dtype=torch.long)
        self._clock = torch.zeros(1, device=self.device, dtype=torch.long)
        self._lock = threading.RLock()
        self._entries: dict[tuple[str, str], KnowledgeEntry] = {}
        self._by_slot: dict[int, KnowledgeEntry] = {}
        self._free: list[int] = list(range(max_slots - 1, -1, -1))
        self._ns_index: dict[str, int] = {}
        self._ns_counts: dict[str, int] = {}
        self._insert_order = 0
        self._order: dict[int, int] = {}
        self._version = 0
        self._active: ActiveView | None = None
        self._vis_cache: dict[tuple[tuple[str, ...], ...], torch.Tensor] = {}
        self.evictions = 0

    # -- host-side queries -------------------------------------------------------
    @property
    def version(self) -> int:
        """Bumped by every change; caches key on it."""
        return self._version

    def __len__(self) -> int:
        return len(self._entries)

    def count(self, namespace: str | None = None, source: str | None = None) -> int:
        """Occupied slots, optionally of one namespace and/or source."""
        with self._lock:
            return sum(1 for e in self._entries.values()
                       if (namespace is None or e.namespace == namespace)
                       and (source is None or e.source == source))

    @property
    def pinned_count(self) -> int:
        """Slots protected from eviction."""
        with self._lock:
            return sum(1 for e in self._entries.values() if e.pinned)

    @property
    def utilization(self) -> float:
        """Fraction of slots occupied."""
        return len(self._entries) / self.max_slots

    def memory_bytes(self) -> int:
        """Bytes held by the preallocated device buffers."""
        bufs = (self._keys, self._values, self._valid, self._ns_ids, self._usage, self._clock)
        return sum(b.numel() * b.element_size() for b in bufs)

    def namespaces(self) -> dict[str, int]:
        """Namespace -> number of occupied slots (namespaces with none are left out)."""
        with self._lock:
            return {ns: n for ns, n in self._ns_counts.items() if n > 0}

    def visible_count(self, namespaces: Iterable[str]) -> int:
        """Occupied slots in any of ``namespaces`` (host bookkeeping, no device sync)."""
        counts = self._ns_counts
        return sum(counts.get(ns, 0) for ns in set(namespaces))

    def get(self, id: str, namespace: str = DEFAULT_NAMESPACE) -> KnowledgeEntry | None:
        """The record of ``id`` in ``namespace``, or None."""
        with self._lock:
            return self._entries.get((namespace, id))

    def entries(self, namespace: str | None = None) -> list[KnowledgeEntry]:
        """Records, optionally of one namespace, in slot order."""
        with self._lock:
            return sorted((e for e in self._entries.values()
                           if namespace is None or e.namespace == namespace),
                          key=lambda e: e.slot)

    def vectors(self, id: str, namespace: str = DEFAULT_NAMESPACE) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies of the stored (key, value) of ``id``."""
        with self._lock:
            e = self._require(id, namespace)
            return self._keys[e.slot].clone(), self._values[e.slot].clone()

    # -- writes ------------------------------------------------------------------------
    def put(
        self,
        id: str,
        key: torch.Tensor,
        value: torch.Tensor,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        reliability: float = 1.0,
        pinned: bool = False,
        source: str = SOURCE_REGISTERED,
        metadata: Mapping[str, Any] | None = None,
    ) -> tuple[KnowledgeEntry, KnowledgeEntry | None]:
        """Insert or overwrite ``id``; returns (its record, the entry evicted for room).

        Raises:
            AgenticError: ERR_INVALID_REQUEST for bad ids, shapes or values;
                ERR_RESOURCE_UNAVAILABLE when every slot is pinned.
        """
        if not isinstance(id, str) or not id:
            raise AgenticError(ErrorCode.INVALID_REQUEST, "knowledge id must be a non-empty string")
        if not isinstance(namespace, str) or not namespace:
            raise AgenticError(ErrorCode.INVALID_REQUEST, "namespace must be a non-empty string")
        if not 0.0 <= float(reliability) <= 1.0:
            raise AgenticError(ErrorCode.INVALID_REQUEST,
                               f"reliability must be in [0, 1], got {reliability}")
        k = check_vector(key, self.key_dim, "key", self.device)
        v = check_vector(value, self.value_dim, "value", self.device)
        k = k / k.norm().clamp_min(1e-12)
        if self.value_norm_target is not None:
            v = v * (self.value_norm_target / v.norm().clamp_min(1e-12)).clamp(max=1.0)
        v = v * float(reliability)
        now = time.time()
        with self._lock:
            evicted = None
            entry = self._entries.get((namespace, id))
            if entry is None:
                if not self._free:
                    evicted = self._evict_one()
                slot = self._free.pop()
                entry = KnowledgeEntry(id, namespace, slot, float(reliability), pinned, source,
                                       dict(metadata or {}), now, now)
                self._entries[(namespace, id)] = entry
                self._by_slot[slot] = entry
                self._ns_counts[namespace] = self._ns_counts.get(namespace, 0) + 1
            else:
                entry.reliability, entry.pinned, entry.source = float(reliability), pinned, source
                entry.metadata = dict(metadata or entry.metadata)
                entry.updated_at = now
            slot = entry.slot
            self._valid[slot] = False
            self._keys[slot].copy_(k)
            self._values[slot].copy_(v)
            self._ns_ids[slot] = self._namespace_id(namespace)
            self._usage[slot].copy_(self._clock[0])
            self._insert_order += 1
            self._order[slot] = self._insert_order
            self._valid[slot] = True
            self._touch()
            return entry, evicted

    def remove(self, id: str, namespace: str = DEFAULT_NAMESPACE) -> KnowledgeEntry | None:
        """Free the slot of ``id``; returns its record, or None when absent."""
        with self._lock:
            entry = self._entries.get((namespace, id))
            if entry is None:
                return None
            self._release(entry)
            self._touch()
            return entry

    def clear(self, namespace: str | None = None) -> list[KnowledgeEntry]:
        """Free every slot (of one namespace); returns the removed records."""
        with self._lock:
            gone = [e for e in self._entries.values() if namespace is None or e.namespace == namespace]
            for e in gone:
                self._release(e)
            if gone:
                self._touch()
            return gone

    def set_pinned(self, id: str, namespace: str, pinned: bool) -> KnowledgeEntry:
        """Pin (protect from eviction) or unpin ``id``."""
        with self._lock:
            entry = self._require(id, namespace)
            entry.pinned = pinned
            entry.updated_at = time.time()
            self._touch()
            return entry

    def lru_order(self, source: str | None = None) -> list[KnowledgeEntry]:
        """Unpinned records, least recently used first (reads usage from the device)."""
        with self._lock:
            cands = [e for e in self._entries.values()
                     if not e.pinned and (source is None or e.source == source)]
            if not cands:
                return []
            usage = self._usage[: self.max_slots].tolist()
            return sorted(cands, key=lambda e: (usage[e.slot], self._order[e.slot]))

    def tick(self) -> None:
        """Advance the step clock (in place on the device, no sync)."""
        self._clock += 1

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> None:
        """Move the buffers (e.g. to the host model's device and dtype at attach time)."""
        device = torch.device(device)
        dtype = dtype or self.dtype
        with self._lock:
            if device == self.device and dtype == self.dtype:
                return
            self._keys = self._keys.to(device=device, dtype=dtype)
            self._values = self._values.to(device=device, dtype=dtype)
            self._valid = self._valid.to(device)
            self._ns_ids = self._ns_ids.to(device)
            self._usage = self._usage.to(device)
            self._clock = self._clock.to(device)
            self.device, self.dtype = device, dtype
            self._touch()

    # -- hot-path views --------------------------------------------------------------
    def get_active(self) -> ActiveView:
        """Cached view of the buffers; rebuilt only after a change."""
        view = self._active
        if view is None or view.version != self._version:
            view = ActiveView(self._keys, self._values, self._valid, self._ns_ids,
                              self._usage, self._clock, self._version)
            self._active = view
        return view

    def visibility(self, row_namespaces: tuple[tuple[str, ...], ...]) -> torch.Tensor:
        """``[rows, max_slots]`` bool: which occupied slots each row may route to."""
        cached = self._vis_cache.get(row_namespaces)
        if cached is not None:
            return cached
        with self._lock:
            n_ns = max(len(self._ns_index), 1)
            table = [[False] * n_ns for _ in row_namespaces]
            for r, names in enumerate(row_namespaces):
                for ns in names:
                    idx = self._ns_index.get(ns)
                    if idx is not None:
                        table[r][idx] = True
            allowed = torch.tensor(table, dtype=torch.bool).to(self.device, non_blocking=True)
            vis = allowed[:, self._ns_ids] & self._valid
            if len(self._vis_cache) > 256:
                self._vis_cache.clear()
            self._vis_cache[row_namespaces] = vis
            return vis

    # -- internals -----------------------------------------------------------------
    def _touch(self) -> None:
        self._version += 1
        self._vis_cache = {}

    def _namespace_id(self, namespace: str) -> int:
        idx = self._ns_index.get(namespace)
        if idx is None:
            idx = len(self._ns_index)
            self._ns_index[namespace] = idx
        return idx

    def _require(self, id: str, namespace: str) -> KnowledgeEntry:
        entry = self._entries.get((namespace, id))
        if entry is None:
            raise AgenticError(ErrorCode.UNRESOLVED_REFERENCE,
                               f"no knowledge {id!r} in namespace {namespace!r}")
        return entry

    def _release(self, entry: KnowledgeEntry) -> None:
        self._valid[entry.slot] = False
        self._values[entry.slot].zero_()
        self._keys[entry.slot].zero_()
        del self._entries[(entry.namespace, entry.id)]
        del self._by_slot[entry.slot]
        self._order.pop(entry.slot, None)
        self._ns_counts[entry.namespace] -= 1
        self._free.append(entry.slot)

    def _evict_one(self) -> KnowledgeEntry:
        order = self.lru_order()
        if not order:
            raise AgenticError(
                ErrorCode.RESOURCE_UNAVAILABLE,
                f"all {self.max_slots} knowledge slots are pinned; unpin or remove some, "
                "or raise max_slots",
            )
        victim = order[0]
        self._release(victim)
        self.evictions += 1
        return victim
