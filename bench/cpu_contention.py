"""How much a busy second CPU slows the compiled decode step, in one process.

The mask worker fills constraint masks on another CPU while the compiled decode step
runs (``engine.masking``). Where the two CPUs share a physical core (SMT siblings on
many cloud machines) or its caches, that work slows the step even without touching
the GIL. This script times the compiled step (one torch thread, pinned to the first
allowed CPU) alone and with a separate process spinning on a second CPU: a pure
Python loop, and a loop that allocates like the grammar code does. Rounds alternate,
so a shared machine's drift falls on both sides alike.

    python bench/cpu_contention.py [--batch 8] [--keys 160] [--rounds 6] [--json]

Reports median step times and their ratio to the step alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from agentic_llm.benchmarks.report import emit, print_table, progress

LOADS = {
    "spin": "while True:\n    pass\n",
    "alloc": "d = {}\nwhile True:\n    for i in range(100000):\n        d[i] = str(i)\n    d.clear()\n",
}


def _step_inputs(batch: int, keys: int) -> tuple[Any, tuple[Any, ...]]:
    """The engine's compiled decode step and inputs of its shape for ``batch`` rows
    attending over ``keys`` earlier positions."""
    import torch

    from agentic_llm.engine import LLMEngine, SamplingParams
    from agentic_llm.models import default_model_dir

    engine = LLMEngine.from_pretrained(default_model_dir(), device="cpu", dtype=torch.float32,
                                       max_num_seqs=2, compile_decode=True)
    comp = engine.model.decode_runner.compiled
    if comp is None:
        raise SystemExit("this engine has no compiled decode step")
    seen: dict[str, tuple[Any, ...]] = {}
    run = comp.run

    def capture(*args: Any, **kwargs: Any) -> Any:
        seen["args"] = args
        return run(*args, **kwargs)

    comp.run = capture  # type: ignore[method-assign]
    engine.generate([[5, 6, 7, 8]] * 2, SamplingParams(max_tokens=4, ignore_eos=True))  # compiles the step
    comp.run = run  # type: ignore[method-assign]
    if comp.failed or "args" not in seen:
        raise SystemExit(f"the compiled decode step is off here: {comp.failed or 'it never ran'}")
    h, _pos, cos, sin, ws, flat, qk = seen["args"][:7]
    layers, heads2, _rows, _cap, d = ws.shape
    inputs = (torch.randn(batch, h.shape[1]), torch.full((batch,), keys - 1, dtype=torch.long),
              torch.randn(batch, *cos.shape[1:]), torch.randn(batch, *sin.shape[1:]),
              torch.randn(layers, heads2, batch, keys, d), flat, qk)
    return run, inputs


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("needs two CPUs")
    torch.set_num_threads(1)
    os.sched_setaffinity(0, {cpus[0]})
    step, inputs = _step_inputs(args.batch, args.keys)

    def median_step(n: int = 60) -> float:
        for _ in range(5):
            step(*inputs)
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            step(*inputs)
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    times: dict[str, list[float]] = {"alone": [], **{k: [] for k in LOADS}}
    for _ in progress(range(args.rounds), total=args.rounds, desc="rounds", enabled=not args.json):
        for name in times:
            proc = None
            if name != "alone":
                code = f"import os\nos.sched_setaffinity(0, {{{cpus[1]}}})\n" + LOADS[name]
                proc = subprocess.Popen([sys.executable, "-c", code])
                time.sleep(0.2)
            try:
                times[name].append(median_step())
            finally:
                if proc is not None:
                    proc.kill()
                    proc.wait()
    alone = statistics.median(times["alone"])
    return {"batch": args.batch, "keys": args.keys, "rounds": args.rounds,
            "step_s": {k: statistics.median(v) for k, v in times.items()},
            "slowdown": {k: statistics.median(v) / alone - 1 for k, v in times.items() if k != "alone"}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8, help="rows in the decode step")
    p.add_argument("--keys", type=int, default=160, help="earlier positions each row attends over")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    result = run(args)
    emit(result, as_json=args.json)
    if not args.json:
        rows = [[name, result["step_s"][name] * 1e3, f"{100 * result['slowdown'].get(name, 0.0):+.1f}%"]
                for name in result["step_s"]]
        print_table(["second CPU", "step (ms)", "vs alone"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
