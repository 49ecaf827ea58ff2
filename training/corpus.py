"""Write the training corpus: (rendered prompt, canonical subgraph) pairs as JSON lines.

Each example is a random request from :mod:`training.scenario`, planned with
:func:`agentic_llm.planner.plan`. The prompt is ``ExecutionPlan.render_prompt()``
exactly, as the server renders it; the answer is the scenario's node list built as
``agentic_llm.dsl`` AST nodes and written with ``dsl.dumps``, and it must validate
with zero errors against ``ExecutionPlan.validation_policy()`` (an example that does
not is a bug in the generator and stops the run).

    python -m training.corpus --out /tmp/agentic-corpus --train 8000 --heldout 200
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentic_llm import dsl
from agentic_llm.dsl import nodes as ast
from agentic_llm.dsl.document import Document, Subgraph
from agentic_llm.planner import GenerateRequest, plan
from training.scenario import NodeSpec, Scenario, make_scenario

__all__ = ["Example", "to_document", "make_example", "iter_examples", "main", "TRAIN_SEED", "HELDOUT_SEED"]

TRAIN_SEED = 1234
HELDOUT_SEED = 987_654


@dataclass(frozen=True)
class Example:
    """One corpus line: the request JSON, its rendered prompt and the canonical answer."""

    request: dict[str, Any]
    prompt: str
    answer: str

    def to_json(self) -> dict[str, Any]:
        """The JSON-lines record."""
        return {"request": self.request, "prompt": self.prompt, "answer": self.answer}


def _node(spec: NodeSpec) -> ast.Node:
    f = spec.fields
    common: dict[str, Any] = {"id": spec.id, "next": tuple(spec.next) if spec.next else None}
    if spec.type == "start":
        return ast.Start(**common)
    if spec.type == "end":
        return ast.End(**common)
    if spec.type == "assign":
        return ast.Assign(assign=dict(f["assign"]), **common)
    if spec.type == "tool_call":
        return ast.ToolCall(tool=f["tool"], arguments=dict(f["arguments"]),
                            output_keys=tuple(f["output_keys"]), **common)
    if spec.type == "assert":
        return ast.Assert(condition=f["condition"], **common)
    if spec.type == "fork":
        return ast.Fork(branches=tuple(f["branches"]), **common)
    if spec.type == "join":
        return ast.Join(wait_for=tuple(f["wait_for"]), **common)
    if spec.type == "llm_call":
        return ast.LlmCall(prompt_template=f["prompt_template"],
                           output_keys=tuple(f["output_keys"]), **common)
    if spec.type == "generate_subgraph":
        return ast.GenerateSubgraph(prompt_template=f["prompt_template"],
                                    output_keys=tuple(f["output_keys"]), **common)
    raise ValueError(f"the corpus has no rule for node type {spec.type!r}")


def to_document(scenario: Scenario) -> Document:
    """The scenario's answer as a one-block AST document at its target path."""
    block = Subgraph(path=scenario.target_path, entry="start",
                     nodes=tuple(_node(n) for n in scenario.nodes))
    return Document(blocks=(block,))


def make_example(rng: random.Random, *, vary: bool = False) -> Example:
    """One validated example; raises ValueError if the answer does not validate.
    ``vary`` is :func:`training.scenario.make_scenario`'s."""
    scenario = make_scenario(rng, vary=vary)
    request = GenerateRequest.from_json(scenario.request)
    execution_plan = plan(request)
    answer = dsl.dumps(to_document(scenario))
    errors = [d for d in dsl.check_text(answer, execution_plan.validation_policy()) if d.is_error]
    if errors:
        detail = "; ".join(str(d) for d in errors)
        raise ValueError(f"generated answer does not validate: {detail}\n{answer}")
    return Example(scenario.request, execution_plan.render_prompt(), answer)


def iter_examples(count: int, seed: int, exclude: frozenset[str] = frozenset()) -> Iterator[Example]:
    """``count`` examples from one deterministic random stream, skipping prompts in ``exclude``."""
    rng = random.Random(seed)
    made = 0
    while made < count:
        ex = make_example(rng)
        if ex.prompt in exclude:
            continue
        made += 1
        yield ex


def write_jsonl(path: Path, examples: Iterator[Example]) -> int:
    """Write examples as JSON lines; returns how many were written."""
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(ex.to_json(), ensure_ascii=False) + "\n")
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    """Command line: write ``train.jsonl`` and ``heldout.jsonl`` under ``--out``."""
    p = argparse.ArgumentParser(prog="python -m training.corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--train", type=int, default=8000, help="training examples")
    p.add_argument("--heldout", type=int, default=200, help="held-out examples (other seed)")
    p.add_argument("--seed", type=int, default=TRAIN_SEED)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    n_train = write_jsonl(args.out / "train.jsonl", iter_examples(args.train, args.seed))
    with (args.out / "train.jsonl").open(encoding="utf-8") as fh:
        seen = frozenset(json.loads(line)["prompt"] for line in fh)
    # Held-out requests come from another seed and never repeat a training prompt.
    n_held = write_jsonl(args.out / "heldout.jsonl", iter_examples(args.heldout, HELDOUT_SEED, seen))
    print(f"wrote {n_train} training and {n_held} held-out examples to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
