"""Jump-forward on and off through the serving pipeline, same requests, one process.

The default model (SmolLM2-135M-Instruct with the shipped adapter when installed,
else ``--model``), our held-out natural requests (``bench quality --split ours``),
all in flight together; each round runs both settings, alternating which goes
first. Reports the median wall time of each, the decode steps and forced tokens,
how many documents came out the same and how many are valid.

    python bench/jump_forward.py [--requests 8] [--rounds 3] [--model PATH] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=8, help="held-out requests in flight together")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of both settings (medians)")
    ap.add_argument("--model", default=None, help="checkpoint (default: the default model)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    from agentic_llm.benchmarks.quality import heldout_cases
    from agentic_llm.benchmarks.report import cpu_model
    from agentic_llm.serving.local import LocalGenerator

    reqs = [c.request for c in heldout_cases()[:args.requests]]
    gens = {on: LocalGenerator(args.model, jump_forward=on, max_num_seqs=len(reqs)) for on in (True, False)}
    walls: dict[bool, list[float]] = {True: [], False: []}
    last: dict[bool, list] = {}
    try:
        for r in range(args.rounds):
            for on in ((True, False) if r % 2 == 0 else (False, True)):
                t0 = time.perf_counter()
                last[on] = gens[on].generate(reqs)
                walls[on].append(time.perf_counter() - t0)
    finally:
        for g in gens.values():
            g.close()

    def totals(on: bool) -> dict[str, float]:
        res = last[on]
        return {"wall_s_median": statistics.median(walls[on]), "valid": sum(x.valid for x in res),
                "decode_steps": sum(x.timings.decode_steps for x in res if x.timings),
                "forced_tokens": sum(x.timings.forced_tokens for x in res if x.timings),
                "output_tokens": sum(x.timings.output_tokens for x in res if x.timings)}

    out = {"cpu": cpu_model(), "model": str(gens[True].model_dir), "requests": len(reqs), "rounds": args.rounds,
           "with": totals(True), "without": totals(False),
           "same_documents": sum(a.text == b.text for a, b in zip(last[True], last[False], strict=True))}
    out["wall_ratio_without_over_with"] = out["without"]["wall_s_median"] / out["with"]["wall_s_median"]
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        for k in ("with", "without"):
            print(f"{k:>8} jump-forward: wall {out[k]['wall_s_median']:.1f} s, {out[k]['decode_steps']} decode steps "
                  f"+ {out[k]['forced_tokens']} forced, {out[k]['valid']}/{len(reqs)} valid")
        print(f"wall time without / with: {out['wall_ratio_without_over_with']:.2f}x; same documents "
              f"{out['same_documents']}/{len(reqs)} ({out['cpu']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
