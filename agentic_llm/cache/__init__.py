"""Reuse at two levels: the radix prefix cache over KV pages and the subgraph cache."""

from agentic_llm.cache.radix import DEFAULT_TTL_S, PrefixMatch, RadixCache, RadixStats

__all__ = ["RadixCache", "RadixStats", "PrefixMatch", "DEFAULT_TTL_S"]
