"""The retriever protocol, built-in retrievers and slot governance."""

from agentic_llm.aga.retriever.base import BaseRetriever, RetrievalQuery, RetrievalResult
from agentic_llm.aga.retriever.governance import GovernedRetrieval, SlotGovernor
from agentic_llm.aga.retriever.kvstore_retriever import KVStoreRetriever
from agentic_llm.aga.retriever.null_retriever import NullRetriever

__all__ = ["BaseRetriever", "RetrievalQuery", "RetrievalResult", "NullRetriever",
           "KVStoreRetriever", "SlotGovernor", "GovernedRetrieval"]
