"""``agentic-llm bench engine``: our engine against transformers (and vLLM), one run.

On the same machine, model (``--model``: a checkpoint directory or a ``.gguf`` file;
default the model ``serve`` would use) and prompts (rendered from real
generate_subgraph requests), greedy, it measures:

1. Throughput: output tokens/s, TTFT and TPOT at each batch size (default 1, 8, 32)
   for transformers' ``generate`` (left-padded batch, ``min_new_tokens =
   max_new_tokens``), our eager decode step, our compiled decode step (``--steps``),
   and, when ``import vllm`` works, vLLM's offline ``LLM``; every request produces
   exactly ``--new-tokens`` tokens. Each system runs as it serves (ours with the
   radix prefix cache ``serve`` builds, vLLM with its default prefix caching) and no
   call repeats a prompt of an earlier call (``engine_prompts``): transformers and
   vLLM time one output token on a TTFT set, then the measured call on other prompts
   (TPOT = (wall - TTFT) / (new tokens - 1)); ours reads TTFT per request from the
   measured call. Every system runs the same weights: the ones our
   loader produced (a GGUF file dequantized), handed to transformers as a state dict
   and to vLLM as a Hugging Face directory written to a temporary folder. Each row
   reports the share of the first 32 greedy tokens equal to transformers' at that
   batch, and the weight bytes a decode step reads times decode steps per second,
   next to the machine's memory bandwidth measured in the same run (``membw``).
2. Start-up: the compiled step's warm-up (``compile_warmup_s``: its first decode,
   compiled or loaded from the on-disk compile cache; ``--compile-cache fresh``
   measures a first start and a second start on one new cache folder).
3. Constrained decode overhead: TPOT with the grammar matcher (jump-forward off, so
   every token is a decode step) against TPOT without it on the same prompts and the
   same per-request lengths. The grammar compiler is prepared as ``serve`` prepares
   it (standard shapes compiled, mask caches warmed at start-up).
4. Jump-forward: decode steps and wall time for the same constrained requests with
   and without jump-forward. The documents need not be the same: forced text enters
   as the tokenizer splits it, which may differ from the tokens the model would have
   sampled, and the model continues from there (``same_output_share`` counts the
   identical ones). ``forced_token_share`` is the share of the jump-forward run's
   output tokens that took no decode step. Matchers are built as the serving
   pipeline builds them, with the token limit, so every document closes within it
   (``unclosed`` counts those that did not).

Parts 3 and 4 run on the compiled engine when it is measured, else the eager one
(``--no-constrained`` leaves them out). Every figure is the median of ``--repeat``
runs; ratios are candidate / baseline.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from agentic_llm.benchmarks.engine_report import plot_result, print_result
from agentic_llm.benchmarks.report import (
    cpu_model,
    default_plot_path,
    display_path,
    emit,
    median,
    progress,
    ratio,
)
from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["add_arguments", "print_result", "run", "run_benchmark", "TARGETS"]

# Targets from the engine's acceptance criteria (issue 26 for the last four).
TARGETS = {"throughput_ratio_min": 2.0, "constrained_overhead_max": 0.10, "jump_forward_saved_min": 0.30,
           "compile_warmup_max_s": 20.0, "weight_bw_share_min": 0.5, "vllm_ratio_min": 1.2}
_DEFAULT_REQUESTS = Path("bench/validity_requests.jsonl")
STEPS = ("eager", "compiled")
HF = "transformers"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="checkpoint directory or .gguf file (default: the model serve uses)")
    p.add_argument("--batches", default="1,8,32", help="comma-separated batch sizes")
    p.add_argument("--new-tokens", type=int, default=48, help="output tokens per request")
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement (medians)")
    p.add_argument("--steps", default="eager,compiled",
                   help="our decode steps to measure, comma-separated: eager, compiled")
    p.add_argument("--compile-decode", choices=("on", "off"), default=None,
                   help="older spelling: on measures only the compiled step, off only the eager one")
    p.add_argument("--compile-cache", default="default", metavar="DIR|default|fresh|off",
                   help="the compiled step's cache folder: default (the engine's: AGENTIC_COMPILE_CACHE_DIR "
                        "or ~/.cache/agentic-llm/compile), fresh (a new folder: a first start that compiles, "
                        "then a second start that loads, both timed), off, or a folder")
    p.add_argument("--vllm", choices=("auto", "off"), default="auto",
                   help="auto: add vLLM's offline LLM when `import vllm` works")
    p.add_argument("--vllm-compile", action="store_true",
                   help="let vLLM compile its model (default enforce_eager: a much shorter start)")
    p.add_argument("--kv-memory-mb", type=int, default=0,
                   help="our engines' KV pool in MiB (default: sized so the decode workspace holds the largest "
                        "batch; see docs/benchmarks.md)")
    p.add_argument("--bandwidth-mb", type=int, default=512,
                   help="size of the memory bandwidth benchmark's tensor in MiB (0: skip it)")
    p.add_argument("--no-constrained", action="store_true", help="leave out the constrained parts (3 and 4)")
    p.add_argument("--constrained-batch", type=int, default=8, help="requests in parts 3 and 4")
    p.add_argument("--constrained-max-tokens", type=int, default=None,
                   help="cap on constrained outputs (default: each request's budget)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for every system")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="weights, activations and KV of every system; with bfloat16 each row's first 32 greedy "
                        "tokens are also compared with float32 transformers (agree32_vs_fp32)")
    p.add_argument("--weight-dtype", choices=("bfloat16", "float16"), default=None,
                   help="also measure each of our steps with the projections' weights in this dtype (the "
                        "model.weight_dtype setting; rows ours-<step>-w<dtype>), beside the full-precision "
                        "rows; the baselines keep --dtype weights. Reports each narrow row's speed and "
                        "agreement against its full-precision row (narrow_weights)")
    p.add_argument("--unpacked", action="store_true",
                   help="also measure each of our steps without the oneDNN-packed weight copies "
                        "(EngineConfig.pack_weights=False; rows ours-<step>-unpacked), reported against the "
                        "packed rows in unpacked_weights")
    p.add_argument("--device", default="cpu",
                   help="where every system runs: cpu, or cuda (bandwidth then measured on the GPU)")
    p.add_argument("--requests", type=Path, default=None,
                   help="request JSON lines (default bench/validity_requests.jsonl, else synthetic)")


def _requests(path: Path | None, n: int) -> list[dict[str, Any]]:
    """At least ``n`` requests: the file's, then synthetic ones (a prompt must not
    repeat, see ``engine_prompts``; duplicates are dropped after rendering)."""
    reqs: list[dict[str, Any]] = []
    if path is None and _DEFAULT_REQUESTS.is_file():
        path = _DEFAULT_REQUESTS
    if path is not None:
        with path.open(encoding="utf-8") as fh:
            reqs = [json.loads(line) for line in fh if line.strip()]
    if len(reqs) < n:
        from agentic_llm.benchmarks.workloads import WorkloadSpec, synthetic_workload

        reqs += [{k: v for k, v in r.items() if k != "arrival_s"}
                 for r in synthetic_workload(WorkloadSpec(num_requests=2 * (n - len(reqs)), seed=0))]
    return reqs


def _constrained(engine: Any, compiler: Any, plans: list[Any], prompts: list[list[int]], *,
                 jump_forward: bool, cap: int | None) -> list[Any]:
    from agentic_llm.engine import SamplingParams

    # as the serving pipeline builds them: the matcher knows the token limit, so every
    # document closes within it (grammar.budget)
    limits = [min(p.max_tokens, cap or p.max_tokens) for p in plans]
    matchers = [compiler.matcher_for(p, max_tokens=n) for p, n in zip(plans, limits, strict=True)]
    params = [SamplingParams(max_tokens=n, jump_forward=jump_forward) for n in limits]
    return engine.generate(prompts, params, matchers)


def _tpot(outs: list[Any]) -> float:
    return median([(o.metrics.finish_time - o.metrics.first_token_time) / max(1, len(o.output_token_ids) - 1)
                    for o in outs])


def run_benchmark(args: argparse.Namespace, *, show: bool) -> dict[str, Any]:
    """Measure everything; returns the JSON-ready result."""
    import torch

    from agentic_llm.benchmarks.engine_baselines import (
        AGREE_TOKENS,
        HFRunner,
        agreement,
        fp32_reference,
        hf_model_from_loaded,
    )
    from agentic_llm.benchmarks.engine_prompts import distinct, prompt_schedule, shared_prefix
    from agentic_llm.benchmarks.engine_systems import (
        cache_setting,
        parse_steps,
        pool_bytes,
        start_ours,
    )
    from agentic_llm.benchmarks.membw import measure_bandwidth, weight_bytes, weight_traffic
    from agentic_llm.engine.loader import load_model
    from agentic_llm.models import default_model_dir
    from agentic_llm.planner import GenerateRequest, plan

    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()  # other work on the machine slows every row (see load_average)
    model = Path(args.model).expanduser() if args.model else default_model_dir()
    steps = parse_steps(args.steps, args.compile_decode)
    batches = [int(b) for b in str(args.batches).split(",") if b.strip()]
    constrained_on = not args.no_constrained
    schedule = prompt_schedule(batches, args.repeat)
    n_prompts = max(schedule.needed, args.constrained_batch if constrained_on else 1)
    plans = [plan(GenerateRequest.from_json(r)) for r in _requests(args.requests, n_prompts)]
    # measured first, with no model in memory yet
    bandwidth = measure_bandwidth(args.bandwidth_mb, device=args.device) if args.bandwidth_mb > 0 else None
    cache_dir, twice, cache_tmp = cache_setting(args.compile_cache)
    max_seqs = max(max(batches), args.constrained_batch)
    # one model per engine: the compiled step is attached to the model it runs
    t0 = time.perf_counter()
    dtype = getattr(torch, args.dtype)
    models = {step: load_model(model, device=args.device, dtype=dtype) for step in steps}
    load_s = (time.perf_counter() - t0) / len(steps)
    loaded = models[steps[0]]
    # the same steps over narrow projection weights (their own models), named -w<dtype>
    narrow = ({f"{step}-w{args.weight_dtype}": load_model(model, device=args.device, dtype=dtype,
                                                         weight_dtype=getattr(torch, args.weight_dtype))
               for step in steps} if args.weight_dtype else {})
    # and without packed weight copies (engine option), named -unpacked
    unpacked = ({f"{step}-unpacked": load_model(model, device=args.device, dtype=dtype) for step in steps}
                if args.unpacked else {})
    tok = loaded.tokenizer
    if tok is None:
        raise AgenticError(ErrorCode.UNSUPPORTED_MODEL, f"{model} carries no tokenizer: the bench renders "
                           "its prompts as text")
    prompts, plans = distinct([tok.encode(p.render_prompt()).ids for p in plans], plans, n_prompts)
    warm = [prompts[i] for i in schedule.warm]
    context = max(len(p) for p in prompts) + max(args.new_tokens, args.constrained_max_tokens or 0)
    kv_bytes = (args.kv_memory_mb << 20 if args.kv_memory_mb
                else pool_bytes(loaded.config, max(batches), context, elem=dtype.itemsize))
    ours: dict[str, Any] = {}
    startup: dict[str, Any] = {}
    for step, m in [*models.items(), *narrow.items(), *unpacked.items()]:
        runner, info = start_ours(m, step, max_num_seqs=max_seqs, kv_memory_bytes=kv_bytes,
                                  cache_dir=cache_dir, twice=twice, warm_prompts=warm, device=args.device,
                                  dtype=dtype, pack_weights=False if step in unpacked else None)
        ours[runner.name], startup[runner.name] = runner, {"load_s": load_s, **info}
        runner.weight_bytes = weight_bytes(m.model)
    hf_model = hf_model_from_loaded(loaded, dtype).to(args.device)
    nbytes = weight_bytes(loaded.model)
    pad = int(hf_model.config.pad_token_id if hf_model.config.pad_token_id is not None else 0)
    systems: dict[str, Any] = {HF: HFRunner(hf_model, pad), **ours}
    vllm_note, vllm_tmp = "", None
    if args.vllm == "auto":
        vllm_runner, vllm_note, vllm_tmp, startup["vllm"] = _start_vllm(
            loaded, hf_model, prompts, warm, max(batches), args)
        if vllm_runner is not None:
            systems["vllm"] = vllm_runner
    else:
        vllm_note = "vLLM row not requested (--vllm off)"
    # first-call allocations, outside the measurements (the two calls on different prompts)
    systems[HF].batch(warm[1:], 4, ttft_prompts=warm[:1])

    runs: dict[tuple[str, int], list[dict[str, Any]]] = {(n, b): [] for n in systems for b in batches}
    shared: list[float] = []
    for (b, _r), (ttft_i, meas_i) in progress(schedule.rounds.items(), total=len(schedule.rounds),
                                               desc="throughput", enabled=show):
        measured, ttft = [prompts[i] for i in meas_i], [prompts[i] for i in ttft_i]
        before = prompts[:min(meas_i)]
        shared += [float(shared_prefix(p, before)) for p in measured]
        for name, runner in systems.items():
            runs[(name, b)].append(runner.batch(measured, args.new_tokens, ttft_prompts=ttft))
    throughput = []
    for b in batches:
        ref = runs[(HF, b)][0]["tokens"]
        hf_tok_s = median([x["tok_s"] for x in runs[(HF, b)]])
        for name in systems:
            xs = runs[(name, b)]
            row: dict[str, Any] = {"system": name, "batch": b}
            for key in ("tok_s", "ttft_s", "tpot_s"):
                row[key] = median([x[key] for x in xs])
            row["speedup_vs_transformers"] = ratio(row["tok_s"], hf_tok_s)
            row["agree32_vs_transformers"] = agreement(xs[0]["tokens"], ref)
            if "fast_steps" in xs[0]:
                row["fast_steps"], row["compiled_steps"] = xs[0]["fast_steps"], xs[0]["compiled_steps"]
            if bandwidth is not None:
                row.update(weight_traffic(getattr(systems[name], "weight_bytes", None) or nbytes, row["tpot_s"], bandwidth))
            throughput.append(row)
    if vllm_tmp is not None:
        vllm_tmp.cleanup()
    if dtype != torch.float32:  # each row's first round against float32 transformers, same prompts
        ref = fp32_reference(model, args.device)
        for b in batches:
            tokens = ref.batch([prompts[i] for i in schedule.rounds[(b, 0)][1]], AGREE_TOKENS)["tokens"]
            for row in throughput:
                if row["batch"] == b:
                    row["agree32_vs_fp32"] = agreement(runs[(row["system"], b)][0]["tokens"], tokens)

    narrow_rows = _variant_rows(throughput, runs, f"-w{args.weight_dtype}") if narrow else None
    unpacked_rows = _variant_rows(throughput, runs, "-unpacked") if unpacked else None
    constrained: dict[str, Any] | None = None
    jf: dict[str, Any] | None = None
    main = ours.get("ours-compiled") or next(iter(ours.values()))
    if constrained_on:
        constrained, jf, startup[main.name]["grammar_warmup_s"] = _constrained_parts(
            main.engine, model, plans, prompts, args, show)
    for name, runner in ours.items():
        est = runner.engine.stats()
        startup[name]["compiled_decode_steps"] = est["compiled_decode_steps"]
        startup[name]["fast_decode_steps"] = est["fast_decode_steps"]
        runner.engine.close()
    if cache_tmp is not None:
        cache_tmp.cleanup()
    return {
        "model": display_path(model),
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(args.device),
        "cpu": cpu_model(),
        "threads": args.threads,
        # 1/5/15-minute load averages at the start and the end: above the CPU count,
        # other processes competed with the measurements
        "load_average": {"start": list(load_start), "end": list(os.getloadavg()), "cpus": os.cpu_count()},
        "torch": torch.__version__,
        "new_tokens": args.new_tokens,
        "repeat": args.repeat,
        "prompt_tokens_median": median([float(len(p)) for p in prompts[:schedule.needed]]),
        "protocol": {**schedule.describe(),
                     # tokens of a measured prompt that an earlier call's prompt also began with
                     "shared_prefix_tokens_median": median(shared),
                     "prefix_cache": {name: ("none" if name == HF else startup[name].get("prefix_cache", "?"))
                                      for name in systems}},
        "weight_bytes": nbytes,
        "weight_dtype": args.dtype,
        "narrow_weights": None if narrow_rows is None else {"dtype": args.weight_dtype, "rows": narrow_rows},
        "unpacked_weights": None if unpacked_rows is None else {"rows": unpacked_rows},
        "memory_bandwidth": bandwidth,
        "systems": list(systems),
        "vllm_note": vllm_note,
        "startup": startup,
        "throughput": throughput,
        "constrained": constrained,
        "jump_forward": jf,
        "targets": TARGETS,
        "checks": _checks(throughput, startup, constrained, jf),
    }


def _start_vllm(loaded: Any, hf_model: Any, prompts: list[list[int]], warm: list[list[int]], max_batch: int,
                args: argparse.Namespace) -> tuple[Any, str, Any, dict[str, Any]]:
    """vLLM's runner over a Hugging Face copy of the weights (None and a note when vLLM
    does not import), the temporary folder holding the copy, and its start-up figures."""
    from agentic_llm.benchmarks.engine_baselines import (
        VllmRunner,
        vllm_or_note,
        write_hf_checkpoint,
    )

    vllm, note = vllm_or_note()
    if vllm is None:
        return None, note, None, {"available": False}
    tmp = tempfile.TemporaryDirectory(prefix="agentic-bench-vllm-")
    write_hf_checkpoint(hf_model, loaded, Path(tmp.name))
    longest = max(len(p) for p in prompts) + args.new_tokens + 8
    runner = VllmRunner(vllm, Path(tmp.name), dtype=args.dtype, max_model_len=longest, max_num_seqs=max_batch,
                        eager=not args.vllm_compile, threads=args.threads)
    t0 = time.perf_counter()
    runner.batch(warm[1:], 4, ttft_prompts=warm[:1])
    return runner, "", tmp, {"available": True, "version": getattr(vllm, "__version__", ""),
                             "prefix_cache": runner.prefix_caching,
                             "start_s": runner.start_s, "warmup_s": time.perf_counter() - t0,
                             "enforce_eager": not args.vllm_compile, "threads_bind": runner.binding}


def _constrained_parts(engine: Any, model: Path, plans: list[Any], prompts: list[list[int]],
                       args: argparse.Namespace, show: bool) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Parts 3 and 4 on ``engine``: grammar overhead and jump-forward; and the grammar's
    start-up time (as ``serve`` prepares it)."""
    from agentic_llm.engine import SamplingParams
    from agentic_llm.serving.build import build_compiler

    t0 = time.perf_counter()
    compiler = build_compiler(model, engine)
    grammar_warm_s = time.perf_counter() - t0
    cb = args.constrained_batch
    cplans, cprompts = plans[:cb], prompts[:cb]
    tpot_c, tpot_u, steps_on, steps_off, wall_on, wall_off, same = [], [], [], [], [], [], []
    tokens_on: list[int] = []
    unclosed: list[int] = []
    for _ in progress(range(args.repeat), total=args.repeat, desc="constrained", enabled=show):
        t0 = time.perf_counter()
        off = _constrained(engine, compiler, cplans, cprompts, jump_forward=False,
                           cap=args.constrained_max_tokens)
        wall_off.append(time.perf_counter() - t0)
        lengths = [len(o.output_token_ids) for o in off]
        unc = engine.generate(cprompts, [SamplingParams(max_tokens=max(1, n), ignore_eos=True,
                                                        jump_forward=False) for n in lengths])
        t0 = time.perf_counter()
        on = _constrained(engine, compiler, cplans, cprompts, jump_forward=True,
                          cap=args.constrained_max_tokens)
        wall_on.append(time.perf_counter() - t0)
        tpot_c.append(_tpot(off))
        tpot_u.append(_tpot(unc))
        steps_off.append(sum(o.metrics.num_decode_steps for o in off))
        steps_on.append(sum(o.metrics.num_decode_steps for o in on))
        tokens_on.append(sum(len(o.output_token_ids) for o in on))
        unclosed.append(sum(o.finish_reason != "stop" for o in (*on, *off)))
        same.append(sum(a.output_token_ids == b.output_token_ids or a.text == b.text
                        for a, b in zip(on, off, strict=True)) / len(on))
    constrained = {
        "batch": cb,
        "engine": "compiled" if engine.config.compile_decode else "eager",
        "tpot_constrained_s": median(tpot_c),
        "tpot_unconstrained_s": median(tpot_u),
        "overhead": ratio(median(tpot_c), median(tpot_u)) - 1,
        # how constrained rows are handed to the mask worker and picked (docs/engine.md)
        "mask_fill_spin_ms": engine.config.mask_fill_spin_ms,
        "c_masked_row_max": engine.masked_row_max is not None,
    }
    on_med, off_med = median([float(x) for x in steps_on]), median([float(x) for x in steps_off])
    jf = {
        "batch": cb,
        "decode_steps_without": off_med,
        "decode_steps_with": on_med,
        "saved": 1 - ratio(on_med, off_med),
        "wall_speedup": ratio(median(wall_off), median(wall_on)),
        "same_output_share": median(same),
        # within the jump-forward run: output tokens that needed no decode step
        "forced_token_share": 1 - ratio(on_med, median([float(x) for x in tokens_on])),
        # documents not closed by the grammar (cut at max_tokens): 0 on the serving path
        "unclosed": max(unclosed),
    }
    return constrained, jf, grammar_warm_s


def _variant_rows(throughput: list[dict[str, Any]], runs: dict[tuple[str, int], list[dict[str, Any]]],
                  suffix: str) -> list[dict[str, Any]]:
    """Each row named ``<step><suffix>`` (narrow weights, no packed copies) against the
    row of its step, same run and prompts: the tok/s, TPOT and TTFT ratios, and the
    share of the first 32 greedy tokens alike (every round's requests)."""
    from agentic_llm.benchmarks.engine_baselines import agreement

    by = {(r["system"], r["batch"]): r for r in throughput}
    rows = []
    for (name, b), row in by.items():
        if not name.endswith(suffix):
            continue
        full = name[: -len(suffix)]
        ref = by[(full, b)]
        toks = [t for x in runs[(name, b)] for t in x["tokens"]]
        ref_toks = [t for x in runs[(full, b)] for t in x["tokens"]]
        rows.append({"system": name, "vs": full, "batch": b,
                     "tok_s_ratio": ratio(row["tok_s"], ref["tok_s"]),
                     "tpot_ratio": ratio(row["tpot_s"], ref["tpot_s"]),
                     "ttft_ratio": ratio(row["ttft_s"], ref["ttft_s"]),
                     "agree32_vs_full": agreement(toks, ref_toks)})
    return rows


def _checks(throughput: list[dict[str, Any]], startup: dict[str, Any], constrained: dict[str, Any] | None,
            jf: dict[str, Any] | None) -> dict[str, bool | None]:
    """PASS / MISS per target (None: not measured in this run), on the rows of the
    engine's defaults (narrow-weight and unpacked rows are reported on their own)."""
    def best(system_prefix: str, b: int, key: str) -> float | None:
        xs = [r[key] for r in throughput if r["system"].startswith(system_prefix) and r["batch"] == b
              and "-w" not in r["system"] and not r["system"].endswith("-unpacked")
              and key in r and not math.isnan(r[key])]
        return max(xs) if xs else None

    ours8_32 = [best("ours-", b, "speedup_vs_transformers") for b in (8, 32)]
    measured = [x for x in ours8_32 if x is not None]
    comp = startup.get("ours-compiled", {})
    share8 = best("ours-", 8, "weight_share_of_read_bw")
    ours8, vllm8 = best("ours-", 8, "tok_s"), best("vllm", 8, "tok_s")
    return {
        "throughput_2x_at_8_and_32": (all(x >= TARGETS["throughput_ratio_min"] for x in measured)
                                      if measured else None),
        "constrained_overhead_le_10pct": (constrained["overhead"] <= TARGETS["constrained_overhead_max"]
                                          if constrained else None),
        "jump_forward_saves_ge_30pct": jf["saved"] >= TARGETS["jump_forward_saved_min"] if jf else None,
        "compile_warmup_le_20s": (comp["compile_warmup_s"] <= TARGETS["compile_warmup_max_s"]
                                  if comp.get("compiled") else None),
        "weights_ge_50pct_of_read_bw_at_8": share8 >= TARGETS["weight_bw_share_min"] if share8 is not None else None,
        "ge_1.2x_vllm_at_8": (ours8 / vllm8 >= TARGETS["vllm_ratio_min"]
                              if ours8 is not None and vllm8 else None),
    }


def run(args: argparse.Namespace) -> int:
    """Entry point of ``agentic-llm bench engine``."""
    result = run_benchmark(args, show=not args.json)
    if args.plot:
        path = default_plot_path("engine") if args.plot == "auto" else Path(args.plot)
        plot_result(result, path)
        result["plot"] = str(path)
    if args.json:
        emit(result, as_json=True)
        return 0
    print_result(result)
    return 0
