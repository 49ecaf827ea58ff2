"""The text and plot reports of a ``bench engine`` result (``engine.run_benchmark``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from agentic_llm.benchmarks.report import print_table

__all__ = ["plot_result", "print_result"]


def plot_result(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["throughput"]
    systems = result["systems"]
    batches = sorted({r["batch"] for r in rows})
    parts = 1 + (result["constrained"] is not None) * 2
    fig, axes = plt.subplots(1, parts, figsize=(5 + 4 * (parts - 1), 4), squeeze=False)
    ax = axes[0][0]
    width = 0.8 / max(1, len(systems))
    for k, name in enumerate(systems):
        ys = [next((r["tok_s"] for r in rows if r["system"] == name and r["batch"] == b), 0.0) for b in batches]
        ax.bar([i + (k - (len(systems) - 1) / 2) * width for i in range(len(batches))], ys, width, label=name)
    ax.set_xticks(list(range(len(batches))), [f"batch {b}" for b in batches])
    ax.set_ylabel("output tokens/s")
    ax.legend()
    ax.set_title("throughput (median)")
    if result["constrained"] is not None and result["jump_forward"] is not None:
        c, j = result["constrained"], result["jump_forward"]
        axes[0][1].bar(["unconstrained", "constrained"],
                       [c["tpot_unconstrained_s"] * 1e3, c["tpot_constrained_s"] * 1e3])
        axes[0][1].set_ylabel("TPOT ms")
        axes[0][1].set_title(f"grammar overhead {100 * c['overhead']:+.1f}%")
        axes[0][2].bar(["without", "with"], [j["decode_steps_without"], j["decode_steps_with"]])
        axes[0][2].set_ylabel("decode steps")
        axes[0][2].set_title(f"jump-forward saves {100 * j['saved']:.0f}% of steps")
    fig.suptitle(f"bench engine: {Path(result['model']).name}, CPU, {result['threads']} thread(s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pct(x: float | None) -> float:
    return math.nan if x is None else 100 * x


def print_result(result: dict[str, Any]) -> None:
    """The text report of a :func:`run_benchmark` result."""
    bw = result["memory_bandwidth"]
    print(f"model {result['model']}  ·  {result['cpu'] or 'CPU'}, {result['threads']} thread(s)  ·  "
          f"{result['new_tokens']} new tokens  ·  median of {result['repeat']}  ·  "
          f"prompt {result['prompt_tokens_median']:.0f} tokens  ·  weights "
          f"{result['weight_bytes'] / 1e6:.0f} MB {result['weight_dtype']}")
    if bw is not None:
        print(f"memory bandwidth ({bw['tensor_mb']} MiB fp32, {bw['threads']} thread(s), best of {bw['repeat']}): "
              f"copy {bw['copy_gb_s_best']:.1f} GB/s (read + write), read {bw['read_gb_s_best']:.1f} GB/s")
    print_table(["system", "batch", "tok/s", "x hf", "TTFT s", "TPOT ms", "agree32", "weights GB/s", "% read bw",
                  "fast|compiled steps"],
                [[r["system"], r["batch"], r["tok_s"], r["speedup_vs_transformers"], r["ttft_s"],
                  r["tpot_s"] * 1e3, f"{_pct(r['agree32_vs_transformers']):.0f}%"
                  + (f" ({_pct(r['agree32_vs_fp32']):.0f}% fp32)" if "agree32_vs_fp32" in r else ""),
                  r.get("weight_gb_s", math.nan),
                  _pct(r.get("weight_share_of_read_bw")),
                  f"{r['fast_steps']}|{r['compiled_steps']}" if "fast_steps" in r else "-"]
                 for r in result["throughput"]])
    for key, title in (("narrow_weights", "projection weights in {dtype} against the same step in full "
                                          "precision (same prompts):"),
                       ("unpacked_weights", "without packed weight copies against the same step with them "
                                            "(same prompts):")):
        v = result.get(key)
        if v:
            print(title.format(dtype=v.get("dtype", "")))
            print_table(["system", "batch", "x tok/s", "x TPOT", "x TTFT", "agree32"],
                        [[r["system"], r["batch"], r["tok_s_ratio"], r["tpot_ratio"], r["ttft_ratio"],
                          f"{_pct(r['agree32_vs_full']):.0f}%"] for r in v["rows"]])
    la = result.get("load_average")
    if la and max(la["start"][0], la["end"][0]) > 0.5 * (la["cpus"] or 1):
        print(f"note: load average {la['start'][0]:.1f} at the start, {la['end'][0]:.1f} at the end on "
              f"{la['cpus']} CPUs: other work competed with the measurements")
    pr = result["protocol"]
    print(f"protocol: {pr['distinct_prompts']} distinct prompts, none repeated across calls; measured prompts "
          f"share a median {pr['shared_prefix_tokens_median']:.0f}-token prefix with earlier calls; prefix caches: "
          + ", ".join(f"{k} {v}" for k, v in pr["prefix_cache"].items()))
    if result["vllm_note"]:
        print(result["vllm_note"])
    for name, su in result["startup"].items():
        if name == "vllm":
            if su.get("available"):
                print(f"vllm {su['version']}: started in {su['start_s']:.1f} s, warm-up {su['warmup_s']:.1f} s "
                      f"(enforce_eager {su['enforce_eager']}, VLLM_CPU_OMP_THREADS_BIND={su['threads_bind']})")
            continue
        line = f"{name}: loaded in {su['load_s']:.1f} s, warm-up {su['warmup_s']:.1f} s"
        if name.startswith("ours-compiled"):
            if not su["compiled"]:
                line += f"; the compiled step is off ({su['off_reason']})"
            else:
                if "first_start_compile_warmup_s" in su:
                    line += (f"; first start {su['first_start_compile_warmup_s']:.1f} s (cache "
                             f"{'hit' if su['first_start_compile_cache_hit'] else 'miss'}), second start")
                line += (f"; compile_warmup_s {su['compile_warmup_s']:.1f} (cache "
                         f"{'hit' if su['compile_cache_hit'] else 'miss'}: {su['compile_cache_path'] or 'no cache'})")
        print(line)
    c, j = result["constrained"], result["jump_forward"]
    if c is not None and j is not None:
        print(f"constrained TPOT {c['tpot_constrained_s'] * 1e3:.2f} ms vs unconstrained "
              f"{c['tpot_unconstrained_s'] * 1e3:.2f} ms (batch {c['batch']}, {c['engine']} step): "
              f"overhead {100 * c['overhead']:+.1f}%")
        print(f"jump-forward: {j['decode_steps_with']:.0f} decode steps instead of {j['decode_steps_without']:.0f} "
              f"(saves {100 * j['saved']:.0f}%), wall {j['wall_speedup']:.2f}x, same output "
              f"{100 * j['same_output_share']:.0f}%; {100 * j['forced_token_share']:.0f}% of its output tokens "
              f"forced; documents not closed by the grammar: {j['unclosed']}")
    for name, ok in result["checks"].items():
        print(f"{'n/a ' if ok is None else 'PASS' if ok else 'MISS'}  {name}")
