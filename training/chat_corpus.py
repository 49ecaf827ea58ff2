"""Fine-tuning corpus for an instruct model: chat-framed prompts and canonical plans.

Two sources, both answered in canonical AgenticDSL and validated against the
request's plan (an example that does not validate is a generator bug and stops the
run):

- our scenario generator (:mod:`training.scenario`): tool chains with data
  dependencies, fan-out/fan-in, checks, model calls and library hand-overs;
- NESTFUL's ``glaive`` and ``sgd`` splits (never ``executable``, which is test
  data): each gold call sequence becomes a chain of ``tool_call`` nodes, call ``N``
  writing the output key ``varN`` and an argument ``"$varN.field$"`` reading it as
  ``{{ varN }}``. Each sample appears in several variants, each granting its gold
  tools plus a different choice of the split's other APIs (up to 8 tools), so the
  model learns to pick tools from the list rather than by position.

The prompt is what the serving pipeline sends: ``ExecutionPlan.render_prompt(chat)``
with the model's chat template, so the system turn (the stable rules) is shared by
every example and by every served request.

    python -m training.chat_corpus --model path/to/model.gguf --out /tmp/chat-corpus
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentic_llm import dsl
from agentic_llm.benchmarks.nestful import RESULT_CALL, SPLITS, nestful_dir, tool_json, tool_name
from agentic_llm.dsl import nodes as ast
from agentic_llm.dsl.conformance.scalars import reads_as_string
from agentic_llm.dsl.document import Document, Subgraph
from agentic_llm.planner import GenerateRequest, plan
from agentic_llm.planner.chat import ChatTemplate
from training.api_families import distractors, iter_requests
from training.corpus import make_example

__all__ = ["nestful_examples", "family_examples", "scenario_examples", "chat_example", "main"]

TRAIN_SPLITS = ("glaive", "sgd")  # "executable" is test data
TARGET = "/dynamic/plan_1"
TOOLS_PER_REQUEST = 8
_REF = re.compile(r"\$(var\d+)(?:\.[^$]*)?\$")
_NOT_ID = re.compile(r"[^a-z0-9_]+")


def _value(v: Any, keys: dict[str, str]) -> str | None:
    """A gold argument as the string our documents carry; None when it reads an
    output no earlier call wrote."""
    text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    missing = [m for m in _REF.findall(text) if m not in keys]
    if missing:
        return None
    return _REF.sub(lambda m: "{{ " + keys[m.group(1)] + " }}", text)


def _node_id(name: str, taken: set[str]) -> str:
    base = _NOT_ID.sub("_", name.lower()).strip("_")[:40] or "call"
    nid, n = base, 2
    while nid in taken or nid == "start":
        nid, n = f"{base}_{n}", n + 1
    taken.add(nid)
    return nid


def nestful_answer(calls: list[dict[str, Any]], tools: dict[str, dict[str, Any]]) -> Document | None:
    """The gold ``calls`` as a chain of tool calls at ``TARGET``; None when a call names
    an unknown API, reads an output that no earlier call wrote, or lacks a required
    argument. Argument values are strings; one the reference runtime would read as a
    number, boolean or null (``"500"``, ``"true"``) gets a trailing space, the form the
    grammar leaves open for it (``"500 "`` reaches the tool as text)."""
    taken: set[str] = set()
    keys: dict[str, str] = {}
    specs: list[tuple[str, str, dict[str, str], str]] = []
    for i, call in enumerate(c for c in calls if c.get("name") != RESULT_CALL):
        name = tool_name(str(call.get("name", "")))
        tool = tools.get(name)
        if tool is None:
            return None
        declared = [a["name"] for a in tool["arguments"]]
        given = call.get("arguments") or {}
        args: dict[str, str] = {}
        for arg in declared:  # the tool's order: required first
            if arg in given:
                value = _value(given[arg], keys)
                if value is None:
                    return None
                if not reads_as_string(value):
                    value += " "  # "500" would reach the tool as a number, "500 " as text
                args[arg] = value
        if any(a["required"] and a["name"] not in args for a in tool["arguments"]):
            return None  # NESTFUL's gold omits a required argument now and then
        label = str(call.get("label") or f"var{i + 1}")
        key = label if re.fullmatch(r"var\d+", label) else f"var{i + 1}"
        keys[label] = key
        specs.append((_node_id(name, taken), name, args, key))
    if not specs:
        return None
    end_id = _node_id("done", taken)
    ids = ["start"] + [s[0] for s in specs] + [end_id]
    nxt = {a: (f"{TARGET}/{b}",) for a, b in zip(ids, ids[1:], strict=False)}
    nodes: list[ast.Node] = [ast.Start(id="start", next=nxt["start"])]
    for nid, name, args, key in specs:
        nodes.append(ast.ToolCall(id=nid, tool=name, arguments=args, output_keys=(key,), next=nxt[nid]))
    nodes.append(ast.End(id=end_id, next=None))
    return Document(blocks=(Subgraph(path=TARGET, entry="start", nodes=tuple(nodes)),))


def chat_example(request: dict[str, Any], answer: str, chat: ChatTemplate, source: str) -> dict[str, Any]:
    """One corpus record; raises ValueError when ``answer`` does not validate."""
    p = plan(GenerateRequest.from_json(request))
    errors = [d for d in dsl.check_text(answer, p.validation_policy()) if d.is_error]
    if errors:
        raise ValueError(f"{source}: answer does not validate: {'; '.join(map(str, errors))}\n{answer}")
    return {"source": source, "request": request, "prompt": p.render_prompt(chat), "answer": answer}


def nestful_examples(split: str, chat: ChatTemplate, *, variants: int = 4,
                     max_nodes: int = 12, max_tokens: int = 768, outputs: bool = True) -> Iterator[dict[str, Any]]:
    """Every usable sample of a training split, ``variants`` tool choices each;
    ``outputs`` lists each API's output fields on its line (:func:`tool_json`)."""
    if split not in TRAIN_SPLITS:
        raise ValueError(f"{split!r} is not a training split ({', '.join(TRAIN_SPLITS)})")
    data_file, spec_file = SPLITS[split]
    root = nestful_dir()
    samples = json.loads((root / data_file).read_text(encoding="utf-8"))
    tools = [tool_json(a, outputs=outputs) for a in json.loads((root / spec_file).read_text(encoding="utf-8"))]
    by_name = {t["name"]: t for t in tools}
    for i, s in enumerate(samples):
        doc = nestful_answer(list(s["output"]), by_name)
        if doc is None or len(doc.blocks[0].nodes) > max_nodes:
            continue
        answer = dsl.dumps(doc)
        need = {n.tool for n in doc.blocks[0].nodes if isinstance(n, ast.ToolCall)}
        for v in range(variants):
            others = [t for t in tools if t["name"] not in need]
            random.Random(f"train-{split}-{i}-{v}").shuffle(others)
            pick = need | {t["name"] for t in others[:max(0, TOOLS_PER_REQUEST - len(need))]}
            request = {
                "target_path": TARGET, "prompt": " ".join(str(s["input"]).split()),
                "tools": [t for t in tools if t["name"] in pick],
                "budget": {"max_nodes": max_nodes, "max_tokens": max_tokens},
            }
            yield chat_example(request, answer, chat, f"nestful-{split}")


def family_examples(count: int, seed: int, chat: ChatTemplate, *, max_nodes: int = 12,
                    max_tokens: int = 768) -> Iterator[dict[str, Any]]:
    """``count`` identifier-resolving requests (:mod:`training.api_families`) in the
    NESTFUL format: their APIs plus other providers' up to ``TOOLS_PER_REQUEST``
    tools, in a shuffled order."""
    rng = random.Random(f"families-{seed}")
    for fr in iter_requests(count, seed):
        tools = [tool_json(a) for a in fr.tools]
        by_name = {t["name"]: t for t in tools}
        doc = nestful_answer(list(fr.calls), by_name)
        if doc is None:
            raise ValueError(f"family request does not convert: {fr}")
        extra = [tool_json(a) for a in distractors(rng, set(fr.brands))]
        granted = tools + extra[:max(0, TOOLS_PER_REQUEST - len(tools))]
        rng.shuffle(granted)
        request = {"target_path": TARGET, "prompt": fr.goal, "tools": granted,
                   "budget": {"max_nodes": max_nodes, "max_tokens": max_tokens}}
        yield chat_example(request, dsl.dumps(doc), chat, "families")


def scenario_examples(count: int, seed: int, chat: ChatTemplate, *, vary: bool = True) -> Iterator[dict[str, Any]]:
    """``count`` scenario-generator examples, framed for the instruct model; ``vary``
    draws tool aliases, phrasings and lookup chains (:mod:`training.variants`)."""
    rng = random.Random(seed)
    for _ in range(count):
        ex = make_example(rng, vary=vary)
        yield chat_example(ex.request, ex.answer, chat, "scenario")


class GrammarFilter:
    """Keeps the examples whose answer the serving grammar writes token by token (the
    plan's own grammar, the default ``agenticrt`` target, the model's tokenizer and
    the request's token budget): the scenario generator also writes reads the
    runtime does not guarantee (a key written only in a fork branch, behind a retry
    jump), which the grammar never offers and the model must not learn."""

    def __init__(self, loaded: Any) -> None:
        from agentic_llm.grammar import GrammarCompiler, TokenizerInfo

        self.tokenizer = loaded.tokenizer
        info = TokenizerInfo.from_tokenizer(loaded.tokenizer, vocab_size=loaded.config.vocab_size,
                                            name=str(loaded.model_dir))
        self.compiler = GrammarCompiler(info)
        self.dropped: dict[str, int] = {}

    def accepts(self, record: dict[str, Any]) -> bool:
        from agentic_llm.grammar.walk import check_text as feed

        p = plan(GenerateRequest.from_json(record["request"]))
        ids = self.tokenizer.encode(record["answer"], add_special_tokens=False).ids
        ok, _ = feed(self.compiler.matcher_for(p, max_tokens=p.max_tokens), ids)
        if not ok:
            self.dropped[record["source"]] = self.dropped.get(record["source"], 0) + 1
        return ok


def main(argv: list[str] | None = None) -> int:
    """Command line: write ``train.jsonl`` (shuffled, seeded) under ``--out``."""
    from agentic_llm.engine.loader import load_model

    p = argparse.ArgumentParser(prog="python -m training.chat_corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the instruct checkpoint (its chat template frames prompts)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--scenarios", type=int, default=3000, help="scenario-generator examples drawn")
    p.add_argument("--variants", type=int, default=4, help="tool choices per NESTFUL sample")
    p.add_argument("--families", type=int, default=1200,
                   help="identifier-resolving API requests drawn (training.api_families)")
    p.add_argument("--no-tool-outputs", dest="tool_outputs", action="store_false",
                   help="leave NESTFUL APIs' output fields off their tool lines (the first adapter's corpus)")
    p.add_argument("--seed", type=int, default=2026)
    args = p.parse_args(argv)
    loaded = load_model(args.model)
    chat = ChatTemplate.from_loaded(loaded)
    if chat is None:
        print(f"error: {args.model} ships no chat template", file=sys.stderr)
        return 2
    keep = GrammarFilter(loaded)
    records = [r for split in TRAIN_SPLITS
               for r in nestful_examples(split, chat, variants=args.variants, outputs=args.tool_outputs)
               if keep.accepts(r)]
    n_nestful = len(records)
    records += [r for r in family_examples(args.families, args.seed, chat) if keep.accepts(r)]
    n_families = len(records) - n_nestful
    records += [r for r in scenario_examples(args.scenarios, args.seed, chat) if keep.accepts(r)]
    random.Random(args.seed).shuffle(records)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "train.jsonl").open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} examples ({n_nestful} from NESTFUL glaive+sgd, {n_families} identifier-"
          f"resolving API requests, {len(records) - n_nestful - n_families} from the scenario generator) to {args.out / 'train.jsonl'}; "
          f"left out as the grammar would not write them: {keep.dropped}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
