"""Constrained vs unconstrained TPOT at batch 8 in one process, alternating runs.

By default in ``serve``'s default configuration: the engine is built as the
``default`` profile builds it (the default model with its adapter, float32, eager
decode step unless ``--compile``, torch's default thread count unless
``--threads``), prompts are rendered as the pipeline renders them (the model's
chat template), and matchers are built as the pipeline builds them (with the token
limit; ``--no-budget``: without it). Requests are the engine bench's. Each round
runs the constrained requests, then the same prompts unconstrained at the same
lengths; the medians are reported. Also used to bisect changes of the constrained
overhead: run it with ``PYTHONPATH`` pointing at each checkout.

    python bench/constrained_tpot.py [--rounds 5] [--no-budget] [--compile] [--threads N] [--json]
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
    ap.add_argument("--compile", action="store_true", help="compiled decode step (serve: model.compile_decode)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's, as serve)")
    ap.add_argument("--model", default="", help="checkpoint (default: serve's default model)")
    args = ap.parse_args()

    import torch

    from agentic_llm.benchmarks.engine import _requests, _tpot
    from agentic_llm.benchmarks.report import cpu_model, display_path
    from agentic_llm.config import load_config
    from agentic_llm.engine import SamplingParams
    from agentic_llm.planner import GenerateRequest, plan
    from agentic_llm.planner.chat import ChatTemplate
    from agentic_llm.serving.build import build_compiler, build_engine, resolve_model_dir

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    config = load_config("default", {"model.compile_decode": args.compile, "limits.max_concurrent": 8})
    model_dir = resolve_model_dir(args.model)
    # eight requests (run from the repository root, _requests returns every request
    # of bench/validity_requests.jsonl: 200, which took 25 times as long)
    plans = [plan(GenerateRequest.from_json(r)) for r in _requests(None, 8)[:8]]
    engine = build_engine(config, model_dir)
    chat = ChatTemplate.from_engine(engine) if config.model.chat_template else None
    prompts = [engine.tokenizer.encode(p.render_prompt(chat)).ids for p in plans]
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
    adapter = getattr(engine.loaded, "adapter", None)
    result = {"model": display_path(model_dir), "adapter": display_path(adapter) if adapter else None,
              "cpu": cpu_model(), "torch_threads": torch.get_num_threads(), "compiled": args.compile,
              "rounds": args.rounds, "budget": not args.no_budget, "tpot_constrained_ms": c * 1e3,
              "tpot_unconstrained_ms": u * 1e3, "overhead": c / u - 1}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"constrained TPOT {c * 1e3:.3f} ms, unconstrained {u * 1e3:.3f} ms: "
              f"overhead {100 * (c / u - 1):+.1f}% (batch 8, median of {args.rounds}; {model_dir.name}, "
              f"{torch.get_num_threads()} torch threads, {'compiled' if args.compile else 'eager'} step)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
