"""NullRetriever: the default; knowledge comes only from explicit registration."""

from __future__ import annotations

from agentic_llm.aga.retriever.base import BaseRetriever, RetrievalQuery, RetrievalResult
from agentic_llm.registry import register

__all__ = ["NullRetriever"]


@register("aga.retriever", "null")
class NullRetriever(BaseRetriever):
    """Returns nothing; the plugin skips the retrieval step entirely."""

    is_null = True

    def retrieve(self, query: RetrievalQuery) -> list[RetrievalResult]:
        return []
