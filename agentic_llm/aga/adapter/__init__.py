"""Attach targets: Hugging Face transformers models and the engine's decoder hooks."""

from agentic_llm.aga.adapter.base import LLMAdapter, resolve_layers, select_adapter
from agentic_llm.aga.adapter.engine import EngineAdapter
from agentic_llm.aga.adapter.huggingface import HuggingFaceAdapter

__all__ = ["LLMAdapter", "HuggingFaceAdapter", "EngineAdapter", "resolve_layers", "select_adapter"]
