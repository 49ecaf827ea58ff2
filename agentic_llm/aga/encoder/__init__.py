"""Turn text facts into (key, value) pairs with the host model itself."""

from agentic_llm.aga.encoder.knowledge_encoder import EncodedFact, KnowledgeEncoder

__all__ = ["KnowledgeEncoder", "EncodedFact"]
