"""What the pipeline needs from the subgraph cache, and how it gets one from config.

The cache itself (stores, keys, fuzzy rebinding) lives in ``agentic_llm.cache``; this
module only adapts it to the four calls the pipeline makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from agentic_llm.serving.result import CacheOutcome

__all__ = ["CacheHit", "SubgraphStore"]


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
