"""A required join over named branches (``constraints.require_join``).

The planner refuses what no document can meet; the graph grammar lets a document
close only after a ``join`` whose ``wait_for`` lists every named branch, without a
dead end on any budget the planner accepts.
"""

from __future__ import annotations

import random

import pytest

from agentic_llm.dsl import Join, Subgraph, check_text, parse
from agentic_llm.errors import AgenticError, ErrorCode
from agentic_llm.grammar import GrammarCompiler
from agentic_llm.grammar.walk import check_text as feed
from agentic_llm.grammar.walk import random_walk
from agentic_llm.planner import GenerateRequest, PlanRefusal, plan

from .runtime_check import problems

T = "/dynamic/plan_1"


def _req(join: list[str], max_nodes: int = 6, **extra: object) -> dict[str, object]:
    req: dict[str, object] = {
        "target_path": T, "prompt": "x",
        "context": {"available_vars": {"city": "string"}, "permissions": ["tool:*"]},
        "tools": [{"name": "search", "arguments": [{"name": "q"}]}],
        "constraints": {"require_join": join},
        "budget": {"max_nodes": max_nodes, "max_tokens": 4096},
    }
    req.update(extra)
    return req


def _doc(body: str) -> str:
    return (f"### AgenticDSL `{T}`\n```yaml\n# --- BEGIN AgenticDSL ---\ngraph_type: subgraph\n"
            f'entry: "start"\nnodes:\n  - id: "start"\n    type: start\n{body}'
            "# --- END AgenticDSL ---\n```\n")


def _call(nid: str, key: str, nxt: str) -> str:
    return (f'  - id: "{nid}"\n    type: tool_call\n    tool: "search"\n    arguments:\n'
            f'      "q": "{{{{ city }}}}"\n    output_keys: ["{key}"]\n    next: ["{T}/{nxt}"]\n')


JOINED = _doc(f'    next: ["{T}/flights", "{T}/hotels"]\n' + _call("flights", "f", "both")
              + _call("hotels", "h", "both")
              + f'  - id: "both"\n    type: join\n    join:\n'
              f'      wait_for: ["{T}/flights", "{T}/hotels"]\n    next: ["/__system__/end_soft"]\n')


def _accepts(compiler: GrammarCompiler, text: str, req: dict[str, object]) -> bool:
    p = plan(GenerateRequest.from_json(req))
    return feed(compiler.matcher_for(p, verify=True), compiler.tokenizer_info.encode(text))[0]


def test_the_planner_refuses_what_no_document_meets() -> None:
    cases = [
        (_req(["a", "b"], 3), ErrorCode.BUDGET_EXCEEDED, "need 4 nodes; budget.max_nodes is 3"),
        (_req(["a"], 6, node_types=["tool_call"]), ErrorCode.UNSUPPORTED_CAPABILITY,
         "needs a join node, which the node-type whitelist does not allow"),
        (_req(["a", "b"], 6, constraints={"require_join": ["a", "b"], "require_tools": ["search"]}),
         ErrorCode.UNSUPPORTED_CAPABILITY, "cannot be combined with constraints.require_tools"),
    ]
    for req, code, text in cases:
        with pytest.raises(PlanRefusal) as exc:
            plan(GenerateRequest.from_json(req))
        assert exc.value.code is code and text in exc.value.message
    for bad, text in ((["a", "a"], "names a branch twice"), (["Start"], "not a usable node id"),
                      (["start"], "not a usable node id"), ("a", "must be a list")):
        with pytest.raises(AgenticError) as exc:
            GenerateRequest.from_json(_req(bad))  # type: ignore[arg-type]
        assert exc.value.code is ErrorCode.INVALID_REQUEST and text in exc.value.message
    plan(GenerateRequest.from_json(_req(["a", "b"], 4)))  # start, a, b and the join fit


def test_the_join_must_be_written_before_the_document_closes(compiler) -> None:  # type: ignore[no-untyped-def]
    req = _req(["flights", "hotels"])
    assert _accepts(compiler, JOINED, req)
    assert not [d for d in check_text(JOINED, plan(GenerateRequest.from_json(req)).validation_policy())
                if d.severity == "error"]
    # the same branches without the join: the END line is refused
    unjoined = _doc(f'    next: ["{T}/flights", "{T}/hotels"]\n'
                    + _call("flights", "f", "x").replace(f'["{T}/x"]', '["/__system__/end_soft"]')
                    + _call("hotels", "h", "x").replace(f'["{T}/x"]', '["/__system__/end_soft"]'))
    assert _accepts(compiler, unjoined, _req([]) | {"constraints": None})
    assert not _accepts(compiler, unjoined, req)
    # a join over one branch only does not count
    half = JOINED.replace(f'wait_for: ["{T}/flights", "{T}/hotels"]', f'wait_for: ["{T}/flights"]')
    assert not _accepts(compiler, half, req)


def test_branches_may_not_write_the_same_key(compiler) -> None:  # type: ignore[no-untyped-def]
    """Both branches writing "r" would make the join's merge conflict."""
    clash = JOINED.replace('output_keys: ["h"]', 'output_keys: ["f"]')
    assert not _accepts(compiler, clash, _req(["flights", "hotels"]))
    assert _accepts(compiler, clash.replace('["/__system__/end_soft"]', '["/__system__/noop"]'),
                    _req([]) | {"constraints": None}) is False  # merge conflict: invalid anyway


@pytest.mark.parametrize("runtime", ["agenticrt", "spec"])
def test_walks_always_write_the_join(compiler, runtime: str) -> None:  # type: ignore[no-untyped-def]
    """Random walks on tight and loose budgets: every walk finishes, validates and
    holds a join whose wait_for lists every named branch."""
    rng = random.Random(5 if runtime == "spec" else 6)
    for i in range(10):
        names = ["a", "b", "c"][: rng.choice([1, 2, 3])]
        req = _req(names, rng.randint(len(names) + 2, len(names) + 6), target_runtime=runtime)
        if i % 3 == 2:
            req["constraints"] = {"require_join": names, "min_nodes": len(names) + 3}
            req["budget"] = {"max_nodes": len(names) + 4, "max_tokens": 4096}
        p = plan(GenerateRequest.from_json(req))
        # odd walks under a token budget: the matcher's closing text writes the join
        m = compiler.matcher_for(p, max_string=8, verify=i < 5, max_tokens=700 if i % 2 else None)
        assert i % 2 == 0 or m.min_tokens() < 400
        r = random_walk(m, compiler.vocab, rng, max_tokens=2500)
        assert r.completed, (r.reason, r.text)
        errs = [str(d) for d in check_text(r.text, p.validation_policy()) if d.severity == "error"]
        assert not errs, (errs, r.text)
        (block,) = parse(r.text).blocks
        assert isinstance(block, Subgraph)
        waits = [set(n.wait_for or ()) for n in block.nodes if isinstance(n, Join)]
        assert any({f"{T}/{x}" for x in names} <= w for w in waits), r.text
        if runtime == "agenticrt":
            assert not any(problems(r.text).values()), r.text
