"""Protobuf messages <-> the pipeline's request and result types.

Requests are turned into the request JSON and read with
``GenerateRequest.from_json``, so the gRPC front end, the CLI and the SDK accept and
refuse exactly the same things.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2

from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.planner import GenerateRequest
from agentic_llm.serving.result import (
    AstBlockInfo,
    AstNodeInfo,
    CacheOutcome,
    DiagnosticInfo,
    NodeEvent,
    ServingResult,
    TokenDelta,
)
from agentic_llm.wire import load, struct_to_dict

__all__ = [
    "request_from_proto",
    "result_to_proto",
    "node_event_to_proto",
    "token_delta_to_proto",
    "error_status_to_proto",
    "CACHE_OUTCOME_TO_PROTO",
    "SEVERITY_TO_PROTO",
]

pb = load().pb2

CACHE_OUTCOME_TO_PROTO: dict[CacheOutcome, int] = {
    CacheOutcome.MISS: pb.CACHE_OUTCOME_MISS,
    CacheOutcome.EXACT: pb.CACHE_OUTCOME_EXACT,
    CacheOutcome.FUZZY: pb.CACHE_OUTCOME_FUZZY,
    CacheOutcome.PREFIX: pb.CACHE_OUTCOME_PREFIX,
    CacheOutcome.BYPASS: pb.CACHE_OUTCOME_BYPASS,
}
SEVERITY_TO_PROTO: dict[str, int] = {
    "error": pb.SEVERITY_ERROR,
    "warning": pb.SEVERITY_WARNING,
    "info": pb.SEVERITY_INFO,
}
_VAR_TYPES = {bool: "boolean", int: "number", float: "number", str: "string",
              list: "array", dict: "object"}


def _bad(field: str, message: str) -> AgenticError:
    return AgenticError(ErrorCode.INVALID_REQUEST, f"{field}: {message}", field=field)


def _to_struct(data: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    if data:
        s.update(data)
    return s


def _values(struct: Any, field: str) -> dict[str, Any]:
    """A Struct as a dict; NaN and Infinity (not JSON) are refused, not crashed on."""
    try:
        return struct_to_dict(struct)
    except (ValueError, TypeError) as exc:
        raise _bad(field, f"must be plain JSON: NaN and Infinity are not allowed ({exc})") from None


def request_from_proto(msg: Any) -> GenerateRequest:
    """A ``GenerateSubgraphRequest`` message as a validated :class:`GenerateRequest`.

    Raises:
        AgenticError: ERR_INVALID_REQUEST naming the offending field (unknown enum
            values included).
    """
    if msg.prompt and msg.prompt_template:
        raise _bad("prompt", "set prompt or prompt_template, not both")
    values = _values(msg.context.values, "context.values") if msg.HasField("context") else {}
    avars = dict(msg.context.available_vars) if msg.HasField("context") else {}
    prompt = msg.prompt
    if msg.prompt_template:
        prompt = msg.prompt_template
        for name, value in _values(msg.variables, "variables").items():
            values[name] = value
            avars.setdefault(name, _VAR_TYPES.get(type(value), "string"))
    elif msg.HasField("variables") and msg.variables.fields:
        raise _bad("variables", "only meaningful with prompt_template")
    context: dict[str, Any] = {"available_vars": avars, "values": values}
    if msg.context.HasField("permissions"):
        context["permissions"] = list(msg.context.permissions.items)
    tools = []
    for t in msg.tools:
        args = []
        for a in t.arguments:
            arg: dict[str, Any] = {"name": a.name, "type": a.type or "string",
                                   "required": a.required if a.HasField("required") else True}
            if a.description:
                arg["description"] = a.description
            args.append(arg)
        tools.append({"name": t.name, "description": t.description, "arguments": args,
                      "output": t.output or None})
    library = [{"path": e.path, "signature": e.signature, "description": e.description}
               for e in msg.library]
    budget = {f: getattr(msg.budget, f) for f in ("max_nodes", "max_tokens", "timeout_sec", "max_depth")
              if msg.budget.HasField(f)}
    sampling = {f: getattr(msg.sampling, f) for f in ("temperature", "top_k", "top_p", "seed")
                if msg.sampling.HasField(f)}
    policy = msg.flags.cache_policy
    if policy not in pb.CachePolicy.values():
        raise _bad("flags.cache_policy", f"unknown value {policy}; expected one of "
                   f"{list(pb.CachePolicy.keys())}")
    data: dict[str, Any] = {
        "target_path": msg.target_path,
        "prompt": prompt,
        "context": context,
        "tools": tools,
        "library": library,
        "budget": budget,
        "sampling": sampling,
        "dag_id": msg.dag_id or None,
        "branch_id": msg.branch_id or None,
        "parent_path": msg.parent_path or None,
        "priority": msg.priority,
        "tenant": msg.tenant,
        "namespaces": list(msg.namespaces),
        "flags": {"bypass_cache": policy == pb.CACHE_POLICY_BYPASS,
                  "diagnostics": msg.flags.diagnostics},
    }
    if msg.node_types:
        data["node_types"] = list(msg.node_types)
    if msg.signature:
        data["signature"] = msg.signature
    if not data["target_path"]:
        raise _bad("target_path", "required field is missing")
    if not data["prompt"]:
        raise _bad("prompt", "required field is missing (set prompt or prompt_template)")
    return GenerateRequest.from_json(data)


def _node_to_proto(n: AstNodeInfo, out: Any) -> None:
    out.id, out.type, out.path = n.id, n.type, n.path
    out.next.extend(n.next)
    if n.fields:
        out.fields.update(n.fields)


def _block_to_proto(b: AstBlockInfo, out: Any) -> None:
    out.path, out.kind, out.entry = b.path, b.kind, b.entry
    for n in b.nodes:
        _node_to_proto(n, out.nodes.add())
    if b.fields:
        out.fields.update(b.fields)


def _diag_to_proto(d: DiagnosticInfo, out: Any) -> None:
    out.code, out.message, out.block, out.line = d.code, d.message, d.block, d.line or 0
    out.severity = SEVERITY_TO_PROTO.get(d.severity, pb.SEVERITY_UNSPECIFIED)


def result_to_proto(r: ServingResult) -> Any:
    """A :class:`ServingResult` as a ``GenerateSubgraphResponse`` message."""
    msg = pb.GenerateSubgraphResponse(
        request_id=r.request_id, target_path=r.target_path, text=r.text, valid=r.valid,
        cache=CACHE_OUTCOME_TO_PROTO[r.cache], finish_reason=r.finish_reason,
        dag_id=r.dag_id, branch_id=r.branch_id,
        library_versions=dict(r.library_versions), offered_library=list(r.offered),
    )
    for b in r.blocks:
        _block_to_proto(b, msg.ast.blocks.add())
    for d in r.diagnostics:
        _diag_to_proto(d, msg.diagnostics.add())
    c = r.counts
    msg.counts.prompt_tokens, msg.counts.cached_prompt_tokens = c.prompt_tokens, c.cached_prompt_tokens
    msg.counts.completion_tokens, msg.counts.forced_tokens = c.completion_tokens, c.forced_tokens
    msg.counts.node_count = c.node_count
    t = r.timings
    for name in ("queue_ms", "plan_ms", "cache_ms", "first_token_ms", "generate_ms",
                 "validate_ms", "total_ms"):
        setattr(msg.timings, name, getattr(t, name))
    return msg


def node_event_to_proto(e: NodeEvent) -> Any:
    """A node event as a stream message."""
    msg = pb.GenerateSubgraphStreamResponse()
    msg.node.index, msg.node.text, msg.node.elapsed_ms = e.index, e.text, e.elapsed_ms
    _node_to_proto(e.node, msg.node.node)
    return msg


def token_delta_to_proto(d: TokenDelta) -> Any:
    """A token delta as a stream message."""
    msg = pb.GenerateSubgraphStreamResponse()
    msg.tokens.text = d.text
    msg.tokens.token_ids.extend(d.token_ids)
    return msg


def error_status_to_proto(exc: AgenticError) -> Any:
    """An error as the ``ErrorStatus`` of a fork branch."""
    return pb.ErrorStatus(code=exc.code.value, message=exc.message,
                          details={str(k): str(v) for k, v in exc.details.items()})
