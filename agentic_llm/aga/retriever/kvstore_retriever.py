"""KVStoreRetriever: a larger knowledge base kept off the hot path, searched by cosine."""

from __future__ import annotations

from typing import Any

from agentic_llm.aga.retriever.base import BaseRetriever, RetrievalQuery, RetrievalResult
from agentic_llm.aga.store.kv_store import KVStore
from agentic_llm.registry import register

__all__ = ["KVStoreRetriever"]


@register("aga.retriever", "kvstore")
class KVStoreRetriever(BaseRetriever):
    """Search a backing :class:`KVStore` (e.g. thousands of facts on the CPU).

    Entries are found only in the namespaces of the row that asks, so a tenant never
    retrieves another tenant's knowledge.

    Args:
        store: the backing store; its keys must live in the plugin's routing space.
        min_score: results below this cosine similarity are dropped.
    """

    def __init__(self, store: KVStore, min_score: float = 0.3) -> None:
        self.store = store
        self.min_score = min_score
        self.calls = 0
        self.returned = 0

    def retrieve(self, query: RetrievalQuery) -> list[RetrievalResult]:
        self.calls += 1
        view = self.store.get_active()
        q = query.query.to(device=view.keys.device, dtype=view.keys.dtype)
        # Each query row searches only the namespaces its request may use.
        visible = self.store.visibility(tuple(tuple(ns) for ns in query.namespaces))
        scores = (q @ view.keys.T).masked_fill(~visible, -2.0)
        k = min(query.top_k, scores.shape[-1])
        top, idx = scores.topk(k, dim=-1)
        by_slot = {e.slot: e for e in self.store.entries()}
        best: dict[tuple[str, str], RetrievalResult] = {}
        for row_scores, row_idx in zip(top.tolist(), idx.tolist(), strict=True):
            for score, slot in zip(row_scores, row_idx, strict=True):
                entry = by_slot.get(slot)
                if entry is None or score < self.min_score:
                    continue
                key = (entry.namespace, entry.id)
                if key in best and best[key].score >= score:
                    continue
                best[key] = RetrievalResult(
                    entry.id, view.keys[slot].clone(), view.values[slot].clone(), float(score),
                    1.0, entry.namespace, dict(entry.metadata))
        out = sorted(best.values(), key=lambda r: -r.score)
        self.returned += len(out)
        return out

    def get_stats(self) -> dict[str, Any]:
        return {"type": "KVStoreRetriever", "calls": self.calls, "returned": self.returned,
                "size": len(self.store)}
