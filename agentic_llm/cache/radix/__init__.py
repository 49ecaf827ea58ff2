"""Radix prefix cache over the KV pages of a block pool (see :mod:`.cache`)."""

from agentic_llm.cache.radix.cache import DEFAULT_TTL_S, RadixCache
from agentic_llm.cache.radix.node import PrefixMatch, RadixStats

__all__ = ["RadixCache", "RadixStats", "PrefixMatch", "DEFAULT_TTL_S"]
