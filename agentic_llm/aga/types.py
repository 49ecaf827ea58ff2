"""Plain data types shared by the plugin's parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

__all__ = ["KnowledgeEntry", "ActiveView", "DEFAULT_NAMESPACE", "SOURCE_REGISTERED",
           "SOURCE_RETRIEVED"]

#: Namespace of knowledge registered without one, and what a request without
#: namespaces may see.
DEFAULT_NAMESPACE = "default"
SOURCE_REGISTERED = "registered"
SOURCE_RETRIEVED = "retriever"


@dataclass
class KnowledgeEntry:
    """Host-side record of one occupied slot (the vectors live in the store's buffers)."""

    id: str
    namespace: str
    slot: int
    reliability: float
    pinned: bool
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (no tensors)."""
        return {
            "id": self.id, "namespace": self.namespace, "slot": self.slot,
            "reliability": self.reliability, "pinned": self.pinned, "source": self.source,
            "metadata": dict(self.metadata), "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class ActiveView(NamedTuple):
    """The store's buffers as the hot path reads them (fixed shapes, masks for validity).

    keys: ``[max_slots, bottleneck_dim]`` unit-norm routing keys.
    values: ``[max_slots, hidden_dim]`` knowledge vectors (clipped, reliability-scaled).
    valid: ``[max_slots]`` bool, occupied slots.
    namespace_ids: ``[max_slots]`` long, index of each slot's namespace.
    usage: ``[max_slots + 1]`` long, step each slot was last routed to (last entry is a
        scratch cell that absorbs writes for unrouted tokens, keeping the update branch-free).
    clock: ``[1]`` long, the current step.
    version: bumps on every change.
    """

    keys: torch.Tensor
    values: torch.Tensor
    valid: torch.Tensor
    namespace_ids: torch.Tensor
    usage: torch.Tensor
    clock: torch.Tensor
    version: int
