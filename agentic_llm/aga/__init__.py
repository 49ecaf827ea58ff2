"""AGA: entropy-gated knowledge injection into a frozen model's attention outputs.

The public surface follows the AGA plugin API: :class:`AGAPlugin` (attach, register,
namespaces, diagnostics, audit, streaming), :class:`AGAConfig`, :class:`KVStore`,
:class:`EntropyGateSystem`, :class:`BottleneckInjector`, :class:`PersistenceDecay`,
the retriever protocol, :class:`StreamingSession`, :class:`EventBus` (the project's
observability bus), :class:`ForwardMetrics` and :class:`AuditLog`. See docs/aga.md.
"""

from agentic_llm.aga.adapter import EngineAdapter, HuggingFaceAdapter, LLMAdapter
from agentic_llm.aga.config import AGAConfig
from agentic_llm.aga.encoder import EncodedFact, KnowledgeEncoder
from agentic_llm.aga.gate import EntropyGateSystem, PersistenceDecay
from agentic_llm.aga.instrumentation import AuditEntry, AuditLog, EventBus, ForwardMetrics
from agentic_llm.aga.operator import BottleneckInjector
from agentic_llm.aga.plugin import AGAPlugin
from agentic_llm.aga.retriever import (
    BaseRetriever,
    KVStoreRetriever,
    NullRetriever,
    RetrievalQuery,
    RetrievalResult,
    SlotGovernor,
)
from agentic_llm.aga.store import KVStore
from agentic_llm.aga.streaming import StreamingSession
from agentic_llm.aga.types import DEFAULT_NAMESPACE, KnowledgeEntry

__all__ = [
    "AGAPlugin", "AGAConfig", "KVStore", "EntropyGateSystem", "BottleneckInjector",
    "PersistenceDecay", "BaseRetriever", "NullRetriever", "KVStoreRetriever", "RetrievalQuery",
    "RetrievalResult", "SlotGovernor", "StreamingSession", "EventBus", "ForwardMetrics",
    "AuditLog", "AuditEntry", "KnowledgeEncoder", "EncodedFact", "KnowledgeEntry",
    "LLMAdapter", "HuggingFaceAdapter", "EngineAdapter", "DEFAULT_NAMESPACE",
]
