"""Paged KV cache: the block pool contract and its implementation."""

from agentic_llm.engine.kv.base import BlockPool, OutOfBlocks

__all__ = ["BlockPool", "OutOfBlocks"]
