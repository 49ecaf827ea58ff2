"""plan(): namespaces, grants, whitelist, budget refusals, estimates, cache key, prompt."""

from __future__ import annotations

import pytest

from agentic_llm.dsl import ValidationPolicy
from agentic_llm.errors import ErrorCode
from agentic_llm.planner import STABLE_PROMPT_PREFIX, GenerateRequest, PlanRefusal, plan

TOOLS = [
    {"name": "web_search", "arguments": [{"name": "query", "type": "string"},
                                         {"name": "limit", "type": "integer", "required": False}]},
    {"name": "rank", "arguments": [{"name": "items", "type": "array"}]},
]


def req(**kw) -> GenerateRequest:  # type: ignore[no-untyped-def]
    base = {"target_path": "/dynamic/plan_1", "prompt": "Find {{ city }} hotels",
            "context": {"available_vars": {"city": "string"}, "values": {"city": "Rome"}},
            "tools": TOOLS}
    base.update(kw)
    return GenerateRequest.from_json(base)


def refused(r: GenerateRequest) -> PlanRefusal:
    with pytest.raises(PlanRefusal) as info:
        plan(r)
    return info.value


def test_basic_plan() -> None:
    p = plan(req())
    assert p.namespace == "/dynamic"
    assert [t.name for t in p.tools] == ["web_search", "rank"]
    assert "tool_call" in p.node_types and "codelet_call" not in p.node_types
    assert "/__system__/noop" in p.external_targets
    assert p.est_output_tokens <= p.max_tokens
    assert p.est_kv_pages >= 1
    assert isinstance(p.validation_policy(), ValidationPolicy)


@pytest.mark.parametrize("target", ["/lib/x/y", "/main/run", "/app/x", "/__meta__"])
def test_namespace_violation(target: str) -> None:
    assert refused(req(target_path=target)).code == ErrorCode.NAMESPACE_VIOLATION


def test_lib_target_needs_grant_and_signature() -> None:
    assert refused(req(target_path="/lib/solved/x", namespaces=["/lib/solved"])).code == \
        ErrorCode.SIGNATURE_REQUIRED
    p = plan(req(target_path="/lib/solved/x", namespaces=["/lib/solved"], signature="(a: string) -> b: string"))
    assert p.signature and p.namespace == "/lib"


@pytest.mark.parametrize("target", ["dynamic/x", "/dynamic/", "/dynamic//x", "/dynamic/a b", "/dynamic"])
def test_malformed_paths(target: str) -> None:
    assert refused(req(target_path=target)).code == ErrorCode.INVALID_PATH


def test_permissions_intersect_tools() -> None:
    p = plan(req(context={"permissions": ["tool:rank"]}))
    assert [t.name for t in p.tools] == ["rank"]
    assert p.denied_tools == ("web_search",)
    assert "generate_subgraph" not in p.node_types


def test_generate_subgraph_needs_depth() -> None:
    assert "generate_subgraph" in plan(req()).node_types
    assert "generate_subgraph" not in plan(req(budget={"max_depth": 0})).node_types


def test_codelet_needs_permission() -> None:
    p = plan(req(context={"permissions": ["codelet_call"]}, target_runtime="spec"))
    assert "codelet_call" in p.node_types
    assert "codelet_call" not in plan(req(context={"permissions": ["llm_call"]}, target_runtime="spec")).node_types
    # the reference runtime builds no codelet_call node: never offered for it
    assert "codelet_call" not in plan(req(context={"permissions": ["codelet_call"]})).node_types


def test_unknown_schema_type() -> None:
    bad = [{"name": "t", "arguments": [{"name": "a", "type": "tensor"}]}]
    r = refused(req(tools=bad))
    assert r.code == ErrorCode.INVALID_REQUEST and "tensor" in r.message


def test_tool_only_whitelist_without_tools() -> None:
    r = refused(req(tools=[], node_types=["tool_call"]))
    assert r.code == ErrorCode.UNSUPPORTED_CAPABILITY and "tool" in r.message


def test_max_nodes_zero() -> None:
    r = refused(req(budget={"max_nodes": 0}))
    assert r.code == ErrorCode.BUDGET_EXCEEDED and "max_nodes" in r.message


def test_max_tokens_too_small() -> None:
    r = refused(req(budget={"max_tokens": 5}))
    assert r.code == ErrorCode.BUDGET_EXCEEDED and "tokens" in r.message


def test_duplicate_tools_and_bad_names() -> None:
    assert refused(req(tools=[{"name": "a"}, {"name": "a"}])).code == ErrorCode.INVALID_REQUEST
    assert refused(req(tools=[{"name": "a b"}])).code == ErrorCode.INVALID_REQUEST
    assert refused(req(library=[{"path": "/dynamic/x"}])).code == ErrorCode.INVALID_PATH


def test_cache_key_parts() -> None:
    a = plan(req()).cache_key
    b = plan(req(context={"available_vars": {"city": "string"}, "values": {"city": "Oslo"}})).cache_key
    assert a.path == b.path and a.structure_hash == b.structure_hash
    assert a.value_hash != b.value_hash and a.signature_hash == b.signature_hash
    c = plan(req(tools=TOOLS[:1])).cache_key
    assert c.signature_hash != a.signature_hash
    assert a.engine_version


def test_prompt_stable_prefix_shared() -> None:
    p1, p2 = plan(req()), plan(req(prompt="Something else", tools=[]))
    assert p1.render_prompt().startswith(STABLE_PROMPT_PREFIX)
    assert p2.render_prompt().startswith(p1.stable_prompt_prefix)
    assert len(STABLE_PROMPT_PREFIX.split()) < 250
    varying = p1.render_prompt()[len(STABLE_PROMPT_PREFIX):]
    assert "web_search(query, limit?)" in varying
    assert "TARGET: /dynamic/plan_1" in varying and "GOAL: Find {{ city }} hotels" in varying
