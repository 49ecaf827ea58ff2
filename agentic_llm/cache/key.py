"""What identifies a cached subgraph.

A key has a *group* part (tenant, engine version, path, structure, signatures and the
generation settings) and a *value* part (the hash of the context values). Two
requests in the same group with the same values are an exact match; the same group
with other values is a fuzzy candidate. Store keys are fixed-length hex so they fit
every store's key limits and sort by tenant, then engine version, then group:

    sg:<tenant 16>:<engine 8>:<group 32>:<values 32>
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentic_llm.planner import ExecutionPlan

__all__ = ["SubgraphKey", "digest", "KEY_PREFIX"]

KEY_PREFIX = "sg:"


@lru_cache(maxsize=1024)
def _short(text: str, size: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def _tenant_prefix(tenant: str) -> str:
    return f"{KEY_PREFIX}{_short(json.dumps(tenant), 16)}:"


def digest(obj: Any, size: int = 32) -> str:
    """Hex digest of ``obj`` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:size]


@dataclass(frozen=True)
class SubgraphKey:
    """The parts of a subgraph-cache key.

    Attributes:
        path: the target node path (``/dynamic/plan_1``).
        structure_hash: variable names and types, goal template, node types, budget.
        signature_hash: tool schemas, library signatures, target signature.
        engine_version: model, tokenizer and grammar version; a change invalidates all.
        value_hash: the context values (exact vs fuzzy).
        tenant: isolation domain; tenants never see each other's entries.
        variant_hash: generation settings that change the prompt or the sampler but
            are not structure (max_tokens, sampling parameters, namespaces, and the
            ``/lib`` versions the library registry resolved for the plan).
    """

    path: str
    structure_hash: str
    signature_hash: str
    engine_version: str
    value_hash: str
    tenant: str = ""
    variant_hash: str = ""

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"a subgraph-cache key needs an absolute node path, got {self.path!r}")
        if not self.engine_version:
            raise ValueError("a subgraph-cache key needs a non-empty engine_version")

    @classmethod
    def from_parts(cls, cache_key: Any, *, tenant: str = "", variant_hash: str = "") -> SubgraphKey:
        """From anything with the planner's CacheKey fields (path, structure_hash,
        value_hash, signature_hash, engine_version)."""
        return cls(
            path=cache_key.path,
            structure_hash=cache_key.structure_hash,
            signature_hash=cache_key.signature_hash,
            engine_version=cache_key.engine_version,
            value_hash=cache_key.value_hash,
            tenant=tenant,
            variant_hash=variant_hash,
        )

    @classmethod
    def from_plan(cls, plan: ExecutionPlan) -> SubgraphKey:
        """The key of a plan: its ``cache_key``, its tenant, and the generation settings
        the planner's structure hash leaves out."""
        req = plan.request
        parts: dict[str, Any] = {
            "max_tokens": plan.max_tokens,
            "sampling": req.sampling.to_json(),
            "namespaces": sorted(req.namespaces),
            "externals": sorted(plan.external_targets),
        }
        # The library versions the registry resolved (absent: keys as before).
        resolved = getattr(plan, "library_versions", ())
        if resolved:
            parts["library_versions"] = sorted([p, v] for p, v in resolved)
        variant = digest(parts)
        return cls.from_parts(plan.cache_key, tenant=req.tenant, variant_hash=variant)

    # -- store key layout -------------------------------------------------------

    @staticmethod
    def tenant_prefix(tenant: str) -> str:
        """Store-key prefix of every entry of ``tenant``."""
        return _tenant_prefix(tenant)

    def engine_prefix(self) -> str:
        return f"{_tenant_prefix(self.tenant)}{_short(self.engine_version, 8)}:"

    def group_prefix(self) -> str:
        """Store-key prefix shared by every entry a fuzzy hit may come from."""
        return self._group_prefix

    def store_key(self) -> str:
        return self._store_key

    # computed once per key: lookups ask for them several times
    @cached_property
    def _group_prefix(self) -> str:
        group = digest([self.path, self.structure_hash, self.signature_hash, self.variant_hash])
        return f"{self.engine_prefix()}{group}:"

    @cached_property
    def _store_key(self) -> str:
        return f"{self._group_prefix}{digest(self.value_hash)}"

    def to_json(self) -> dict[str, str]:
        return {
            "path": self.path, "structure_hash": self.structure_hash,
            "signature_hash": self.signature_hash, "engine_version": self.engine_version,
            "value_hash": self.value_hash, "tenant": self.tenant, "variant_hash": self.variant_hash,
        }

    @classmethod
    def from_json(cls, obj: dict[str, str]) -> SubgraphKey:
        return cls(**obj)
