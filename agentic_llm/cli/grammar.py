"""``agentic-llm grammar sample|check``: random documents through the masks, or check one.

``sample`` draws N documents, choosing a uniformly random allowed token at each step
(``--check`` also parses and validates each against the plan and counts failures).
``check`` feeds FILE token by token: exit 0 accepted, 1 rejected (and where), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("grammar", help="sample or check documents under a plan's grammar",
                       description=__doc__)
    gs = p.add_subparsers(dest="grammar_cmd", metavar="CMD")
    s = gs.add_parser("sample", help="draw random documents through the token masks",
                      description="Draw random documents through a plan's token masks.")
    s.add_argument("--request", required=True, metavar="REQ.json",
                   help="request JSON file whose plan gives the grammar ('-' reads stdin)")
    s.add_argument("-n", type=int, default=1, help="number of documents")
    s.add_argument("--seed", type=int, default=0, help="random seed of the walks (default 0)")
    s.add_argument("--tokenizer", default="qwen", help="'qwen' or a tokenizer.json path")
    s.add_argument("--check", action="store_true",
                   help="parse, validate and YAML-load every document; exit 1 on any failure")
    s.add_argument("--max-string", type=int, default=48, metavar="CHARS",
                   help="strings close once they reach this many characters (default 48)")
    s.add_argument("--jsonl", action="store_true", help="one JSON object per document")
    s.set_defaults(func=_sample)
    c = gs.add_parser("check", help="check a document token by token",
                      description="Feed a document through a plan's grammar token by token: "
                                  "exit 0 accepted, 1 rejected, 2 usage error.")
    c.add_argument("--request", required=True, metavar="REQ.json",
                   help="request JSON file whose plan gives the grammar ('-' reads stdin)")
    c.add_argument("file", metavar="FILE", help="the AgenticDSL document ('-' reads stdin)")
    c.add_argument("--tokenizer", default="qwen", help="'qwen' or a tokenizer.json path")
    c.set_defaults(func=_check)
    p.set_defaults(func=lambda _a: (p.print_help(sys.stderr), 2)[1])


def _setup(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from agentic_llm.cli.inputs import read_request
    from agentic_llm.grammar import GrammarCompiler, TokenizerInfo
    from agentic_llm.planner import plan

    p = plan(read_request(args.request))
    ti = (TokenizerInfo.from_qwen() if args.tokenizer == "qwen"
          else TokenizerInfo.from_hf_tokenizer_json(args.tokenizer))
    return p, GrammarCompiler(ti)


def _sample(args: argparse.Namespace) -> int:
    import random

    import yaml

    from agentic_llm.dsl import check_text
    from agentic_llm.grammar.walk import random_walk

    if args.n < 1:
        print("agentic-llm: -n must be >= 1", file=sys.stderr)
        return 2
    p, compiler = _setup(args)
    rng = random.Random(args.seed)
    policy = p.validation_policy() if args.check else None
    failures = 0
    for i in range(args.n):
        r = random_walk(compiler.matcher_for(p, max_string=args.max_string), compiler.vocab, rng)
        problems: list[str] = [] if r.completed else [f"walk stopped: {r.reason}"]
        if args.check and r.completed:
            problems += [f"{d.code}: {d.message}" for d in check_text(r.text, policy)
                         if d.severity == "error"]
            try:
                yaml.safe_load(r.text.split("```yaml\n", 1)[1].rsplit("```", 1)[0])
            except Exception as exc:  # noqa: BLE001 - any YAML failure is a finding
                problems.append(f"yaml: {exc}")
        failures += bool(problems)
        if args.jsonl:
            print(json.dumps({"index": i, "text": r.text, "tokens": r.tokens,
                              "problems": problems}, ensure_ascii=False))
        else:
            print(r.text, end="" if r.text.endswith("\n") else "\n")
            for prob in problems:
                print(f"# PROBLEM: {prob}", file=sys.stderr)
    if args.check:
        print(f"{args.n} documents, {failures} failures", file=sys.stderr)
    return 1 if failures else 0


def _check(args: argparse.Namespace) -> int:
    from agentic_llm.cli.inputs import read_text
    from agentic_llm.grammar.walk import check_text

    text = read_text(args.file)
    p, compiler = _setup(args)
    ids = compiler.tokenizer_info.encode(text)
    ok, where = check_text(compiler.matcher_for(p), ids)
    if ok:
        print("accepted")
        return 0
    done = compiler.tokenizer_info.decode(ids[:where])
    line = done.count("\n") + 1
    if where == len(ids):
        print(f"rejected: the document is incomplete at line {line}")
    else:
        bad = compiler.tokenizer_info.decode(ids[where:where + 1])
        print(f"rejected at line {line}, column {len(done) - done.rfind(chr(10))}: "
              f"token {bad!r} is not allowed after {done[-40:]!r}")
    return 1
