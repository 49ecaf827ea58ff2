"""Paged KV cache: the block pool contract and its implementation."""

from agentic_llm.engine.kv.base import BlockPool, OutOfBlocks, PoolStats
from agentic_llm.engine.kv.pool import PagedKVPool, bytes_per_block

__all__ = ["BlockPool", "OutOfBlocks", "PoolStats", "PagedKVPool", "bytes_per_block"]
