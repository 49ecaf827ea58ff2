"""require_tools and min_nodes: the graph grammar enforces them, the planner refuses the impossible."""

from __future__ import annotations

import random

import pytest

from agentic_llm.dsl import check_text, parse
from agentic_llm.errors import ErrorCode
from agentic_llm.grammar.walk import random_walk
from agentic_llm.planner import GenerateRequest, PlanRefusal, plan

TOOLS = [{"name": f"tool_{i}", "arguments": [{"name": "x", "required": i % 2 == 0}]} for i in range(6)]


def request(constraints: dict, *, max_nodes: int = 8, tools=TOOLS, **kw) -> GenerateRequest:  # type: ignore[no-untyped-def]
    return GenerateRequest.from_json({
        "target_path": "/dynamic/p", "prompt": "do it", "tools": tools,
        "budget": {"max_nodes": max_nodes, "max_tokens": 4096}, "constraints": constraints, **kw})


def walk_documents(compiler, p, n: int, seed: int) -> list[str]:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        m = compiler.matcher_for(p, max_string=12)
        r = random_walk(m, compiler.vocab, rng)
        assert r.completed, r.reason + "\n" + r.text[-400:]
        errors = [d for d in check_text(r.text, p.validation_policy()) if d.is_error]
        assert not errors, (errors, r.text)
        texts.append(r.text)
    return texts


def nodes(text: str):  # type: ignore[no-untyped-def]
    return parse(text).blocks[0].nodes


@pytest.mark.parametrize(("constraints", "max_nodes"), [
    ({"require_tools": ["tool_1", "tool_4"]}, 8),
    ({"require_tools": ["tool_0", "tool_3", "tool_5"]}, 4),   # every slot after start is forced
    ({"min_nodes": 6}, 8),
    ({"min_nodes": 5}, 5),                                     # exactly max_nodes
    ({"require_tools": ["tool_2"], "min_nodes": 4}, 6),
])
def test_random_walks_meet_the_constraints(compiler, constraints: dict, max_nodes: int) -> None:  # type: ignore[no-untyped-def]
    p = plan(request(constraints, max_nodes=max_nodes))
    for text in walk_documents(compiler, p, 25, seed=max_nodes):
        ns = nodes(text)
        called = {n.tool for n in ns if n.type == "tool_call"}
        assert set(constraints.get("require_tools", ())) <= called, text
        assert constraints.get("min_nodes", 0) <= len(ns) <= max_nodes, text


def test_without_constraints_walks_do_stop_early(compiler) -> None:  # type: ignore[no-untyped-def]
    """The control: the same plan without constraints often writes fewer nodes or skips
    the tools, so the constrained walks above are the grammar's doing."""
    p = plan(request({}, max_nodes=8))
    texts = walk_documents(compiler, p, 25, seed=8)
    assert any(len(nodes(t)) < 6 for t in texts)
    assert any(not {"tool_1", "tool_4"} <= {n.tool for n in nodes(t) if n.type == "tool_call"} for t in texts)


def refusal(r: GenerateRequest) -> PlanRefusal:
    with pytest.raises(PlanRefusal) as e:
        plan(r)
    return e.value


def test_planner_refuses_impossible_combinations() -> None:
    assert refusal(request({"require_tools": ["nope"]})).code is ErrorCode.TOOL_NOT_GRANTED
    denied = request({"require_tools": ["tool_1"]}, context={"permissions": ["tool:tool_0"]})
    e = refusal(denied)
    assert e.code is ErrorCode.TOOL_NOT_GRANTED and "denied" in e.message
    assert refusal(request({"min_nodes": 9}, max_nodes=8)).code is ErrorCode.BUDGET_EXCEEDED
    too_many = request({"require_tools": ["tool_0", "tool_1", "tool_2"]}, max_nodes=3)
    assert refusal(too_many).code is ErrorCode.BUDGET_EXCEEDED
    no_calls = request({"require_tools": ["tool_0"]}, node_types=["assign", "end"])
    assert refusal(no_calls).code is ErrorCode.UNSUPPORTED_CAPABILITY


@pytest.mark.parametrize("bad", [{"min_nodes": -1}, {"min_nodes": "3"}, {"require_tools": "tool_0"},
                                 {"join": ["a"]}, []])
def test_bad_constraints_are_invalid_requests(bad) -> None:  # type: ignore[no-untyped-def]
    from agentic_llm.errors import AgenticError

    with pytest.raises(AgenticError) as e:
        request(bad)
    assert e.value.code is ErrorCode.INVALID_REQUEST


def test_constraints_round_trip_and_change_the_cache_key() -> None:
    r = request({"require_tools": ["tool_1"], "min_nodes": 3})
    assert GenerateRequest.from_json(r.to_json()) == r
    assert plan(r).cache_key.structure_hash != plan(request({})).cache_key.structure_hash


def test_tiny_model_plan_calls_the_required_tools() -> None:
    """The shipped model, constrained: the plan calls what the request requires."""
    from agentic_llm.serving.local import LocalGenerator

    gen = LocalGenerator(max_num_seqs=2)
    tools = [{"name": "web_search", "arguments": [{"name": "query"}]},
             {"name": "summarize", "arguments": [{"name": "text"}]}]
    req = request({"require_tools": ["web_search", "summarize"], "min_nodes": 4}, tools=tools,
                  max_nodes=6).to_json()
    req["budget"]["max_tokens"] = 512
    try:
        [res] = gen.generate([req], honour_timeouts=False)
    finally:
        gen.close()
    assert res.valid, (res.text, res.diagnostics, res.error)
    ns = nodes(res.text)
    assert {"web_search", "summarize"} <= {n.tool for n in ns if n.type == "tool_call"}
    assert len(ns) >= 4
