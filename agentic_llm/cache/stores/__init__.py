"""Stores behind the subgraph cache, chosen by name through the registry.

    from agentic_llm.cache.stores import StoreConfig, open_store
    store = open_store(StoreConfig(kind="lmdb", path=Path("/var/cache/agentic")))
"""

from __future__ import annotations

from agentic_llm.cache.stores.base import CacheStore, StoreConfig, StoreKind
from agentic_llm.registry import declare, get

__all__ = ["CacheStore", "StoreConfig", "StoreKind", "open_store"]

declare("cache_store", "memory", "agentic_llm.cache.stores.memory")
declare("cache_store", "lmdb", "agentic_llm.cache.stores.lmdb_store")
declare("cache_store", "redis", "agentic_llm.cache.stores.redis_store")


def open_store(config: StoreConfig) -> CacheStore:
    """Build the store ``config.kind`` names (its module is imported on first use).

    Raises:
        AgenticError: ERR_INVALID_CONFIG for an unknown kind, ERR_RESOURCE_UNAVAILABLE
            when its package (lmdb, redis) is not installed, ERR_CACHE_STORE when it
            cannot be opened.
    """
    cls = get("cache_store", config.kind)
    store: CacheStore = cls.from_config(config)
    return store
