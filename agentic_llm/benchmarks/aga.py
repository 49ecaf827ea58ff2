"""``agentic-llm bench aga``: knowledge-injection hook overhead, per-layer latency, memory.

For each hidden size (768 and 4096 by default) a random-weight Llama-style model is
built on the CPU and timed with the plugin detached and attached in alternating
rounds of the same run, with ``--slots`` knowledge slots registered and routing
forced open (every token is injected: the worst case). Reported:

* forward time (single-token step and a ``--prefill``-token prompt), attached vs
  detached, and the overhead ratio;
* overhead three ways: ratio of medians, median of per-round paired ratios, and the
  plugin's whole per-step work timed directly (step setup, hooked layers, logits
  entropy) over the detached step time (least sensitive to a noisy machine);
* per hooked layer latency: the plugin's layer call timed directly on a one-token
  tensor, and the attached-minus-detached difference divided by the hooked layers;
* memory of the slot store at hidden 4096 (float16, as deployed on GPUs, and float32).
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

import torch

from agentic_llm.benchmarks.report import (
    default_plot_path,
    emit,
    percentile,
    print_table,
    progress,
    ratio,
)

__all__ = ["add_arguments", "run", "measure_hidden"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hidden", type=int, nargs="+", default=[768, 4096],
                   help="hidden sizes of the random models measured (default 768 4096)")
    p.add_argument("--slots", type=int, default=256, help="knowledge slots registered (default 256)")
    p.add_argument("--layers-768", dest="layers_small", type=int, default=12,
                   help="decoder layers of the model at hidden sizes below 2048")
    p.add_argument("--layers-4096", dest="layers_large", type=int, default=2,
                   help="decoder layers of the model at hidden sizes of 2048 and above")
    p.add_argument("--hooked", type=int, default=1, help="hooked layers")
    p.add_argument("--vocab", type=int, default=32000, help="vocabulary size of the random models (default 32000)")
    p.add_argument("--prefill", type=int, default=32, help="prompt tokens of the prefill measured (default 32)")
    p.add_argument("--rounds", type=int, default=20, help="timed rounds per configuration (default 20)")
    p.add_argument("--micro", type=int, default=2000, help="direct layer-call repetitions")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")


def _model(hidden: int, layers: int, vocab: int) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    inter = 3072 if hidden <= 1024 else int(hidden * 8 / 3 / 256 + 1) * 256
    cfg = LlamaConfig(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64,
                      vocab_size=vocab, tie_word_embeddings=True, max_position_embeddings=1024,
                      bos_token_id=None, eos_token_id=None, pad_token_id=None)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).float().eval()


def _plugin(hidden: int, slots: int, hooked: list[int]) -> Any:
    from agentic_llm.aga import AGAConfig, AGAPlugin

    cfg = AGAConfig(hidden_dim=hidden, max_slots=slots, gate2_min_score=-1.0,
                    layers=tuple(hooked), event_buffer_size=0, pin_registered=True)
    plugin = AGAPlugin(cfg)
    g = torch.Generator().manual_seed(1)
    for i in range(slots):
        plugin.register(f"k{i}", torch.randn(cfg.bottleneck_dim, generator=g),
                        torch.randn(hidden, generator=g))
    return plugin


def _time(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure_hidden(hidden: int, args: argparse.Namespace, show: bool) -> dict[str, Any]:
    """All timings for one hidden size."""
    n_layers = args.layers_small if hidden < 2048 else args.layers_large
    model = _model(hidden, n_layers, args.vocab)
    hooked = list(range(n_layers - args.hooked, n_layers)) if args.hooked else []
    plugin = _plugin(hidden, args.slots, hooked)
    one = torch.randint(0, args.vocab, (1, 1))
    prompt = torch.randint(0, args.vocab, (1, args.prefill))

    def fwd(ids: torch.Tensor) -> None:
        with torch.no_grad():
            model(input_ids=ids, use_cache=False)

    for _ in range(3):
        fwd(one)
        fwd(prompt)
    times: dict[str, list[float]] = {k: [] for k in ("step_off", "step_on", "prefill_off", "prefill_on")}
    for _ in progress(range(args.rounds), desc=f"hidden {hidden}", enabled=show):
        for attached in (False, True):
            if attached:
                plugin.attach(model)
            suffix = "on" if attached else "off"
            times[f"step_{suffix}"].append(_time(lambda: fwd(one)))
            times[f"prefill_{suffix}"].append(_time(lambda: fwd(prompt)))
            if attached:
                plugin.detach()
    # Direct per-layer call on a one-token packed tensor, as the engine makes it.
    from agentic_llm.engine.hooks import HookRegistry

    plugin.attach(HookRegistry(n_layers), layers=hooked or [0])
    h = torch.randn(1, hidden)
    state = plugin.runtime.begin_step(
        token_rows=torch.zeros(1, dtype=torch.long), num_rows=1, row_namespaces=[()],
        prev_entropy=torch.tensor([float("nan")]), is_last_token=torch.ones(1, dtype=torch.bool))
    layer = plugin.runtime.first_layer
    micro = []
    for i in range(args.micro + 200):
        t = _time(lambda: plugin.runtime.run_layer(layer, h, state))
        if i >= 200:
            micro.append(t)
        state.record.layer_gates.clear()
    # The whole per-step plugin cost, timed directly: step setup, the hooked layers and
    # the entropy of the logits (the transformers adapter's lm_head hook).
    logits = torch.randn(1, args.vocab)

    def plugin_step() -> None:
        st = plugin.runtime.begin_step(
            token_rows=torch.zeros(1, dtype=torch.long), num_rows=1, row_namespaces=[()],
            prev_entropy=torch.tensor([float("nan")]), is_last_token=torch.ones(1, dtype=torch.bool))
        for layer_idx in plugin.runtime.layers:
            plugin.runtime.run_layer(layer_idx, h, st)
        logp = torch.log_softmax(logits, dim=-1)
        (-(logp.exp() * logp).sum(dim=-1))

    step_cost = [_time(plugin_step) for _ in range(args.micro // 4 + 50)][50:]
    plugin.detach()
    med = {k: percentile(v, 50) for k, v in times.items()}
    paired = [on / off for on, off in zip(times["step_on"], times["step_off"], strict=True)]
    paired_prefill = [on / off for on, off in zip(times["prefill_on"], times["prefill_off"], strict=True)]
    k = max(args.hooked, 1)
    out = {
        "hidden": hidden, "layers": n_layers, "hooked_layers": args.hooked, "slots": args.slots,
        "step_ms_detached": med["step_off"] * 1e3, "step_ms_attached": med["step_on"] * 1e3,
        "step_overhead": ratio(med["step_on"], med["step_off"]) - 1.0,
        "step_overhead_paired": percentile(paired, 50) - 1.0,
        "plugin_step_us_direct": percentile(step_cost, 50) * 1e6,
        "step_overhead_direct": percentile(step_cost, 50) / med["step_off"],
        "prefill_ms_detached": med["prefill_off"] * 1e3, "prefill_ms_attached": med["prefill_on"] * 1e3,
        "prefill_overhead": ratio(med["prefill_on"], med["prefill_off"]) - 1.0,
        "prefill_overhead_paired": percentile(paired_prefill, 50) - 1.0,
        "layer_us_direct_p50": percentile(micro, 50) * 1e6,
        "layer_us_direct_p99": percentile(micro, 99) * 1e6,
        "layer_us_from_forward": (med["step_on"] - med["step_off"]) / k * 1e6,
        "decoder_layer_ms": med["step_off"] * 1e3 / n_layers,
        "errors": plugin.metrics.errors, "timeouts": plugin.metrics.timeouts,
    }
    return out


def _memory(slots: int, hidden: int = 4096) -> dict[str, float]:
    from agentic_llm.aga import KVStore

    out = {}
    for name, dt in (("float16", torch.float16), ("float32", torch.float32)):
        out[f"store_mb_{name}"] = KVStore(slots, 64, hidden, dtype=dt).memory_bytes() / 2**20
    return out


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    show = not args.json
    rows = []
    for h in args.hidden:
        rows.append(measure_hidden(h, args, show))
        gc.collect()  # free one model before building the next
    mem = _memory(args.slots)
    result = {"benchmark": "aga", "threads": args.threads, "results": rows, "memory_4096": mem}
    if args.json:
        emit(result, as_json=True)
    else:
        print_table(
            ["hidden", "layers", "step ms off", "step ms on", "overhead (paired)",
             "overhead (direct)", "prefill off", "prefill on", "overhead (paired)",
             "layer us p50", "layer us p99", "plugin us/step"],
            [(r["hidden"], r["layers"], r["step_ms_detached"], r["step_ms_attached"],
              f"{100 * r['step_overhead_paired']:.2f}%", f"{100 * r['step_overhead_direct']:.2f}%",
              r["prefill_ms_detached"], r["prefill_ms_attached"],
              f"{100 * r['prefill_overhead_paired']:.2f}%",
              r["layer_us_direct_p50"], r["layer_us_direct_p99"], r["plugin_step_us_direct"])
             for r in rows])
        print(f"\n{args.slots} slots at hidden 4096: {mem['store_mb_float16']:.2f} MB (float16), "
              f"{mem['store_mb_float32']:.2f} MB (float32)")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(rows), figsize=(4 * len(rows), 3.5), squeeze=False)
        for ax, r in zip(axes[0], rows, strict=True):
            ax.bar(["step off", "step on", "prefill off", "prefill on"],
                   [r["step_ms_detached"], r["step_ms_attached"], r["prefill_ms_detached"],
                    r["prefill_ms_attached"]], color=["C0", "C1", "C0", "C1"])
            ax.set_title(f"hidden {r['hidden']}: +{100 * r['step_overhead']:.1f}% step")
            ax.set_ylabel("ms (median)")
        fig.tight_layout()
        path = default_plot_path("aga") if args.plot == "auto" else args.plot
        fig.savefig(path, dpi=120)
    return 0
