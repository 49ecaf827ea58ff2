"""Constrained-decoding overhead by mask-fill placement, in one process.

One engine (compiled decode step, one torch thread) runs the same constrained batch
with each ``MaskFiller`` placement in turn, rotating the order every round, and
after each run an unconstrained batch of the same output lengths. The overhead of a
run is its median TPOT over the unconstrained run's, minus one. Alternating inside
one process cancels most of a shared machine's drift, which separate benchmark runs
do not.

    python bench/mask_fill_ab.py [--batch 8] [--rounds 12] [--model DIR] [--json]

Placements: ``inline`` (fill before sampling, on the engine thread), ``worker``
(always the worker thread), ``default`` (the engine's default on a compiled CPU
engine: the worker when the process may use a second CPU, else inline).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from _constrained import constrained_batch

from agentic_llm.benchmarks.report import emit, print_table, progress

PLACEMENTS: tuple[tuple[str, bool | None], ...] = (("inline", False), ("default", None), ("worker", True))


def _tpot(outs: list[Any]) -> float:
    return statistics.median((o.metrics.finish_time - o.metrics.first_token_time) / max(1, len(o.output_token_ids) - 1)
                             for o in outs)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from agentic_llm.engine import SamplingParams
    from agentic_llm.engine.masking import MaskFiller

    engine, compiler, plans, prompts = constrained_batch(args.batch, args.model)
    # a filler's placement is fixed when it is built: one per placement, swapped in
    base = engine.mask_filler
    fillers = {name: MaskFiller(base.vocab_size, overlap, base.device, gil_free_forward=True, spin_s=base.spin_s)
               for name, overlap in PLACEMENTS}
    base.close()
    overheads: dict[str, list[float]] = {name: [] for name, _ in PLACEMENTS}
    for r in progress(range(args.rounds), total=args.rounds, desc="rounds", enabled=not args.json):
        k = r % len(PLACEMENTS)
        for name, _ in PLACEMENTS[k:] + PLACEMENTS[:k]:
            engine.mask_filler = fillers[name]
            params = [SamplingParams(max_tokens=p.max_tokens, jump_forward=False) for p in plans]
            con = engine.generate(prompts, params, [compiler.matcher_for(p) for p in plans])
            unc = engine.generate(prompts, [SamplingParams(max_tokens=max(1, len(o.output_token_ids)), ignore_eos=True,
                                                           jump_forward=False) for o in con])
            overheads[name].append(_tpot(con) / _tpot(unc) - 1)
    compiled = engine.stats()["compiled_decode_off_reason"] == ""
    for filler in fillers.values():
        filler.close()
    return {"batch": args.batch, "rounds": args.rounds, "compiled_decode": compiled,
            "overhead_median": {n: statistics.median(v) for n, v in overheads.items()},
            "overhead_runs": overheads}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.batch < 1 or args.rounds < 1:
        ap.error("--batch and --rounds must be at least 1")
    result = run(args)
    emit(result, as_json=args.json)
    if not args.json:
        print_table(["placement", "overhead, median", "runs"],
                    [[n, f"{m * 100:+.1f}%", " ".join(f"{x * 100:+.0f}" for x in result["overhead_runs"][n])]
                     for n, m in result["overhead_median"].items()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
