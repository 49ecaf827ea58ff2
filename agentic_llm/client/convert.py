"""Protobuf responses -> the typed results the SDK returns (same types as in-process)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.planner import GenerateRequest
from agentic_llm.serving.knowledge import KnowledgeRecord
from agentic_llm.serving.result import (
    AstBlockInfo,
    AstNodeInfo,
    BranchResult,
    CacheOutcome,
    DiagnosticInfo,
    NodeEvent,
    ServingResult,
    Timings,
    TokenCounts,
    TokenDelta,
)
from agentic_llm.wire import load, struct_to_dict

__all__ = [
    "request_to_proto",
    "fork_to_proto",
    "knowledge_entry_to_proto",
    "result_from_proto",
    "stream_item_from_proto",
    "branch_from_proto",
    "cache_stats_from_proto",
    "knowledge_from_proto",
    "health_from_proto",
    "struct_to_dict",
]

pb = load().pb2

_OUTCOMES = {
    pb.CACHE_OUTCOME_MISS: CacheOutcome.MISS,
    pb.CACHE_OUTCOME_EXACT: CacheOutcome.EXACT,
    pb.CACHE_OUTCOME_FUZZY: CacheOutcome.FUZZY,
    pb.CACHE_OUTCOME_PREFIX: CacheOutcome.PREFIX,
    pb.CACHE_OUTCOME_BYPASS: CacheOutcome.BYPASS,
}
_SEVERITIES = {pb.SEVERITY_ERROR: "error", pb.SEVERITY_WARNING: "warning", pb.SEVERITY_INFO: "info"}


def _node(msg: Any) -> AstNodeInfo:
    return AstNodeInfo(id=msg.id, type=msg.type, path=msg.path, next=tuple(msg.next),
                       fields=struct_to_dict(msg.fields))


def _parse(text: str) -> Any:
    if not text:
        return None
    from agentic_llm.dsl import DSLParseError, parse

    try:
        return parse(text)
    except DSLParseError:
        return None


def request_to_proto(req: GenerateRequest, *, stream_tokens: bool = False) -> Any:
    """A :class:`GenerateRequest` as a ``GenerateSubgraphRequest`` message."""
    msg = pb.GenerateSubgraphRequest(
        target_path=req.target_path, prompt=req.prompt, dag_id=req.dag_id or "",
        branch_id=req.branch_id or "", parent_path=req.parent_path or "",
        priority=req.priority, tenant=req.tenant, namespaces=list(req.namespaces),
        node_types=list(req.node_types or ()), signature=req.signature or "",
        stream_tokens=stream_tokens,
    )
    msg.context.available_vars.update(dict(req.context.available_vars))
    if req.context.values:
        msg.context.values.update(dict(req.context.values))
    if req.context.permissions is not None:
        msg.context.permissions.items.extend(req.context.permissions)
    for t in req.tools:
        tool = msg.tools.add(name=t.name, description=t.description, output=t.output or "")
        for a in t.arguments:
            tool.arguments.add(name=a.name, type=a.type, required=a.required,
                               description=a.description)
    for e in req.library:
        msg.library.add(path=e.path, signature=e.signature, description=e.description)
    b = req.budget
    msg.budget.max_nodes, msg.budget.max_tokens = b.max_nodes, b.max_tokens
    msg.budget.timeout_sec, msg.budget.max_depth = b.timeout_sec, b.max_depth
    s = req.sampling
    msg.sampling.temperature, msg.sampling.top_k, msg.sampling.top_p = s.temperature, s.top_k, s.top_p
    if s.seed is not None:
        msg.sampling.seed = s.seed
    msg.flags.cache_policy = pb.CACHE_POLICY_BYPASS if req.flags.bypass_cache else pb.CACHE_POLICY_USE
    msg.flags.diagnostics = req.flags.diagnostics
    return msg


def fork_to_proto(branches: Iterable[GenerateRequest], dag_id: str) -> Any:
    """The branches of one fork as a ``GenerateForkRequest`` message."""
    msg = pb.GenerateForkRequest(dag_id=dag_id)
    for b in branches:
        msg.branches.append(request_to_proto(b))
    return msg


def knowledge_entry_to_proto(*, namespace: str, key: str, text: str, tenant: str, id: str,
                             metadata: Mapping[str, str] | None, key_vector: Iterable[float],
                             value_vector: Iterable[float], reliability: float) -> Any:
    """A ``RegisterKnowledgeRequest`` message for one knowledge entry."""
    entry = pb.KnowledgeEntry(id=id, tenant=tenant, namespace=namespace, key=key, text=text,
                              metadata=dict(metadata or {}), key_vector=list(key_vector),
                              value_vector=list(value_vector), reliability=reliability)
    return pb.RegisterKnowledgeRequest(entry=entry)


def result_from_proto(msg: Any) -> ServingResult:
    """A ``GenerateSubgraphResponse`` as a :class:`ServingResult` (``document`` parsed)."""
    blocks = tuple(
        AstBlockInfo(path=b.path, kind=b.kind, entry=b.entry,
                     nodes=tuple(_node(n) for n in b.nodes), fields=struct_to_dict(b.fields))
        for b in msg.ast.blocks
    )
    diags = tuple(
        DiagnosticInfo(code=d.code, severity=_SEVERITIES.get(d.severity, "error"),
                       message=d.message, block=d.block, line=d.line or None)
        for d in msg.diagnostics
    )
    c, t = msg.counts, msg.timings
    return ServingResult(
        request_id=msg.request_id, target_path=msg.target_path, text=msg.text, blocks=blocks,
        document=_parse(msg.text), diagnostics=diags, valid=msg.valid,
        # An outcome this client does not know (a newer server) reads as a miss.
        cache=_OUTCOMES.get(msg.cache, CacheOutcome.MISS),
        counts=TokenCounts(c.prompt_tokens, c.cached_prompt_tokens, c.completion_tokens,
                           c.forced_tokens, c.node_count),
        timings=Timings(t.queue_ms, t.plan_ms, t.cache_ms, t.first_token_ms, t.generate_ms,
                        t.validate_ms, t.total_ms),
        finish_reason=msg.finish_reason, dag_id=msg.dag_id, branch_id=msg.branch_id,
        library_versions=tuple(sorted((k, int(v)) for k, v in msg.library_versions.items())),
        offered=tuple(msg.offered_library),
    )


def stream_item_from_proto(msg: Any) -> NodeEvent | TokenDelta | ServingResult | None:
    """One stream message as a node event, a token delta or the final result."""
    kind = msg.WhichOneof("event")
    if kind == "node":
        return NodeEvent(msg.node.index, _node(msg.node.node), msg.node.text, msg.node.elapsed_ms)
    if kind == "tokens":
        return TokenDelta(msg.tokens.text, tuple(msg.tokens.token_ids))
    if kind == "final":
        return result_from_proto(msg.final)
    return None


def branch_from_proto(msg: Any) -> BranchResult:
    """A ``GenerateForkResponse`` as a :class:`BranchResult`."""
    if msg.WhichOneof("result") == "response":
        return BranchResult(msg.index, msg.branch_id, result=result_from_proto(msg.response))
    e = msg.error
    try:
        code = ErrorCode(e.code)
    except ValueError:
        code = ErrorCode.INTERNAL
    return BranchResult(msg.index, msg.branch_id, error=AgenticError(code, e.message, **dict(e.details)))


def cache_stats_from_proto(msg: Any) -> dict[str, float]:
    """A ``CacheStatsResponse`` as the counters ``Engine.cache_stats`` returns."""
    out = {"entries": float(msg.subgraph_entries), "exact_hits": float(msg.exact_hits),
           "fuzzy_hits": float(msg.fuzzy_hits), "misses": float(msg.misses),
           "prefix_query_tokens": float(msg.prefix_query_tokens),
           "prefix_hit_tokens": float(msg.prefix_hit_tokens)}
    out.update(dict(msg.extra))
    return out


def knowledge_from_proto(msg: Any) -> list[KnowledgeRecord]:
    """A ``ListKnowledgeResponse`` as :class:`KnowledgeRecord` values."""
    return [KnowledgeRecord(e.id, e.tenant, e.namespace, e.key, e.text, dict(e.metadata))
            for e in msg.entries]


def health_from_proto(msg: Any) -> str:
    """A ``HealthCheckResponse`` as its status name (``SERVING``, ``NOT_SERVING``, ...)."""
    from grpc_health.v1 import health_pb2

    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(msg.status))
