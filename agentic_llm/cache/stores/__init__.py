"""Stores behind the subgraph cache, chosen by name through the registry.

    from agentic_llm.cache.stores import StoreConfig, open_store
    store = open_store(StoreConfig(kind="lmdb", path=Path("/var/cache/agentic")))
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from agentic_llm import registry
from agentic_llm.cache.stores.base import CacheStore, StoreConfig, StoreKind

__all__ = ["CacheStore", "StoreConfig", "StoreKind", "open_store", "store_config"]

# The built-in stores (memory, lmdb, redis) are declared by the plugin kernel; a
# package adds one with an ``agentic_llm.plugins`` entry point ``cache_store.<name>``
# pointing at a CacheStore subclass with ``from_config(StoreConfig)``.


def open_store(config: StoreConfig, *, role: str = "", fallback: bool = False,
               selected_by: str = "") -> CacheStore:
    """Build the store ``config.kind`` names (its module is imported on first use).

    ``fallback``: when the store fails to load or to start, log why and serve with
    the kind's default (lmdb, when ``config.path`` is set) or fallback (memory); the
    plugin kernel records which one serves under ``role``.

    Raises:
        AgenticError: ERR_INVALID_CONFIG for an unknown kind or bad options,
            ERR_RESOURCE_UNAVAILABLE when its package (lmdb, redis) is not installed,
            ERR_CACHE_STORE when it cannot be opened (without ``fallback``, or when
            no candidate could start).
    """

    def start(cls: Any, options: dict[str, Any]) -> CacheStore:
        store: CacheStore = cls.from_config(replace(config, options=options))
        return store

    act = registry.activate("cache_store", config.kind, config.options, start=start, role=role,
                            fallback=fallback, selected_by=selected_by)
    opened: CacheStore = act.instance
    return opened


def store_config(kind: str, path: str, redis_url: str, options: Any, *,
                 namespace: str = "agentic:sg:") -> StoreConfig:
    """The ``StoreConfig`` of a profile section's store settings (``cache`` or
    ``library``): the lmdb directory is created; any provider that can use a
    directory gets ``path``; ``namespace`` keeps the sections apart in one Redis."""
    lmdb_path = None
    if path:
        lmdb_path = Path(path).expanduser()
        if kind == "lmdb":
            lmdb_path.mkdir(parents=True, exist_ok=True)
    return StoreConfig(kind=kind, path=lmdb_path, url=redis_url or None, namespace=namespace,
                       options=dict(options or {}))
