"""Soundness: random walks through the masks always give valid documents.

Each step picks a uniformly random allowed token from the 151k Qwen vocabulary; every
finished document must parse, validate with zero errors against its plan, load with
PyYAML and respect the plan. The long run (5,000 walks) is
``agentic-llm bench grammar --walks 5000``; CI runs a few hundred.
"""

from __future__ import annotations

import random

import yaml

from agentic_llm.dsl import Subgraph, check_text, parse
from agentic_llm.grammar.walk import random_walk
from tests.grammar.plans import random_plan

WALKS = 200


def _check_document(text: str, p) -> list[str]:  # type: ignore[no-untyped-def]
    problems = [f"{d.code}: {d.message}" for d in check_text(text, p.validation_policy())
                if d.severity == "error"]
    yaml.safe_load(text.split("```yaml\n", 1)[1].rsplit("```", 1)[0])
    doc = parse(text)
    (block,) = doc.blocks
    assert isinstance(block, Subgraph) and block.path == p.target_path
    assert 1 <= len(block.nodes) <= p.max_nodes
    for node in block.nodes:
        assert node.type in p.node_types
        if node.type == "tool_call":
            tool = p.tool_map[node.tool]
            keys = list(node.arguments or {})
            assert set(tool.required_keys) <= set(keys) <= set(tool.required_keys + tool.optional_keys)
    return problems


def test_random_walks_are_valid(compiler) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(1234)
    failures = []
    for i in range(WALKS):
        p = random_plan(rng)
        m = compiler.matcher_for(p, max_string=24)
        # every fourth walk draws brace tokens half the time: templates, and with
        # them arguments that read earlier outputs (grammar.dataflow)
        r = random_walk(m, compiler.vocab, rng, brace_bias=0.5 if i % 4 == 3 else 0.0)
        if not r.completed:
            failures.append((i, r.reason, r.text[-300:]))
            continue
        problems = _check_document(r.text, p)
        if problems:
            failures.append((i, problems, r.text))
        assert m.node_count == len(parse(r.text).blocks[0].nodes)
    assert not failures, failures[:3]


def test_walks_with_many_nodes_reach_deep_graphs(compiler) -> None:  # type: ignore[no-untyped-def]
    """Plans without external targets force the walk to build internal nodes."""
    rng = random.Random(7)
    from agentic_llm.planner import GenerateRequest, plan

    p = plan(GenerateRequest.from_json({
        "target_path": "/dynamic/deep", "prompt": "x",
        "context": {"available_vars": {"x": "string"}},
        "tools": [{"name": "t", "arguments": [{"name": "q"}]}],
        "budget": {"max_nodes": 6, "max_tokens": 4096}}))
    sizes = []
    for _ in range(20):
        r = random_walk(compiler.matcher_for(p, max_string=16), compiler.vocab, rng)
        assert r.completed, r.reason
        assert not _check_document(r.text, p)
        sizes.append(len(parse(r.text).blocks[0].nodes))
    assert max(sizes) >= 2
