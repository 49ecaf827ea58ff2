"""Knowledge administration (AGA) as the front ends use it: per-tenant namespaces.

A tenant's namespace ``ns`` is stored in the knowledge store as ``<tenant>/<ns>``
(``ns`` alone for the empty tenant; see ``agentic_llm.tenancy``), so one tenant can
neither list nor remove another tenant's entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["KnowledgeRecord", "KnowledgeAdmin"]


@dataclass(frozen=True)
class KnowledgeRecord:
    """One knowledge entry as the admin API shows it."""

    id: str
    tenant: str
    namespace: str
    key: str
    text: str
    metadata: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class KnowledgeAdmin(Protocol):
    """Register, remove and list knowledge entries of a tenant."""

    def register(self, *, tenant: str, namespace: str, key: str, text: str,
                 metadata: Mapping[str, str], entry_id: str | None,
                 key_vector: Sequence[float] = (), value_vector: Sequence[float] = (),
                 reliability: float = 1.0) -> str:
        """Store an entry (text to encode, or precomputed vectors); return its id."""
        ...

    def remove(self, *, tenant: str, namespace: str, entry_id: str) -> bool:
        """Remove an entry; False when it did not exist."""
        ...

    def list(self, *, tenant: str, namespace: str) -> list[KnowledgeRecord]:
        """The tenant's entries, of one namespace or (empty) all."""
        ...
