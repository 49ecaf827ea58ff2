"""What the reference runtime would refuse in generated documents: counts per problem.

Two document sets: the shipped model's outputs for the 200 held-out requests of
``bench/validity_requests.jsonl`` (greedy, constrained), and grammar random walks
over varied plans (tools, fork/join, ``max_nodes`` 1-64, ``/lib`` targets). Each
document is checked with ``tests/grammar/runtime_check.py``, which runs the
package's model of the reference's parse and graph build (``check_runtime``, with the
request's library paths loaded, as the program the document is appended to holds
them) and flags every string the reference reads as a number, boolean or null. The same requests and plans serve any checkout, so running it on
two commits compares them.

    PYTHONPATH=. python bench/runtime_conformance.py [--walks 300] [--requests 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.grammar.runtime_check import problems  # noqa: E402

KINDS = ("end_soft", "misread", "oversized", "unresolved")
WALK_TOKENS = 1500


def _tally(texts: list[tuple[str, tuple[str, ...]]]) -> dict[str, Any]:
    counts = dict.fromkeys(KINDS, 0)
    bad = 0
    examples: dict[str, str] = {}
    for text, loaded in texts:
        found = problems(text, loaded)
        for k in KINDS:
            if found[k]:
                counts[k] += 1
                examples.setdefault(k, found[k][0])
        bad += any(found.values())
    return {"documents": len(texts), "with_problem": bad, **counts, "examples": examples}


def walk_plans(n: int, seed: int) -> list[Any]:
    """The plans of the walk set (the same for every checkout)."""
    from agentic_llm.benchmarks.grammar import _request
    from agentic_llm.planner import GenerateRequest, PlanRefusal, plan

    rng = random.Random(seed)
    out = []
    for i in range(n):
        req = _request(rng.choice([0, 1, 3, 10, 50]), target=f"/dynamic/w{i}")
        req["budget"] = {"max_nodes": rng.randint(1, 64), "max_tokens": 8192}
        req["context"]["permissions"] = ["tool:*", "llm_call", "generate_subgraph"]
        if rng.random() < 0.5:
            req["library"] = []
        if i % 4 == 3:
            req["target_path"] = f"/lib/bench/op_{i}"
            req["namespaces"] = ["/lib/bench"]
            req["signature"] = "(query: string) -> answer: string"
        try:
            out.append(plan(GenerateRequest.from_json(req)))
        except PlanRefusal:
            out.append(None)
    return out


def run_walks(n: int, seed: int) -> dict[str, Any]:
    from agentic_llm.grammar import GrammarCompiler, TokenizerInfo
    from agentic_llm.grammar.walk import random_walk

    compiler = GrammarCompiler(TokenizerInfo.from_qwen())
    rng = random.Random(seed + 1)
    texts, incomplete, refused = [], 0, 0
    for p in walk_plans(n, seed):
        if p is None:
            refused += 1
            continue
        # the matcher's budget closes every walk within WALK_TOKENS (grammar.budget); the
        # walk's own cap sits above it, so an incomplete walk is a real failure
        m = compiler.matcher_for(p, max_string=24, max_tokens=WALK_TOKENS)
        r = random_walk(m, compiler.vocab, rng, max_tokens=WALK_TOKENS + 64)
        if not r.completed:
            incomplete += 1
            continue
        texts.append((r.text, tuple(e.path for e in p.library)))
    return {**_tally(texts), "refused_plans": refused, "incomplete": incomplete}


def run_model(n: int) -> dict[str, Any]:
    from agentic_llm.models import shipped_model_dir
    from agentic_llm.serving.local import LocalGenerator

    reqs = [json.loads(line) for line in (HERE / "validity_requests.jsonl").open(encoding="utf-8")][:n]
    gen = LocalGenerator(shipped_model_dir(), max_num_seqs=16)
    try:
        results = []
        for i in range(0, len(reqs), 16):
            results += gen.generate(reqs[i:i + 16], honour_timeouts=False)
    finally:
        gen.close()
    texts = []
    invalid = 0
    for req, r in zip(reqs, results, strict=True):
        if not r.valid:
            invalid += 1
            continue
        texts.append((r.text, tuple(e["path"] for e in req.get("library") or [])))
    return {**_tally(texts), "invalid": invalid}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--walks", type=int, default=300)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    out = {"model": run_model(args.requests) if args.requests else None,
           "walks": run_walks(args.walks, args.seed) if args.walks else None}
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(out))
    else:
        for name in ("model", "walks"):
            r = out[name]
            if r is None:
                continue
            print(f"{name}: {r['documents']} documents, {r['with_problem']} with a problem: "
                  + ", ".join(f"{k} {r[k]}" for k in KINDS))
            for k, v in r["examples"].items():
                print(f"  e.g. {k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
