"""Where a constrained decode step spends its extra time, in one process.

Runs the same batch of real requests constrained (jump-forward off, every token a
decode step) and unconstrained at the same output lengths, alternating, on one
engine with the compiled decode step, and times the phases of every compiled decode
step: the compiled call, the rest of the forward (inputs, K/V writes), sampling
(waiting for the mask, applying it, taking tokens) and the rest of the step
(scheduling, batch building, outputs); and the mask worker's time per step (taking
the pending tokens and filling the masks). Per run it reports the mean of each phase
over compiled steps and the median TPOT; the summary is the median over rounds.

    python bench/constrained_steps.py [--batch 8] [--rounds 5] [--pad-fill-us N] [--json]

``--pad-fill-us N`` makes every worker fill run N microseconds of plain Python after
its real work (still beside the compiled call): how much more the call slows per
microsecond of fill says what a cheaper fill would buy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from _constrained import constrained_batch

from agentic_llm.benchmarks.report import emit, print_table, progress

PHASES = ("step", "call", "forward_rest", "sample", "step_rest", "mask_work")


def _timed(store: dict[str, float], key: str, fn: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            store[key] = time.perf_counter() - t0
    return wrapper


def _padded(fn: Any, pad_s: float) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out = fn(*args, **kwargs)
        end = time.perf_counter() + pad_s
        x = 0
        while time.perf_counter() < end:
            for i in range(20):
                x += i
        return out
    return wrapper


def run(args: argparse.Namespace) -> dict[str, Any]:
    import agentic_llm.engine.stepper as stepper
    from agentic_llm.engine import SamplingParams

    engine, compiler, plans, prompts = constrained_batch(args.batch)
    comp = engine.model.decode_runner.compiled
    if comp is None or comp.failed:
        raise SystemExit("the compiled decode step is off here")

    cur: dict[str, float] = {}
    steps: list[dict[str, float]] = []
    comp.run = _timed(cur, "call", comp.run)  # type: ignore[method-assign]
    model_cls = type(engine.model)
    call_model = model_cls.__call__
    sample_and_advance = stepper._sample_and_advance
    stepper._sample_and_advance = _timed(cur, "sample", sample_and_advance)
    step = engine.step

    def timed_step() -> Any:
        cur.clear()
        t0 = time.perf_counter()
        out = step()
        cur["step"] = time.perf_counter() - t0
        steps.append(dict(cur))
        return out

    engine.step = timed_step  # type: ignore[method-assign]
    filler = engine.mask_filler
    fill = filler._fill
    if args.pad_fill_us > 0:
        fill = _padded(fill, args.pad_fill_us * 1e-6)
    filler._fill = _timed(cur, "mask_work", fill)  # type: ignore[method-assign]
    model_cls.__call__ = _timed(cur, "forward", call_model)  # type: ignore[method-assign]
    per_run: dict[str, list[dict[str, float]]] = {"constrained": [], "unconstrained": []}
    try:
        for _ in progress(range(args.rounds), total=args.rounds, desc="rounds", enabled=not args.json):
            steps.clear()
            outs = engine.generate(prompts, [SamplingParams(max_tokens=p.max_tokens, jump_forward=False)
                                             for p in plans], [compiler.matcher_for(p) for p in plans])
            per_run["constrained"].append(_summary(steps, outs))
            lengths = [len(o.output_token_ids) for o in outs]
            steps.clear()
            outs = engine.generate(prompts, [SamplingParams(max_tokens=max(1, n), ignore_eos=True, jump_forward=False)
                                             for n in lengths])
            per_run["unconstrained"].append(_summary(steps, outs))
    finally:
        model_cls.__call__ = call_model  # type: ignore[method-assign]
        stepper._sample_and_advance = sample_and_advance
        engine.close()
    med = {mode: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for mode, runs in per_run.items()}
    return {"batch": args.batch, "rounds": args.rounds, "pad_fill_us": args.pad_fill_us, "median_ms": med,
            "delta_ms": {k: med["constrained"][k] - med["unconstrained"][k] for k in med["constrained"]},
            "runs_ms": per_run}


def _summary(steps: list[dict[str, float]], outs: list[Any]) -> dict[str, float]:
    comp = [s for s in steps if "call" in s]
    out = {k: 1e3 * statistics.mean(s.get(k, 0.0) for s in comp)
           for k in ("step", "call", "forward", "sample", "mask_work")}
    out["forward_rest"] = out.pop("forward") - out["call"]
    out["step_rest"] = out["step"] - out["call"] - out["forward_rest"] - out["sample"]
    out["tpot"] = 1e3 * statistics.median((o.metrics.finish_time - o.metrics.first_token_time)
                                          / max(1, len(o.output_token_ids) - 1) for o in outs)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--pad-fill-us", type=float, default=0.0,
                   help="plain Python work added to every worker fill (microseconds)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    result = run(args)
    emit(result, as_json=args.json)
    if not args.json:
        m, d = result["median_ms"], result["delta_ms"]
        rows = [[k, m["constrained"][k], m["unconstrained"][k], d[k]] for k in ("tpot", *PHASES)]
        print_table(["per compiled step (ms)", "constrained", "unconstrained", "difference"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
