"""Reuse at two levels: the radix prefix cache over KV pages and the subgraph cache.

    from agentic_llm.cache import RadixCache, SubgraphCache, StoreConfig, open_store
"""

from agentic_llm.cache.entry import CacheEntry, KvHint, Lookup
from agentic_llm.cache.key import SubgraphKey
from agentic_llm.cache.radix import DEFAULT_TTL_S, PrefixMatch, RadixCache, RadixStats
from agentic_llm.cache.stores import CacheStore, StoreConfig, open_store

__all__ = [
    "RadixCache",
    "RadixStats",
    "PrefixMatch",
    "DEFAULT_TTL_S",
    "SubgraphCache",
    "SubgraphCacheConfig",
    "SubgraphCacheStats",
    "SubgraphKey",
    "CacheEntry",
    "Lookup",
    "KvHint",
    "CacheStore",
    "StoreConfig",
    "open_store",
]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # the subgraph cache pulls in the DSL; the engine only needs the radix cache
    if name in ("SubgraphCache", "SubgraphCacheConfig", "SubgraphCacheStats"):
        from agentic_llm.cache import subgraph

        return getattr(subgraph, name)
    raise AttributeError(name)
