"""What the subgraph registry stores: published documents, path entries, run statistics."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["Visibility", "LibraryDocument", "PathEntry", "VersionStats", "dumpb", "loadb"]

Visibility = Literal["public", "private", "tenants"]
VISIBILITIES: tuple[str, ...] = ("public", "private", "tenants")
Sticky = Literal["dag_id", "tenant"]
STICKY: tuple[str, ...] = ("dag_id", "tenant")


def dumpb(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def loadb(raw: bytes) -> Any:
    return json.loads(raw.decode())


@dataclass(frozen=True)
class LibraryDocument:
    """One published version of a ``/lib`` path.

    Attributes:
        path: the unversioned path (``/lib/math/add``).
        version: 1, 2, ...
        text: the AgenticDSL document (its block is at ``path``).
        signature: the block's signature, as text.
        visibility: ``public`` (every tenant), ``private`` (the publisher only) or
            ``tenants`` (the publisher and ``tenants``).
        tenants: who may read it when ``visibility`` is ``tenants``.
        publisher: the tenant that published it.
        created: publication time (Unix seconds).
        deprecated: still readable by version, never chosen by default or by a split.
        description: free text shown to the model beside the signature.
    """

    path: str
    version: int
    text: str
    signature: str
    visibility: str = "public"
    tenants: tuple[str, ...] = ()
    publisher: str = ""
    created: float = 0.0
    deprecated: bool = False
    description: str = ""

    @property
    def versioned_path(self) -> str:
        return f"{self.path}@v{self.version}"

    def visible_to(self, tenant: str) -> bool:
        if self.visibility == "public" or tenant == self.publisher:
            return True
        return self.visibility == "tenants" and tenant in self.tenants

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["tenants"] = list(self.tenants)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> LibraryDocument:
        return cls(**{**obj, "tenants": tuple(obj.get("tenants", ()))})


@dataclass(frozen=True)
class PathEntry:
    """The per-path settings: which version answers ``/lib/x`` and how traffic splits.

    ``weights`` maps version -> weight; empty means every request gets
    ``default_version``. ``sticky`` chooses what keeps a caller on one version:
    its ``dag_id`` (falling back to the tenant) or its tenant.
    """

    path: str
    default_version: int
    weights: dict[int, float] = field(default_factory=dict)
    sticky: str = "dag_id"
    owner: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "default_version": self.default_version,
                "weights": {str(k): v for k, v in self.weights.items()},
                "sticky": self.sticky, "owner": self.owner}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> PathEntry:
        return cls(path=obj["path"], default_version=int(obj["default_version"]),
                   weights={int(k): float(v) for k, v in obj.get("weights", {}).items()},
                   sticky=obj.get("sticky", "dag_id"), owner=obj.get("owner", ""))


@dataclass
class VersionStats:
    """Outcomes reported for runs that used one version."""

    runs: int = 0
    successes: int = 0
    latency_ms_sum: float = 0.0
    cost_sum: float = 0.0

    @property
    def success_rate(self) -> float:
        return self.successes / self.runs if self.runs else 0.0

    @property
    def mean_latency_ms(self) -> float:
        return self.latency_ms_sum / self.runs if self.runs else 0.0

    @property
    def mean_cost(self) -> float:
        return self.cost_sum / self.runs if self.runs else 0.0

    def add(self, success: bool, latency_ms: float, cost: float) -> None:
        self.runs += 1
        self.successes += int(success)
        self.latency_ms_sum += latency_ms
        self.cost_sum += cost

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> VersionStats:
        return cls(**obj)


def check_choice(value: str, choices: tuple[str, ...], name: str) -> str:
    if value not in choices:
        raise AgenticError(ErrorCode.INVALID_REQUEST, f"{name} must be one of {list(choices)}, got {value!r}",
                           field=name)
    return value
