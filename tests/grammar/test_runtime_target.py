"""The ``agenticrt`` target (the default): what the engine writes runs in the reference
runtime. No ``/end_soft``, no string it reads as a number, boolean or null, blocks
under its size limit; the canonical writer refuses such values; ``spec`` keeps the
spec's forms."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from agentic_llm.dsl import parse
from agentic_llm.dsl.dump import MAX_BLOCK_BYTES, dumps
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.grammar import GrammarCompiler
from agentic_llm.grammar.walk import check_text as feed
from agentic_llm.grammar.walk import random_walk
from agentic_llm.planner import GenerateRequest, PlanRefusal, plan

from .runtime_check import problems

REPO = Path(__file__).resolve().parents[2]
T = "/dynamic/plan_1"
REQUEST = {
    "target_path": T, "prompt": "x",
    "context": {"available_vars": {"city": "string"}},
    "tools": [{"name": "web_search", "arguments": [{"name": "query"}, {"name": "limit", "required": False}]}],
    "budget": {"max_nodes": 8, "max_tokens": 4096},
}


def _doc(body: str) -> str:
    return (f"### AgenticDSL `{T}`\n```yaml\n# --- BEGIN AgenticDSL ---\ngraph_type: subgraph\n"
            f'entry: "start"\nnodes:\n  - id: "start"\n    type: start\n{body}'
            "# --- END AgenticDSL ---\n```\n")


def _plans() -> tuple[object, object]:
    rt = plan(GenerateRequest.from_json(REQUEST))
    spec = plan(GenerateRequest.from_json({**REQUEST, "target_runtime": "spec"}))
    return rt, spec


def test_the_plan_names_its_target_runtime() -> None:
    rt, spec = _plans()
    assert rt.target_runtime == "agenticrt" and spec.target_runtime == "spec"
    assert "/end_soft" not in rt.external_targets and "/__system__/end_soft" in rt.external_targets
    assert "/end_soft" in spec.external_targets
    assert rt.cache_key != spec.cache_key
    with pytest.raises(AgenticError) as exc:
        GenerateRequest.from_json({**REQUEST, "target_runtime": "node"})
    assert exc.value.code is ErrorCode.INVALID_REQUEST and "target_runtime" in str(exc.value)


@pytest.mark.parametrize("body, conforms", [
    ('    next: ["/end_soft"]\n', False),
    ('    next: ["/__system__/end_soft"]\n', True),
    (f'    next: ["{T}/a"]\n  - id: "a"\n    type: assert\n    condition: "true"\n', False),
    (f'    next: ["{T}/a"]\n  - id: "a"\n    type: assert\n    condition: "{{{{ city }}}}"\n', True),
    (f'    next: ["{T}/a"]\n  - id: "a"\n    type: tool_call\n    tool: "web_search"\n    arguments:\n'
     '      "query": "hotels"\n      "limit": "2"\n    output_keys: ["r"]\n', False),
    (f'    next: ["{T}/a"]\n  - id: "a"\n    type: tool_call\n    tool: "web_search"\n    arguments:\n'
     '      "query": "hotels"\n      "limit": "2 nights"\n    output_keys: ["r"]\n', True),
    (f'    next: ["{T}/a"]\n  - id: "a"\n    type: llm_call\n    prompt_template: ""\n    output_keys: ["r"]\n', False),
    (f'    next: ["{T}/a"]\n  - id: "a"\n    type: llm_call\n    prompt_template: " 12"\n    output_keys: ["r"]\n', False),
    (f'    next: ["{T}/a"]\n  - id: "a"\n    type: llm_call\n    prompt_template: "12 "\n    output_keys: ["r"]\n', True),
    (f'    next: ["{T}/a"]\n  - id: "a"\n    type: llm_call\n    prompt_template: "1e5"\n    output_keys: ["true"]\n', False),
    (f'    next: ["{T}/a"]\n  - id: "a"\n    type: assign\n    assign:\n      "k": "~"\n', False),
    (f'    next: ["{T}/true"]\n  - id: "true"\n    type: end\n', False),
])
def test_the_grammar_accepts_a_document_for_agenticrt_exactly_when_it_conforms(
        compiler: GrammarCompiler, body: str, conforms: bool) -> None:
    rt, spec = _plans()
    text = _doc(body)
    ids = compiler.tokenizer_info.encode(text)
    assert any(problems(text).values()) != conforms
    assert feed(compiler.matcher_for(rt), ids)[0] == conforms
    assert feed(compiler.matcher_for(spec), ids)[0]  # the spec profile takes them all


def test_random_walks_for_agenticrt_conform(compiler: GrammarCompiler) -> None:
    """Walks over plans with tools, fork/join, budgets 1-64 and /lib targets."""
    rng = random.Random(3)
    done = 0
    for i in range(16):
        n_tools = rng.choice([0, 1, 3, 10])
        req = {"target_path": f"/dynamic/w{i}", "prompt": "x",
               "context": {"available_vars": {"city": "string", "n": "number"},
                           "permissions": ["tool:*", "llm_call", "generate_subgraph"]},
               "tools": [{"name": f"t{k}", "arguments": [{"name": "q"}, {"name": "n", "required": False}]}
                         for k in range(n_tools)],
               "library": [{"path": "/lib/math/add", "signature": "(a: number, b: number) -> sum: number"}]
               if rng.random() < 0.5 else [],
               "budget": {"max_nodes": rng.randint(1, 64), "max_tokens": 8192}}
        if i % 4 == 3:
            req.update(target_path=f"/lib/bench/op_{i}", namespaces=["/lib/bench"],
                       signature="(query: string) -> answer: string")
        try:
            p = plan(GenerateRequest.from_json(req))
        except PlanRefusal:
            continue
        r = random_walk(compiler.matcher_for(p, max_string=12), compiler.vocab, rng, max_tokens=1200,
                        brace_bias=0.5 if i % 2 else 0.0)
        if not r.completed:
            continue
        found = problems(r.text, [e.path for e in p.library])
        assert not any(found.values()), (found, r.text)
        done += 1
    assert done >= 6


def test_the_shipped_model_writes_conforming_documents() -> None:
    """A subset of the held-out requests (the full 200: bench/runtime_conformance.py)."""
    from agentic_llm.models import shipped_model_dir
    from agentic_llm.serving.local import LocalGenerator

    lines = (REPO / "bench" / "validity_requests.jsonl").read_text(encoding="utf-8").splitlines()
    reqs = [json.loads(x) for x in lines[:12]]
    gen = LocalGenerator(shipped_model_dir(), max_num_seqs=4, num_blocks=512)
    try:
        results = gen.generate(reqs, honour_timeouts=False)
    finally:
        gen.close()
    for req, r in zip(reqs, results, strict=True):
        assert r.valid, [str(d) for d in r.errors[:3]]
        found = problems(r.text, [e["path"] for e in req.get("library") or []])
        assert not any(found.values()), (found, r.text)


def test_the_canonical_writer_refuses_what_agenticrt_misreads() -> None:
    ok = parse(_doc(f'    next: ["{T}/a"]\n  - id: "a"\n    type: llm_call\n'
                    '    prompt_template: "hello"\n    output_keys: ["r"]\n'))
    assert dumps(ok, runtime="agenticrt") == dumps(ok)
    for body in (f'    next: ["{T}/a"]\n  - id: "a"\n    type: llm_call\n    prompt_template: ""\n'
                 '    output_keys: ["r"]\n',
                 f'    next: ["{T}/a"]\n  - id: "a"\n    type: assert\n    condition: "true"\n',
                 '    next: ["/end_soft"]\n'):
        doc = parse(_doc(body))
        dumps(doc)  # the spec form writes it
        with pytest.raises(AgenticError) as exc:
            dumps(doc, runtime="agenticrt")
        assert exc.value.code is ErrorCode.INVALID_FIELD
    big = parse(_doc(f'    next: ["{T}/a"]\n  - id: "a"\n    type: llm_call\n'
                     f'    prompt_template: "{"x" * (MAX_BLOCK_BYTES + 1)}"\n    output_keys: ["r"]\n'))
    with pytest.raises(AgenticError, match="bytes"):
        dumps(big, runtime="agenticrt")
