"""BaseRetriever: the protocol external knowledge sources implement.

When the model is uncertain the plugin asks the retriever for knowledge matching the
current tokens' queries; results go into the slot store under slot governance (see
``governance.py``). Retrievers are host-side code (vector databases, files), so a
retrieval costs one host sync per step; with the default ``NullRetriever`` the plugin
never calls out at all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["BaseRetriever", "RetrievalQuery", "RetrievalResult"]


@dataclass
class RetrievalQuery:
    """What the plugin knows when it asks for knowledge.

    Attributes:
        query: ``[R, bottleneck_dim]`` unit-norm query vector of each uncertain row's
            last token, in the routing space of the slot keys.
        hidden: ``[R, hidden_dim]`` the same tokens' attention outputs.
        uncertainty: ``[R]`` their Gate-1 uncertainty.
        namespaces: per row, the namespaces results may be stored in (the first one is used).
        layer: the hooked layer the query comes from.
        top_k: how many results per row are wanted.
    """

    query: torch.Tensor
    hidden: torch.Tensor
    uncertainty: torch.Tensor
    namespaces: list[tuple[str, ...]]
    layer: int
    top_k: int


@dataclass
class RetrievalResult:
    """One piece of knowledge to inject: a routing key, a value and a score."""

    id: str
    key: torch.Tensor
    value: torch.Tensor
    score: float = 1.0
    reliability: float = 1.0
    namespace: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class BaseRetriever(ABC):
    """Implement ``retrieve``; the rest has defaults."""

    #: a retriever that never returns anything can say so and skip the call entirely
    is_null: bool = False

    @abstractmethod
    def retrieve(self, query: RetrievalQuery) -> list[RetrievalResult]:
        """Knowledge for ``query``, best first."""

    def get_stats(self) -> dict[str, Any]:
        """Counters for diagnostics."""
        return {"type": type(self).__name__}

    def on_injected(self, results: list[RetrievalResult]) -> None:  # noqa: B027 - optional hook
        """Called with the results that were actually written into slots."""
