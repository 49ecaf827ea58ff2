"""What the pipeline needs from the subgraph cache, and how it gets one from config.

The cache itself (stores, keys, fuzzy rebinding) lives in ``agentic_llm.cache``; this
module only adapts it to the four calls the pipeline makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from agentic_llm.config import CacheConfig
from agentic_llm.observability import emit
from agentic_llm.serving.result import CacheOutcome

__all__ = ["CacheHit", "SubgraphStore", "SubgraphCacheAdapter", "open_subgraph_cache"]


@dataclass(frozen=True)
class CacheHit:
    """A cached subgraph for a plan: ``outcome`` is EXACT or FUZZY."""

    outcome: CacheOutcome
    text: str


@runtime_checkable
class SubgraphStore(Protocol):
    """The subgraph cache as the pipeline uses it."""

    def lookup(self, plan: Any) -> CacheHit | None:
        """A cached subgraph for ``plan`` (an ExecutionPlan), or None."""
        ...

    def insert(self, plan: Any, text: str) -> None:
        """Remember ``text`` (valid for ``plan``)."""
        ...

    def invalidate(self, *, path_prefix: str = "", tenant: str = "") -> int:
        """Drop entries under ``path_prefix`` and/or of ``tenant``; return how many."""
        ...

    def stats(self) -> dict[str, float]:
        """Counters: entries, exact_hits, fuzzy_hits, misses, ..."""
        ...


class SubgraphCacheAdapter:
    """:class:`SubgraphStore` over ``agentic_llm.cache.SubgraphCache``."""

    def __init__(self, cache: Any, *, store: str = "memory") -> None:
        self.cache = cache
        self.store = store

    def lookup(self, plan: Any) -> CacheHit | None:
        found = self.cache.lookup_plan(plan)
        if not found.hit or found.text is None:
            return None
        outcome = CacheOutcome.EXACT if found.kind == "exact" else CacheOutcome.FUZZY
        return CacheHit(outcome, found.text)

    def insert(self, plan: Any, text: str) -> None:
        self.cache.register_plan(plan, text)
        emit.subgraph_cache_insert(store=self.store)

    def invalidate(self, *, path_prefix: str = "", tenant: str = "") -> int:
        if path_prefix:
            return int(self.cache.invalidate_path(path_prefix, tenant=tenant or None))
        if tenant:
            return int(self.cache.invalidate_tenant(tenant))
        return int(self.cache.clear())

    def stats(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.cache.stats()._asdict().items()}

    def close(self) -> None:
        self.cache.close()


def store_config(kind: str, path: str, redis_url: str, options: Any, *,
                 namespace: str = "agentic:sg:") -> Any:
    """The ``StoreConfig`` of a profile's store settings (the lmdb directory is
    created; any provider that can use a directory gets ``path``)."""
    from agentic_llm.cache.stores import StoreConfig

    lmdb_path = None
    if path:
        lmdb_path = Path(path).expanduser()
        if kind == "lmdb":
            lmdb_path.mkdir(parents=True, exist_ok=True)
    return StoreConfig(kind=kind, path=lmdb_path, url=redis_url or None, namespace=namespace,
                       options=dict(options or {}))


def open_subgraph_cache(config: CacheConfig) -> SubgraphCacheAdapter | None:
    """The subgraph cache a server profile asks for (None for ``store: none``).

    Raises:
        AgenticError: ERR_CACHE_STORE / ERR_RESOURCE_UNAVAILABLE when the store
            cannot be opened.
    """
    if config.store == "none":
        return None
    import dataclasses

    from agentic_llm.cache.stores import open_store
    from agentic_llm.cache.subgraph import SubgraphCache, SubgraphCacheConfig
    from agentic_llm.planner.plan import ENGINE_VERSION

    store_cfg = dataclasses.replace(
        store_config(config.store, config.path, config.redis_url, config.options),
        hmac_key=config.resolve_hmac_key())
    cache = SubgraphCache(open_store(store_cfg, role="subgraph_cache", fallback=True,
                                     selected_by="cache.store"),
                          SubgraphCacheConfig(fuzzy=config.fuzzy, ttl_s=config.ttl_s),
                          engine_version=ENGINE_VERSION)
    return SubgraphCacheAdapter(cache, store=store_cfg.kind)
