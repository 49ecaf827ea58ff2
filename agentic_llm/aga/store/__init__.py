"""Knowledge slot storage."""

from agentic_llm.aga.store.kv_store import KVStore

__all__ = ["KVStore"]
