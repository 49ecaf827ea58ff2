"""Attention backends, chosen by name through the registry."""

from agentic_llm import registry
from agentic_llm.engine.attention.base import BACKEND_KIND, AttentionBackend

registry.declare(BACKEND_KIND, "torch_sdpa", "agentic_llm.engine.attention.torch_sdpa")

__all__ = ["AttentionBackend", "BACKEND_KIND", "get_backend"]


def get_backend(name: str = "torch_sdpa") -> AttentionBackend:
    """An instance of the attention backend registered as ``name``."""
    cls = registry.get(BACKEND_KIND, name)
    backend: AttentionBackend = cls()
    return backend
