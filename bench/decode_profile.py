"""Where a batched decode step's time goes, and what its matmuls cost from memory.

Starts an engine as ``bench engine`` does (the radix prefix cache ``serve`` uses, a
pool whose decode workspace holds the batch), prefills ``--batch`` prompts rendered
from the validity requests, then:

1. times ``--steps`` decode steps (wall per step, and the model forward alone);
2. profiles the same number of steps with ``torch.profiler`` and groups the ops'
   self time into matmuls (by weight shape), attention (the SDPA kernel), K/V
   writes (``index_copy_``) and everything else;
3. times each layer matmul shape of the step twice: on one weight matrix, read
   again and again (it stays in the CPU caches), and on as many distinct matrices
   as the model has layers (streamed from memory, as in a real step). A per-step
   estimate from the first underestimates the step.

    python3 bench/decode_profile.py --model "$G" --threads 2 --batch 8 [--compiled] [--dtype bfloat16]

Prints one JSON object (``--out`` also writes it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _median_ms(fn: Any, n: int) -> float:
    fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1e3 * statistics.median(ts)


def _engine(model: Path, args: argparse.Namespace, dtype: torch.dtype) -> tuple[Any, list[list[int]]]:
    from agentic_llm.benchmarks.engine import _requests
    from agentic_llm.benchmarks.engine_systems import pool_bytes
    from agentic_llm.cache import RadixCache
    from agentic_llm.engine import LLMEngine, SamplingParams
    from agentic_llm.engine.engine_config import EngineConfig
    from agentic_llm.engine.loader import load_model
    from agentic_llm.planner import GenerateRequest, plan

    loaded = load_model(model, dtype=dtype)
    reqs = _requests(None, 3 * args.batch + 2)[: 3 * args.batch + 2]
    prompts = [loaded.tokenizer.encode(plan(GenerateRequest.from_json(r)).render_prompt()).ids for r in reqs]
    context = max(len(p) for p in prompts) + 2 * args.steps + 8
    cfg = EngineConfig(dtype=dtype, max_num_seqs=args.batch, compile_decode=args.compiled,
                       kv_memory_bytes=pool_bytes(loaded.config, args.batch, context, elem=dtype.itemsize))
    engine = LLMEngine(loaded, cfg, prefix_cache=RadixCache)
    engine.generate(prompts[:2], SamplingParams(max_tokens=4, ignore_eos=True))  # warm-up (and compile)
    return engine, prompts[2:]


def _decode_phase(engine: Any, prompts: list[list[int]], steps: int, fn: Any) -> Any:
    """Prefill ``prompts``, run ``fn(steps)`` while they all decode, drain."""
    from agentic_llm.engine import SamplingParams

    for p in prompts:
        engine.add_request(p, SamplingParams(max_tokens=steps + 8, ignore_eos=True))
    running = engine.scheduler.running
    while len(running) < len(prompts) or any(r.num_output_tokens < 1 for r in running):
        engine.step()
    out = fn(steps)
    while engine.has_unfinished_requests():
        engine.step()
    return out


def _category(name: str, shapes: list[Any]) -> str:
    if name in ("aten::mm", "aten::addmm", "mkldnn::_linear_pointwise"):
        return f"matmul {shapes[-1] if name != 'mkldnn::_linear_pointwise' else shapes[0]}"
    if name.startswith("native::rows_matmul"):
        return f"matmul {name.split(' ', 1)[1]}"
    if name in ("aten::bmm", "aten::_softmax"):
        return "attention"
    if name.startswith("aten::_scaled_dot_product"):
        return "attention"
    if name == "aten::index_copy_":
        return "kv write"
    return "other"


def _profile(engine: Any, steps: int) -> dict[str, float]:
    from torch.profiler import ProfilerActivity, profile

    from agentic_llm.engine.native import RowsMatmul

    inner = RowsMatmul.__call__

    def labelled(self: Any, x: torch.Tensor, w: torch.Tensor) -> Any:
        # the C kernel is no torch op: named here so the profile sees it
        with torch.profiler.record_function(f"native::rows_matmul {list(w.shape)}"):
            return inner(self, x, w)

    RowsMatmul.__call__ = labelled  # type: ignore[method-assign]
    try:
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(steps):
                engine.step()
    finally:
        RowsMatmul.__call__ = inner  # type: ignore[method-assign]
    per: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages(group_by_input_shape=True):
        if ev.key.startswith(("aten::", "mkldnn::", "native::")) and ev.self_cpu_time_total > 0:
            per[_category(ev.key, list(ev.input_shapes or []))] += ev.self_cpu_time_total / 1e3 / steps
    return dict(sorted(per.items(), key=lambda kv: -kv[1]))


def _matmul_memory(engine: Any, rows: int, repeat: int) -> list[dict[str, Any]]:
    """Each distinct layer weight shape: one matrix re-read vs one matrix per layer,
    through the step's own matmul (``decoder_step.linear``: the packs and the C kernel)."""
    from agentic_llm.engine.models.decoder_step import linear

    weights = engine.model.weights()
    layers = weights.layers
    out = []
    for field in ("qkv", "o", "gate_up", "down"):
        mats = [getattr(w, field) for w in layers]
        x = torch.randn(rows, mats[0].shape[1], dtype=mats[0].dtype)
        hot = _median_ms(lambda m=mats[0], x=x: linear(x, m), repeat)
        stream = _median_ms(lambda ms=mats, x=x: [linear(x, m) for m in ms], repeat) / len(mats)
        nbytes = mats[0].numel() * mats[0].element_size()
        out.append({"weight": field, "shape": list(mats[0].shape), "cache_hot_ms": hot, "streamed_ms": stream,
                    "streamed_gb_s": nbytes / stream / 1e6, "per_step_hot_ms": hot * len(mats),
                    "per_step_streamed_ms": stream * len(mats)})
    head = weights.head
    x = torch.randn(rows, head.shape[1], dtype=head.dtype)
    ms = _median_ms(lambda: linear(x, head), repeat)
    out.append({"weight": "head", "shape": list(head.shape), "streamed_ms": ms, "per_step_streamed_ms": ms,
                "streamed_gb_s": head.numel() * head.element_size() / ms / 1e6})
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="checkpoint directory or .gguf file")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--compiled", action="store_true", help="the compiled decode step (else the eager one)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    from agentic_llm.benchmarks.report import cpu_model

    engine, prompts = _engine(Path(args.model), args, dtype)
    fwd: list[float] = []
    model = engine.model
    inner = model.forward

    def timed_forward(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        out = inner(*a, **k)
        fwd.append(time.perf_counter() - t)
        return out

    def wall(steps: int) -> tuple[list[float], list[float]]:
        fwd.clear()
        ts = []
        for _ in range(steps):
            t = time.perf_counter()
            engine.step()
            ts.append(time.perf_counter() - t)
        return ts, list(fwd)

    b = args.batch
    model.forward = timed_forward
    walls, fwd_steps = _decode_phase(engine, prompts[:b], args.steps, wall)
    del model.forward  # the class's method again
    context = statistics.median(len(q) for q in prompts[:b]) + args.steps
    profile = _decode_phase(engine, prompts[b:2 * b], args.steps, lambda n: _profile(engine, n))
    matmuls = _matmul_memory(engine, b, 10)
    st = engine.stats()
    result = {
        "cpu": cpu_model(), "threads": args.threads, "dtype": args.dtype, "batch": b,
        "step": "compiled" if args.compiled else "eager", "context_median": context,
        "step_ms_median": 1e3 * statistics.median(walls),
        "forward_ms_median": 1e3 * statistics.median(fwd_steps) if fwd_steps else None,
        # torch ops run from Python (the compiled step runs inside one C++ call instead)
        "profile_self_ms_per_step": profile,
        "matmuls": matmuls,
        "matmul_ms_per_step_cache_hot": sum(m.get("per_step_hot_ms", m["per_step_streamed_ms"]) for m in matmuls),
        "matmul_ms_per_step_streamed": sum(m["per_step_streamed_ms"] for m in matmuls),
        "fast_decode_steps": st["fast_decode_steps"], "compiled_decode_steps": st["compiled_decode_steps"],
    }
    engine.close()
    text = json.dumps(result, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
