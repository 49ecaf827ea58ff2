"""What the pipeline needs from the subgraph cache, and how it gets one from config.

The cache itself (stores, keys, fuzzy rebinding) lives in ``agentic_llm.cache``; this
module only adapts it to the four calls the pipeline makes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
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

    def _keyed(self, plan: Any) -> Any:
        """``plan`` with this cache's engine version (model included) in its cache key."""
        version = self.cache.engine_version
        if plan.cache_key.engine_version == version:
            return plan
        return replace(plan, cache_key=plan.cache_key._replace(engine_version=version),
                       engine_version=version)

    def lookup(self, plan: Any) -> CacheHit | None:
        t0 = time.perf_counter()
        found = self.cache.lookup_plan(self._keyed(plan))
        if not found.hit or found.text is None:
            emit.subgraph_cache_lookup("miss", store=self.store, duration_s=time.perf_counter() - t0)
            return None
        outcome = CacheOutcome.EXACT if found.kind == "exact" else CacheOutcome.FUZZY
        emit.subgraph_cache_lookup(outcome.value, store=self.store, duration_s=time.perf_counter() - t0)
        return CacheHit(outcome, found.text)

    def insert(self, plan: Any, text: str) -> None:
        self.cache.register_plan(self._keyed(plan), text)
        emit.subgraph_cache_insert(store=self.store)

    def invalidate(self, *, path_prefix: str = "", tenant: str = "") -> int:
        ok = False
        try:
            if path_prefix:
                n = int(self.cache.invalidate_path(path_prefix, tenant=tenant or None))
            elif tenant:
                n = int(self.cache.invalidate_tenant(tenant))
            else:
                n = int(self.cache.clear())
            ok = True
            return n
        finally:
            emit.audit("invalidate", ok, component="cache", actor=tenant or "admin",
                       target=path_prefix or "*")

    def stats(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.cache.stats()._asdict().items()}

    def close(self) -> None:
        self.cache.close()


def open_subgraph_cache(config: CacheConfig, engine_version: str = "") -> SubgraphCacheAdapter | None:
    """The subgraph cache a server profile asks for (None for ``store: none``).

    ``engine_version`` (``agentic_llm.engine.fingerprint.engine_version``: package,
    grammar and model) keys every entry; entries of another version are dropped when
    the store opens. Empty: the planner's version alone.

    Raises:
        AgenticError: ERR_CACHE_STORE / ERR_RESOURCE_UNAVAILABLE when the store
            cannot be opened.
    """
    if config.store == "none":
        return None
    import dataclasses

    from agentic_llm.cache.stores import open_store, store_config
    from agentic_llm.cache.subgraph import SubgraphCache, SubgraphCacheConfig
    from agentic_llm.planner.plan import ENGINE_VERSION

    store_cfg = dataclasses.replace(
        store_config(config.store, config.path, config.redis_url, config.options),
        hmac_key=config.resolve_hmac_key())
    cache = SubgraphCache(open_store(store_cfg, role="subgraph_cache", fallback=True,
                                     selected_by="cache.store"),
                          SubgraphCacheConfig(fuzzy=config.fuzzy, ttl_s=config.ttl_s),
                          engine_version=engine_version or ENGINE_VERSION)
    return SubgraphCacheAdapter(cache, store=store_cfg.kind)
