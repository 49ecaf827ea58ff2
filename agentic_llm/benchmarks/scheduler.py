"""``agentic-llm bench scheduler``: branch-aware against FCFS scheduling in one run.

The workload is fork-heavy agent traffic: DAGs whose fork sends 2-8 sibling requests
at once, all sharing a long prompt (the plan context) and differing only in a short
branch suffix, mixed with independent requests; DAGs and independent requests arrive
as one Poisson process. Both policies serve the identical workload on the same engine
configuration and model (the shipped checkpoint, or a tiny random Llama when none is
shipped), each on a fresh engine with a radix prefix cache.

Time is a virtual clock: it advances by the measured time of each engine step and
jumps over idle gaps to the next arrival, so arrivals land at the same virtual times
under both policies and time spent outside the engine is not counted. By default a
step is measured in CPU time of the engine thread (torch runs on one thread here),
which leaves out time stolen by other processes on a shared machine; ``--clock wall``
measures wall time instead.
Reported per policy: fork-group completion time (arrival of the fork until its last
branch finishes) p50/p99, output tokens per second, prompt tokens actually computed
(prefill), independent-request latency p99; then branch-aware/FCFS ratios and a check
that greedy outputs are identical under both policies.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentic_llm.benchmarks.report import (
    default_plot_path,
    emit,
    percentile,
    print_table,
    progress,
    ratio,
)
from agentic_llm.engine.loop import EngineLoop

__all__ = ["add_arguments", "run", "make_workload", "run_policy", "run_benchmark", "Arrival"]

POLICIES = ("fcfs", "branch_aware")
TARGETS = {
    "group_p50": ("<=", 0.6),
    "throughput": (">=", 1.5),
    "prefill_tokens": ("<=", 0.5),
    "independent_p99": ("<=", 1.2),
}


@dataclass
class Arrival:
    """One fork (several siblings) or one independent request arriving at ``time``."""

    time: float
    key: str
    prompts: list[list[int]]
    dag_id: str | None = None


@dataclass
class _Run:
    policy: str
    clock: float = 0.0
    steps: int = 0
    prefill_tokens: int = 0
    output_tokens: int = 0
    errors: list[str] = field(default_factory=list)
    finish: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, list[int]] = field(default_factory=dict)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dags", type=int, default=10, help="fork DAGs (default 10)")
    p.add_argument("--independent", type=int, default=20, help="independent requests (default 20)")
    p.add_argument("--shared-len", type=int, default=256, help="shared prompt tokens of a fork (default 256)")
    p.add_argument("--max-tokens", type=int, default=24, help="output tokens per request (default 24)")
    p.add_argument("--rate", type=float, default=60.0,
                   help="arrivals per virtual second (default 60: more than either policy serves, so "
                   "throughput measures capacity, not the arrival rate)")
    p.add_argument("--num-blocks", type=int, default=2048, help="KV pages of 16 tokens (default 2048)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--model", default=None,
                   help="checkpoint directory or GGUF file (default: the shipped agentic-tiny)")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                   help="measure steps in engine-thread CPU time (default) or wall time")


def _model_dir(model: str | None, tmp: Path) -> Path:
    if model:
        return Path(model)
    from agentic_llm.models import shipped_model_dir

    # the shipped agentic-tiny, not serve's default model: --model runs a larger one
    d = Path(shipped_model_dir())
    if (d / "config.json").is_file():
        return d
    import torch
    import transformers

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                                   num_attention_heads=4, num_key_value_heads=2, vocab_size=1024,
                                   max_position_embeddings=2048, bos_token_id=None, eos_token_id=None,
                                   pad_token_id=None)
    transformers.LlamaForCausalLM(cfg).float().eval().save_pretrained(tmp / "tiny")
    return tmp / "tiny"


def make_workload(vocab: int, *, dags: int, independent: int, shared_len: int, rate: float,
                  seed: int) -> list[Arrival]:
    """Poisson arrivals: ``dags`` forks of 2-8 siblings and ``independent`` single requests."""
    rng = random.Random(seed)
    kinds = ["dag"] * dags + ["ind"] * independent
    rng.shuffle(kinds)
    t = 0.0
    out: list[Arrival] = []
    lo = 3  # skip the special tokens at the bottom of the vocabulary
    for i, kind in enumerate(kinds):
        t += rng.expovariate(rate)
        if kind == "dag":
            shared = [rng.randrange(lo, vocab) for _ in range(shared_len)]
            width = rng.randint(2, 8)
            prompts = [shared + [rng.randrange(lo, vocab) for _ in range(rng.randint(4, 12))] for _ in range(width)]
            out.append(Arrival(t, f"dag{i}", prompts, dag_id=f"dag{i}"))
        else:
            n = rng.randint(48, 128)
            out.append(Arrival(t, f"ind{i}", [[rng.randrange(lo, vocab) for _ in range(n)]]))
    return out


def run_policy(model_dir: Path, policy: str, workload: list[Arrival], *, max_tokens: int, num_blocks: int,
               show_progress: bool = False, clock: str = "cpu") -> _Run:
    """Serve ``workload`` with ``policy`` on a fresh engine; return timings and outputs."""
    from agentic_llm.cache.radix import RadixCache
    from agentic_llm.engine import LLMEngine, SamplingParams

    engine = LLMEngine.from_pretrained(model_dir, num_blocks=num_blocks, block_size=16,
                                       max_num_batched_tokens=1024, max_num_seqs=128,
                                       scheduling_policy=policy, prefix_cache=RadixCache)
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    run = _Run(policy)
    timer = time.thread_time if clock == "cpu" else time.perf_counter
    sched = engine.scheduler
    inner = sched.schedule

    def counting_schedule():  # type: ignore[no-untyped-def]
        out = inner()
        for row in out.rows:
            # every token computed except the one decode token of a sampling row
            decode = 1 if row.samples and row.start >= row.request.num_prompt_tokens else 0
            run.prefill_tokens += row.num_tokens - decode
        return out

    sched.schedule = counting_schedule  # type: ignore[method-assign]
    pending = sorted(workload, key=lambda a: a.time)
    names: dict[str, str] = {}
    total = sum(len(a.prompts) for a in workload)
    bar = progress(range(total), total=total, desc=policy, enabled=show_progress)
    it = iter(bar)
    clock_obs = _StepClock(timer)
    loop = EngineLoop(engine, observers=[clock_obs], thread=False)
    try:
        # warm the kernels so the first arrival does not pay for them
        engine.generate([[5, 6, 7, 8]], SamplingParams(max_tokens=2))
        while pending or loop.in_flight:
            if not loop.in_flight and pending and pending[0].time > run.clock:
                run.clock = pending[0].time
            while pending and pending[0].time <= run.clock:
                a = pending.pop(0)
                for j, prompt in enumerate(a.prompts):
                    key = f"{a.key}/{j}"
                    loop.submit(prompt, params, request_id=key, dag_id=a.dag_id,
                                branch_id=str(j) if a.dag_id else None)
                    names[key] = key
            outs = loop.run_once()
            run.clock += clock_obs.last_s  # the engine step alone, as the loop timed it
            clock_obs.last_s = 0.0
            run.steps += 1
            for o in outs:
                if o.finished:
                    key = names[o.request_id]
                    run.finish[key] = run.clock
                    run.outputs[key] = list(o.output_token_ids)
                    run.output_tokens += len(o.output_token_ids)
                    if o.error is not None:
                        run.errors.append(f"{key}: {o.error.code.value}")
                    next(it, None)
    finally:
        engine.close()
    return run



class _StepClock:
    """A step observer that times each engine step on the benchmark's clock."""

    def __init__(self, timer: Callable[[], float]) -> None:
        self.timer = timer
        self.last_s = 0.0
        self._t0 = 0.0

    def before_step(self) -> None:
        self._t0 = self.timer()

    def after_step(self, outputs: Sequence[Any], duration_s: float) -> None:
        self.last_s += self.timer() - self._t0

def _summary(run: _Run, workload: list[Arrival]) -> dict[str, Any]:
    groups: list[float] = []
    independent: list[float] = []
    for a in workload:
        done = [run.finish[f"{a.key}/{j}"] for j in range(len(a.prompts))]
        (groups if a.dag_id else independent).append(max(done) - a.time)
    return {
        "group_p50": percentile(groups, 50),
        "group_p99": percentile(groups, 99),
        "throughput": run.output_tokens / run.clock if run.clock else float("nan"),
        "prefill_tokens": run.prefill_tokens,
        "independent_p99": percentile(independent, 99),
        "makespan_s": run.clock,
        "steps": run.steps,
        "output_tokens": run.output_tokens,
        "failed_requests": len(run.errors),
        "errors": run.errors[:5],
    }


def run_benchmark(*, dags: int = 10, independent: int = 20, shared_len: int = 256, max_tokens: int = 24,
                  rate: float = 60.0, num_blocks: int = 2048, seed: int = 0, model: str | None = None,
                  show_progress: bool = False, clock: str = "cpu") -> dict[str, Any]:
    """Both policies on one workload; per-policy figures, ratios and the output check."""
    import torch

    from agentic_llm.engine.loader import load_config

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = _model_dir(model, Path(tmp))
        vocab = load_config(model_dir).vocab_size
        workload = make_workload(vocab, dags=dags, independent=independent, shared_len=shared_len,
                                 rate=rate, seed=seed)
        runs = {p: run_policy(model_dir, p, workload, max_tokens=max_tokens, num_blocks=num_blocks,
                              show_progress=show_progress, clock=clock) for p in POLICIES}
    res = {p: _summary(r, workload) for p, r in runs.items()}
    ratios = {k: ratio(res["branch_aware"][k], res["fcfs"][k]) for k in TARGETS}
    met = {k: (ratios[k] <= lim if op == "<=" else ratios[k] >= lim) for k, (op, lim) in TARGETS.items()}
    a, b = runs["fcfs"].outputs, runs["branch_aware"].outputs
    mismatched = sorted(k for k in a if a[k] != b.get(k))
    return {
        "model": str(model if model else model_dir.name if model_dir.name != "tiny" else "random-tiny-llama"),
        "clock": f"virtual: sum of engine step times ({'engine-thread CPU' if clock == 'cpu' else 'wall'}), "
                 "idle gaps skipped",
        "workload": {"dags": dags, "independent": independent, "shared_len": shared_len,
                     "max_tokens": max_tokens, "rate_per_s": rate, "seed": seed,
                     "requests": sum(len(w.prompts) for w in workload)},
        "policies": res,
        "ratios": ratios,
        "targets": {k: f"{op} {lim}" for k, (op, lim) in TARGETS.items()},
        "targets_met": met,
        "outputs_identical": not mismatched and len(a) == len(b) and not any(r.errors for r in runs.values()),
        "mismatched_requests": mismatched,
    }


def _plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("group_p50", "fork-group completion p50 (s)"), ("group_p99", "fork-group completion p99 (s)"),
               ("throughput", "output tokens/s"), ("prefill_tokens", "prefill tokens computed"),
               ("independent_p99", "independent p99 latency (s)")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.6))
    for ax, (key, label) in zip(axes, metrics, strict=True):
        vals = [out["policies"][p][key] for p in POLICIES]
        ax.bar(POLICIES, vals, color=["#888888", "#2a7ab0"])
        ax.set_title(label, fontsize=9)
    fig.suptitle("branch-aware vs FCFS (same engine, same workload)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(1)
    out = run_benchmark(dags=args.dags, independent=args.independent, shared_len=args.shared_len,
                        max_tokens=args.max_tokens, rate=args.rate, num_blocks=args.num_blocks, seed=args.seed,
                        model=args.model, show_progress=not args.json, clock=args.clock)
    if args.plot:
        path = default_plot_path("scheduler") if args.plot == "auto" else Path(args.plot)
        _plot(out, path)
        out["plot"] = str(path)
    if args.json:
        emit(out, as_json=True)
        return 0
    rows = []
    labels = {"group_p50": "fork-group completion p50 (s)", "group_p99": "fork-group completion p99 (s)",
              "throughput": "throughput (output tok/s)", "prefill_tokens": "prefill tokens computed",
              "independent_p99": "independent p99 latency (s)", "makespan_s": "makespan (virtual s)",
              "steps": "engine steps"}
    for k, label in labels.items():
        f, b = out["policies"]["fcfs"][k], out["policies"]["branch_aware"][k]
        target = out["targets"].get(k, "")
        ok = "" if k not in out["targets_met"] else ("yes" if out["targets_met"][k] else "NO")
        rows.append([label, float(f), float(b), ratio(float(b), float(f)), target, ok])
    print(f"workload: {out['workload']}  clock: {out['clock']}")
    print_table(["metric", "fcfs", "branch_aware", "ratio", "target", "met"], rows)
    print(f"greedy outputs identical under both policies: {out['outputs_identical']}")
    for p in POLICIES:
        if out["policies"][p]["failed_requests"]:
            print(f"{p}: {out['policies'][p]['failed_requests']} requests failed, e.g. {out['policies'][p]['errors']}")
    if "plot" in out:
        print(f"chart: {out['plot']}")
    return 0
