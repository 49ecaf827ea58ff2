"""Model definitions run by the engine."""

from agentic_llm.engine.models.decoder import CausalLM

__all__ = ["CausalLM"]
