"""What the serving pipeline hands back: typed results, node events and token deltas.

These are plain dataclasses shared by every front end: the gRPC servicer translates
them to protobuf messages, the SDK's in-process ``Engine`` returns them as they are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = [
    "CacheOutcome",
    "DiagnosticInfo",
    "AstNodeInfo",
    "AstBlockInfo",
    "TokenCounts",
    "Timings",
    "TimingsBuilder",
    "NodeEvent",
    "TokenDelta",
    "ServingResult",
    "BranchResult",
    "StreamItemT",
]


class CacheOutcome(StrEnum):
    """How the cache took part in answering a request."""

    MISS = "miss"      # generated, no prompt prefix reused
    EXACT = "exact"    # whole subgraph from the subgraph cache, no model call
    FUZZY = "fuzzy"    # cached subgraph with its variables rebound
    PREFIX = "prefix"  # generated, reusing KV pages of a cached prompt prefix
    BYPASS = "bypass"  # the request asked not to use the subgraph cache


@dataclass(frozen=True)
class DiagnosticInfo:
    """A validation finding: ERR_* code, severity name, message, block path, line."""

    code: str
    severity: str
    message: str
    block: str = ""
    line: int | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


@dataclass(frozen=True)
class AstNodeInfo:
    """One node of the AST as JSON-ready data.

    ``fields`` holds every field of the node besides ``id``, ``type`` and ``next``.
    """

    id: str
    type: str
    path: str
    next: tuple[str, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AstBlockInfo:
    """One block: ``kind`` is subgraph, node, meta or resources."""

    path: str
    kind: str
    entry: str = ""
    nodes: tuple[AstNodeInfo, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenCounts:
    """Prompt, cached prompt, completion and forced (jump-forward) tokens; node count."""

    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    forced_tokens: int = 0
    node_count: int = 0


@dataclass(frozen=True)
class Timings:
    """Milliseconds spent in each stage of the request."""

    queue_ms: float = 0.0
    plan_ms: float = 0.0
    cache_ms: float = 0.0
    first_token_ms: float = 0.0
    generate_ms: float = 0.0
    validate_ms: float = 0.0
    total_ms: float = 0.0


class TimingsBuilder:
    """Collects stage durations: ``mark(stage)`` closes the stage that just ran."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self._last = t0
        self.last_s = 0.0
        self._ms: dict[str, float] = {}

    def mark(self, stage: str, *, since_start: bool = False) -> None:
        now = time.perf_counter()
        base = self.t0 if since_start else self._last
        self.last_s = now - base
        self._ms[stage] = self._ms.get(stage, 0.0) + self.last_s * 1000.0
        if not since_start:  # a point in time (first token), not a stage boundary
            self._last = now

    def elapsed_s(self, stage: str) -> float:
        return self._ms.get(stage, 0.0) / 1000.0

    def build(self) -> Timings:
        ms = dict(self._ms)
        ms["total_ms"] = (time.perf_counter() - self.t0) * 1000.0
        return Timings(**{k: v for k, v in ms.items() if k in Timings.__dataclass_fields__})


@dataclass(frozen=True)
class NodeEvent:
    """A node of the subgraph being written, sent as soon as it is complete."""

    index: int
    node: AstNodeInfo
    text: str
    elapsed_ms: float


@dataclass(frozen=True)
class TokenDelta:
    """New text (and its token ids) since the previous delta."""

    text: str
    token_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class ServingResult:
    """The answer to one request.

    Attributes:
        request_id: the id the pipeline gave the request.
        target_path: where the subgraph lives.
        text: the AgenticDSL document.
        blocks: the document's AST as JSON-ready data.
        document: the parsed ``agentic_llm.dsl.Document`` (None when it did not parse).
        diagnostics: validation findings against the request's plan.
        valid: no error-severity diagnostic and the text parsed.
        cache: how the cache took part.
        counts: token and node counts.
        timings: per-stage milliseconds.
        finish_reason: ``stop``, ``length`` or ``cache``.
        budget_stop: ``max_tokens`` when the token budget stopped the model and the
            grammar's forced text closed the document, ``max_nodes`` when the node
            budget closed it, else "" (see ``agentic_llm.scheduler.budget``).
        library_versions: ``(path, version)`` the library registry pinned for the
            request's unversioned ``/lib`` entries (the versions a run reports on).
        offered: archived ``/lib/solved`` entries the request was offered.
    """

    request_id: str
    target_path: str
    text: str
    blocks: tuple[AstBlockInfo, ...]
    document: Any
    diagnostics: tuple[DiagnosticInfo, ...]
    valid: bool
    cache: CacheOutcome
    counts: TokenCounts
    timings: Timings
    finish_reason: str
    dag_id: str = ""
    branch_id: str = ""
    budget_stop: str = ""
    library_versions: tuple[tuple[str, int], ...] = ()
    offered: tuple[str, ...] = ()

    @property
    def nodes(self) -> tuple[AstNodeInfo, ...]:
        """Every node of every block, in order."""
        return tuple(n for b in self.blocks for n in b.nodes)

    @property
    def cache_hit(self) -> bool:
        """True when the subgraph cache answered (exact or fuzzy)."""
        return self.cache in (CacheOutcome.EXACT, CacheOutcome.FUZZY)


@dataclass(frozen=True)
class BranchResult:
    """One branch of a fork: its index, branch id, and a result or an error."""

    index: int
    branch_id: str
    result: ServingResult | None = None
    error: AgenticError | None = None

    def unwrap(self) -> ServingResult:
        """The result, or raise the branch's error."""
        if self.result is not None:
            return self.result
        raise self.error or AgenticError(ErrorCode.INTERNAL, "branch has neither result nor error")


#: What a stream yields: node events, token deltas, and finally the result.
StreamItemT = NodeEvent | TokenDelta | ServingResult
