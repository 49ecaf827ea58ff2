"""Data dependencies: a tool argument reads an output of a node surely run before it.

What the grammar offers (``grammar.dataflow``), that the validator accepts it and the
reference runtime's model builds it, that random walks write such references and stay
valid, and that the plan scorer counts them as dependency edges.
"""

from __future__ import annotations

import random

import pytest

from agentic_llm.benchmarks.plan_score import extract_calls, score_plan
from agentic_llm.dsl import Subgraph, check_text, parse
from agentic_llm.grammar import GrammarCompiler
from agentic_llm.grammar.dataflow import template_names
from agentic_llm.grammar.walk import check_text as feed
from agentic_llm.grammar.walk import random_walk
from agentic_llm.planner import GenerateRequest, plan
from agentic_llm.serving.ast import node_info

from .runtime_check import problems

T = "/dynamic/plan_1"
REQUEST = {
    "target_path": T, "prompt": "x",
    "context": {"available_vars": {"city": "string"},
                "permissions": ["tool:*", "llm_call", "generate_subgraph"]},
    "tools": [{"name": "search", "arguments": [{"name": "q"}]},
              {"name": "rank", "arguments": [{"name": "items"}, {"name": "by", "required": False}]}],
    "budget": {"max_nodes": 8, "max_tokens": 4096},
}


def _doc(body: str) -> str:
    return (f"### AgenticDSL `{T}`\n```yaml\n# --- BEGIN AgenticDSL ---\ngraph_type: subgraph\n"
            f'entry: "start"\nnodes:\n  - id: "start"\n    type: start\n{body}'
            "# --- END AgenticDSL ---\n```\n")


def _search(nid: str, nxt: str, keys: str = '["hits"]', q: str = "{{ city }}") -> str:
    return (f'  - id: "{nid}"\n    type: tool_call\n    tool: "search"\n    arguments:\n'
            f'      "q": "{q}"\n    output_keys: {keys}\n' + (f'    next: ["{T}/{nxt}"]\n' if nxt else ""))


def _rank(nid: str, items: str, nxt: str = "") -> str:
    return (f'  - id: "{nid}"\n    type: tool_call\n    tool: "rank"\n    arguments:\n'
            f'      "items": "{items}"\n    output_keys: ["ranked"]\n'
            + (f'    next: ["{T}/{nxt}"]\n' if nxt else ""))


CHAIN = _doc(f'    next: ["{T}/s"]\n' + _search("s", "r") + _rank("r", "top {{ hits }}"))


def _accepts(compiler: GrammarCompiler, text: str, **req: object) -> bool:
    p = plan(GenerateRequest.from_json({**REQUEST, **req}))
    ids = compiler.tokenizer_info.encode(text)
    return feed(compiler.matcher_for(p, verify=True), ids)[0]


def _errors(text: str, **req: object) -> list[str]:
    p = plan(GenerateRequest.from_json({**REQUEST, **req}))
    return [f"{d.code}" for d in check_text(text, p.validation_policy()) if d.severity == "error"]


@pytest.mark.parametrize("runtime", ["agenticrt", "spec"])
def test_an_argument_reads_the_single_output_of_an_earlier_call(compiler, runtime) -> None:  # type: ignore[no-untyped-def]
    assert _accepts(compiler, CHAIN, target_runtime=runtime)
    assert not _errors(CHAIN, target_runtime=runtime)
    assert not any(problems(CHAIN).values())


@pytest.mark.parametrize("body, why", [
    # the call's own output: not written before it runs
    (f'    next: ["{T}/s"]\n' + _search("s", "r") + _rank("r", "{{ ranked }}"), "own output"),
    # several output keys: the runtime copies only those its result holds
    (f'    next: ["{T}/s"]\n' + _search("s", "r", '["hits", "total"]') + _rank("r", "{{ hits }}"),
     "not sure"),
    # a sibling branch: nothing orders b after a
    (f'    next: ["{T}/a", "{T}/b"]\n' + _search("a", "") + _rank("b", "{{ hits }}"), "sibling"),
    # an on_failure target may be jumped to before what precedes it in `next` has run
    (f'    next: ["{T}/s"]\n' + _search("s", "c")
     + f'  - id: "c"\n    type: assert\n    condition: "{{{{ city }}}}"\n    on_failure: "{T}/r"\n'
     f'    next: ["{T}/r"]\n' + _rank("r", "{{ hits }}"), "jump target"),
])
def test_the_grammar_refuses_a_read_that_is_not_sure(compiler, body: str, why: str) -> None:  # type: ignore[no-untyped-def]
    text = _doc(body)
    assert not _accepts(compiler, text), why
    assert _accepts(compiler, text.replace('"items": "{{ ranked }}"', '"items": "{{ city }}"')
                    .replace('"items": "{{ hits }}"', '"items": "{{ city }}"')), why


def test_a_jump_may_not_land_on_a_node_a_written_read_relied_on(compiler) -> None:  # type: ignore[no-untyped-def]
    """s -> r (r reads s's output) and s -> c: an assert c jumping to r would run r
    without s, so the grammar no longer offers r (nor s) as c's on_failure target."""
    head = (f'    next: ["{T}/s"]\n' + _search("s", "r").replace(f'["{T}/r"]', f'["{T}/r", "{T}/c"]')
            + _rank("r", "{{ hits }}"))
    jump = (f'  - id: "c"\n    type: assert\n    condition: "{{{{ city }}}}"\n'
            f'    on_failure: "{T}/%s"\n')
    assert not _accepts(compiler, _doc(head + jump % "r"))
    assert not _accepts(compiler, _doc(head + jump % "s"))
    plain = head.replace("{{ hits }}", "{{ city }}")
    assert _accepts(compiler, _doc(plain + jump % "r"))


def test_the_scorer_counts_a_reference_as_a_dependency_edge(compiler) -> None:  # type: ignore[no-untyped-def]
    """A hand-written plan: search -> rank (reads search's output) -> search again
    (reads the city only). One edge, (search, rank)."""
    text = _doc(f'    next: ["{T}/s"]\n' + _search("s", "r") + _rank("r", "{{ hits }}", "t")
                + _search("t", "", '["more"]', "{{ city }} and {{ ranked }}"))
    assert _accepts(compiler, text) and not _errors(text)
    (block,) = parse(text).blocks
    assert isinstance(block, Subgraph)
    nodes = [node_info(n, f"{T}/{n.id}") for n in block.nodes]
    calls = extract_calls(nodes)
    assert calls.tools == ("search", "rank", "search")
    assert calls.edges == (("search", "rank"), ("rank", "search"))
    s = score_plan(calls, ["search", "rank", "search"], [("search", "rank"), ("rank", "search")])
    assert s.edge_f1 == 1.0 and s.exact
    assert score_plan(calls, ["search", "rank"], [("search", "rank")]).edge_f1 == pytest.approx(2 / 3)


def _reads_outputs(text: str, variables: set[str]) -> int:
    """Tool arguments of ``text`` that read a name other than a context variable."""
    (block,) = parse(text).blocks
    n = 0
    for node in block.nodes:
        if node.type == "tool_call":
            for v in (node.arguments or {}).values():
                n += any(x not in variables for x in template_names(v))
    return n


def test_walks_write_references_and_stay_valid_and_conforming(compiler) -> None:  # type: ignore[no-untyped-def]
    """Brace-biased walks over plans with a few tools: documents that read earlier
    outputs appear, and every finished one validates and passes the runtime model."""
    rng = random.Random(11)
    reading = done = 0
    for i in range(24):
        n = rng.choice([2, 3])
        req = {**REQUEST, "target_path": f"/dynamic/d{i}",
               "context": {"available_vars": {"city": "string"}, "permissions": ["tool:*"]},
               "tools": [{"name": f"t{k}", "arguments": [{"name": "q"}]} for k in range(n)],
               # several required calls: chains of calls, where references can occur
               "constraints": {"require_tools": [f"t{k}" for k in range(n)]},
               "budget": {"max_nodes": rng.randint(n + 1, 8), "max_tokens": 4096}}
        if i % 2:
            req["target_runtime"] = "spec"
        p = plan(GenerateRequest.from_json(req))
        r = random_walk(compiler.matcher_for(p, max_string=10, verify=i < 8), compiler.vocab, rng,
                        max_tokens=1500, brace_bias=0.5)
        if not r.completed:
            continue
        done += 1
        assert not [d for d in check_text(r.text, p.validation_policy()) if d.severity == "error"], r.text
        if not i % 2:
            assert not any(problems(r.text).values()), r.text
        reading += _reads_outputs(r.text, {"city"}) > 0
    assert done >= 20 and reading >= 6, (done, reading)
