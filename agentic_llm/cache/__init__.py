"""Reuse at two levels: the radix prefix cache over KV pages and the subgraph cache.

    from agentic_llm.cache import RadixCache, SubgraphCache, StoreConfig, open_store

Names are imported on first use: the radix cache pulls in the engine's KV package
(torch), the subgraph cache the DSL, and a process that only opens a store needs
neither.
"""

from __future__ import annotations

import importlib
from typing import Any

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

_HOME = {
    "RadixCache": "radix", "RadixStats": "radix", "PrefixMatch": "radix", "DEFAULT_TTL_S": "radix",
    "SubgraphCache": "subgraph", "SubgraphCacheConfig": "config", "SubgraphCacheStats": "config",
    "SubgraphKey": "key", "CacheEntry": "entry", "Lookup": "entry", "KvHint": "entry",
    "CacheStore": "stores", "StoreConfig": "stores", "open_store": "stores",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'agentic_llm.cache' has no attribute {name!r}")
    return getattr(importlib.import_module(f"agentic_llm.cache.{module}"), name)
