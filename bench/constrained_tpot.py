"""Constrained vs unconstrained TPOT at batch 8 in one process, alternating runs.

The shipped model, the engine bench's requests, matchers built as the serving
pipeline builds them (with the token limit; ``--no-budget``: without it), compiled
decode step, 1 torch thread. Each round runs the constrained requests, then the
same prompts unconstrained at the same lengths; the medians are reported. Used to
bisect changes of the constrained overhead: run it with ``PYTHONPATH`` pointing at
each checkout.

    python bench/constrained_tpot.py [--rounds 5] [--no-budget] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians)")
    ap.add_argument("--no-budget", action="store_true", help="matchers without the token limit")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    import torch

    from agentic_llm.benchmarks.engine import _requests, _tpot
    from agentic_llm.engine import LLMEngine, SamplingParams
    from agentic_llm.models import default_model_dir
    from agentic_llm.planner import GenerateRequest, plan
    from agentic_llm.serving.build import build_compiler

    torch.set_num_threads(1)
    model_dir = default_model_dir()
    plans = [plan(GenerateRequest.from_json(r)) for r in _requests(None, 8)]
    engine = LLMEngine.from_pretrained(model_dir, device="cpu", dtype=torch.float32, max_num_seqs=8,
                                       compile_decode=True)
    prompts = [engine.tokenizer.encode(p.render_prompt()).ids for p in plans]
    compiler = build_compiler(model_dir, engine)

    def constrained() -> list:
        # without the keyword under --no-budget: commits older than the token budget
        # do not take it
        matchers = [compiler.matcher_for(p) if args.no_budget else compiler.matcher_for(p, max_tokens=p.max_tokens)
                    for p in plans]
        params = [SamplingParams(max_tokens=p.max_tokens, jump_forward=False) for p in plans]
        return engine.generate(prompts, params, matchers)

    constrained()  # warm-up: decode compile, first fills
    tpot_c, tpot_u = [], []
    for _ in range(args.rounds):
        outs = constrained()
        tpot_c.append(_tpot(outs))
        lengths = [len(o.output_token_ids) for o in outs]
        free = engine.generate(prompts, [SamplingParams(max_tokens=n, ignore_eos=True, jump_forward=False)
                                         for n in lengths])
        tpot_u.append(_tpot(free))
    engine.close()
    c, u = statistics.median(tpot_c), statistics.median(tpot_u)
    result = {"rounds": args.rounds, "budget": not args.no_budget, "tpot_constrained_ms": c * 1e3,
              "tpot_unconstrained_ms": u * 1e3, "overhead": c / u - 1}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"constrained TPOT {c * 1e3:.3f} ms, unconstrained {u * 1e3:.3f} ms: "
              f"overhead {100 * (c / u - 1):+.1f}% (batch 8, median of {args.rounds})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
