"""The library that learns: versioned ``/lib`` registry, A/B of versions, solved archive.

    from agentic_llm.library import open_library
    lib = open_library(LibraryConfig(store="memory"))
    lib.publish("/lib/x@v1", text, tenant="acme")
    lib.set_split("/lib/x", {1: 0.5, 2: 0.5})
    plan(req, library=LibraryResolver(lib))     # /lib/x pinned to v1 or v2

See docs/evolution.md for the whole cycle (serve -> report -> archive -> corpus).
"""

from __future__ import annotations

from agentic_llm.config import LibraryConfig
from agentic_llm.library.archive import SOLVED_PREFIX, SolvedArchive, SolvedEntry
from agentic_llm.library.records import LibraryDocument, PathEntry, VersionStats
from agentic_llm.library.registry import OutcomeReport, Promotion, SubgraphRegistry, VersionView
from agentic_llm.library.resolver import LibraryResolver, Resolution
from agentic_llm.library.versions import VersionRange, split_version

__all__ = [
    "LibraryConfig", "LibraryDocument", "PathEntry", "VersionStats", "SubgraphRegistry",
    "VersionView", "OutcomeReport", "Promotion", "SolvedArchive", "SolvedEntry",
    "SOLVED_PREFIX", "LibraryResolver", "Resolution", "VersionRange", "split_version",
    "open_library",
]


def open_library(config: LibraryConfig) -> SubgraphRegistry | None:
    """The registry a profile's ``library`` section asks for (None for ``store: none``).

    The store is any registered cache-store provider, opened like the subgraph cache's.

    Raises:
        AgenticError: ERR_INVALID_CONFIG / ERR_RESOURCE_UNAVAILABLE / ERR_CACHE_STORE
            when the store cannot be opened.
    """
    if config.store == "none":
        return None
    from agentic_llm.cache.stores import open_store, store_config

    cfg = store_config(config.store, config.path, config.redis_url, config.options,
                       namespace="agentic:lib:")
    return SubgraphRegistry(open_store(cfg, role="library", fallback=True,
                                            selected_by="library.store"), config)
