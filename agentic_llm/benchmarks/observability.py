"""``agentic-llm bench observability``: throughput with every exporter on against all off.

Two measurements, each alternating the two configurations round by round in the same
run (so machine noise hits both alike) and reporting medians and the on/off ratio:

* ``engine``: the real engine generating on a small random-weight Llama written to a
  temporary directory, stepped with an :class:`EngineObserver` on its loop. "off" has no
  subscriber (the observer short-circuits); "on" runs the whole stack: Prometheus
  with the HTTP server scraped every 5 s, JSON event logs to a file, SQLite
  audit, the default alert rules, and OpenTelemetry tracing to memory.
* ``events``: the event path alone, a synthetic request's event mix emitted in a
  tight loop, to show the per-event cost.

The target is on/off throughput >= 0.97 for the engine measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from agentic_llm.benchmarks.report import default_plot_path, emit, print_table, progress, ratio
from agentic_llm.observability import emit as ev
from agentic_llm.observability.config import ObservabilityConfig
from agentic_llm.observability.events import EventBus
from agentic_llm.observability.stack import ObservabilityStack

__all__ = ["add_arguments", "run"]

TARGET = 0.97


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Benchmark options."""
    p.add_argument("--mode", choices=("auto", "engine", "events"), default="auto",
                   help="engine: real engine; events: event path only; auto: both when "
                        "the engine is available, else events")
    p.add_argument("--rounds", type=int, default=7, help="alternating on/off rounds")
    p.add_argument("--requests", type=int, default=8, help="requests per engine round")
    p.add_argument("--prompt-len", type=int, default=48, help="prompt tokens per request (default 48)")
    p.add_argument("--max-tokens", type=int, default=32, help="output tokens per request (default 32)")
    p.add_argument("--hidden", type=int, default=128, help="model hidden size")
    p.add_argument("--layers", type=int, default=4, help="model layers")
    p.add_argument("--event-requests", type=int, default=2000,
                   help="synthetic requests per events round")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1 keeps a shared machine from oversubscribing)")


# -- the stack under test ------------------------------------------------------------
def _full_config(tmp: Path) -> ObservabilityConfig:
    return ObservabilityConfig(
        log_enabled=True, log_file=str(tmp / "events.log"), log_level="INFO",
        audit_enabled=True, audit_storage_backend="sqlite",
        audit_storage_path=str(tmp / "audit.db"),
        alert_enabled=True, alert_log=False,
        tracing_exporter="memory",
    )


class _Scraper:
    """Scrapes /metrics every 5 s (Prometheus's default interval is 15 s)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.scrapes = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _loop(self) -> None:
        while not self._stop.wait(5.0):
            with urllib.request.urlopen(self.url + "/metrics", timeout=5) as r:
                r.read()
            self.scrapes += 1

    def stop(self) -> None:
        self._stop.set()
        self._t.join(5)


# -- engine measurement ----------------------------------------------------------------
def _write_model(path: Path, hidden: int, layers: int, vocab: int = 512) -> Path:
    import torch
    from safetensors.torch import save_file

    heads, kv = 4, 2
    hd = hidden // heads
    inter = hidden * 2
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
           "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
           "num_key_value_heads": kv, "vocab_size": vocab, "max_position_embeddings": 1024,
           "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": False,
           "torch_dtype": "float32", "hidden_act": "silu"}
    (path / "config.json").write_text(json.dumps(cfg))
    g = torch.Generator().manual_seed(0)

    def rnd(*shape: int) -> Any:
        return torch.randn(*shape, generator=g) * 0.05

    w = {"model.embed_tokens.weight": rnd(vocab, hidden), "model.norm.weight": torch.ones(hidden),
         "lm_head.weight": rnd(vocab, hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        w.update({p + "self_attn.q_proj.weight": rnd(heads * hd, hidden),
                  p + "self_attn.k_proj.weight": rnd(kv * hd, hidden),
                  p + "self_attn.v_proj.weight": rnd(kv * hd, hidden),
                  p + "self_attn.o_proj.weight": rnd(hidden, heads * hd),
                  p + "mlp.gate_proj.weight": rnd(inter, hidden),
                  p + "mlp.up_proj.weight": rnd(inter, hidden),
                  p + "mlp.down_proj.weight": rnd(hidden, inter),
                  p + "input_layernorm.weight": torch.ones(hidden),
                  p + "post_attention_layernorm.weight": torch.ones(hidden)})
    save_file(w, str(path / "model.safetensors"), metadata={"format": "pt"})
    return path


def _engine_round(engine: Any, bus: EventBus, prompts: list[list[int]], params: Any) -> float:
    from agentic_llm.observability.engine_probe import EngineObserver

    observer = EngineObserver(engine, bus)
    t0 = time.perf_counter()
    outs = engine.generate(prompts, params, observers=[observer])
    dt = time.perf_counter() - t0
    return sum(len(o.output_token_ids) for o in outs) / dt


def _measure_engine(args: argparse.Namespace, tmp: Path, show: bool) -> dict[str, Any]:
    import torch

    from agentic_llm.cache import RadixCache
    from agentic_llm.engine import LLMEngine, SamplingParams

    torch.set_num_threads(max(1, args.threads))

    (tmp / "model").mkdir()
    model = _write_model(tmp / "model", args.hidden, args.layers)
    engine = LLMEngine.from_pretrained(model, num_blocks=512, block_size=16,
                                       max_num_seqs=max(1, args.requests))
    radix = RadixCache(engine.pool)
    engine.prefix_cache = radix
    engine.scheduler.prefix_cache = radix
    g = torch.Generator().manual_seed(1)
    shared = torch.randint(0, 512, (args.prompt_len // 2,), generator=g).tolist()
    prompts = [shared + torch.randint(0, 512, (args.prompt_len - len(shared),), generator=g).tolist()
               for _ in range(args.requests)]
    params = SamplingParams(max_tokens=args.max_tokens, ignore_eos=True, seed=0)
    off_bus = EventBus()
    on_bus = EventBus()
    stack = ObservabilityStack(_full_config(tmp), bus=on_bus).start()
    stack.bind_engine(engine)
    scraper = _Scraper(stack.url or "")
    _engine_round(engine, off_bus, prompts, params)  # warm-up (also fills the prefix cache)
    _engine_round(engine, on_bus, prompts, params)
    on: list[float] = []
    off: list[float] = []
    try:
        for r in progress(range(args.rounds), desc="engine rounds", enabled=show):
            # ABBA order so drift over the run favours neither side.
            order = ("off", "on") if r % 2 == 0 else ("on", "off")
            for which in order:
                if which == "on":
                    on.append(_engine_round(engine, on_bus, prompts, params))
                else:
                    off.append(_engine_round(engine, off_bus, prompts, params))
    finally:
        scraper.stop()
        stack.flush(5)
        spans = len(stack.tracer.span_exporter.get_finished_spans()) if stack.tracer else 0
        log_path = tmp / "events.log"
        log_lines = sum(1 for _ in log_path.open()) if log_path.exists() else 0
        stack.shutdown()
        engine.close()
    return {
        "mode": "engine",
        "workload": {"requests": args.requests, "prompt_len": args.prompt_len,
                     "torch_threads": args.threads,
                     "max_tokens": args.max_tokens, "hidden": args.hidden, "layers": args.layers},
        "off_tok_s": off, "on_tok_s": on,
        "off_median": statistics.median(off), "on_median": statistics.median(on),
        "ratio": ratio(statistics.median(on), statistics.median(off)),
        "events_emitted": on_bus.stats().emitted, "events_dropped": on_bus.stats().dropped,
        "subscriber_errors": on_bus.stats().subscriber_errors, "scrapes": scraper.scrapes,
        "spans_exported": spans, "log_lines": log_lines,
    }


# -- event path measurement -----------------------------------------------------------
def _synthetic_requests(bus: EventBus, n: int, steps: int = 8) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        rid = f"r{i}"
        ev.request_stage(rid, "plan", 0.001, bus=bus)
        ev.request_stage(rid, "cache_lookup", 0.0002, bus=bus)
        ev.subgraph_cache_lookup("miss", store="memory", duration_s=0.0002, bus=bus)
        ev.grammar_compile(0.0001, True, bus=bus)
        ev.prefix_cache_match(64, 32, bus=bus)
        for _ in range(steps):
            ev.engine_step(4, 1, kv_pages_used=40, kv_pages_free=60, decode_tokens=4,
                           duration_s=0.002, bus=bus)
            ev.grammar_mask(0.0001, batch_size=4, bus=bus)
        ev.request_finished(rid, "success", prompt_tokens=64, output_tokens=steps, ttft_s=0.01,
                            tpot_s=0.002, e2e_s=0.03, bus=bus)
    return n / (time.perf_counter() - t0)


def _measure_events(args: argparse.Namespace, tmp: Path, show: bool) -> dict[str, Any]:
    off_bus = EventBus()
    on_bus = EventBus()
    stack = ObservabilityStack(_full_config(tmp), bus=on_bus).start()
    on: list[float] = []
    off: list[float] = []
    try:
        for r in progress(range(args.rounds), desc="event rounds", enabled=show):
            order = ("off", "on") if r % 2 == 0 else ("on", "off")
            for which in order:
                bus, out = (on_bus, on) if which == "on" else (off_bus, off)
                out.append(_synthetic_requests(bus, args.event_requests))
                if which == "on":
                    stack.flush(30)  # let the threaded exporters catch up between rounds
    finally:
        stack.shutdown()
    per_request_events = 5 + 2 * 8 + 1
    on_m, off_m = statistics.median(on), statistics.median(off)
    return {
        "mode": "events",
        "off_req_s": off, "on_req_s": on, "off_median": off_m, "on_median": on_m,
        "ratio": ratio(on_m, off_m),
        "us_per_event_on": 1e6 / (on_m * per_request_events),
        "us_per_event_off": 1e6 / (off_m * per_request_events),
        "events_dropped": on_bus.stats().dropped,
    }


def _engine_available() -> bool:
    try:
        import agentic_llm.cache  # noqa: F401
        from agentic_llm.engine import LLMEngine  # noqa: F401
    except ImportError:
        return False
    return True


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; exit 0 (the figures are the result)."""
    show = not args.json
    results: dict[str, Any] = {"target_ratio": TARGET}
    have_engine = _engine_available()
    modes = {"auto": (["engine"] if have_engine else []) + ["events"],
             "engine": ["engine"], "events": ["events"]}[args.mode]
    if "engine" in modes and not have_engine:
        print("the engine is not available; measuring the event path only")
        modes = ["events"]
    results["measured_with"] = "real engine" if "engine" in modes else "event path only"
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for mode in modes:
            sub = tmp / mode
            sub.mkdir()
            results[mode] = (_measure_engine if mode == "engine" else _measure_events)(
                args, sub, show)
    if "engine" in results:
        results["meets_target"] = bool(results["engine"]["ratio"] >= TARGET)
    emit(results, as_json=args.json)
    if not args.json:
        print(f"measured with: {results['measured_with']} (all exporters on vs all off, same run)")
        rows = []
        if "engine" in results:
            e = results["engine"]
            rows.append(["engine tokens/s", e["off_median"], e["on_median"], e["ratio"]])
        if "events" in results:
            e = results["events"]
            rows.append(["synthetic requests/s (event path)", e["off_median"], e["on_median"],
                         e["ratio"]])
        print_table(["measurement", "off (median)", "on (median)", "on/off"], rows)
        if "events" in results:
            e = results["events"]
            print(f"event path: {e['us_per_event_off']:.2f} us/event off, "
                  f"{e['us_per_event_on']:.2f} us/event with every exporter on")
        if "engine" in results:
            e = results["engine"]
            print(f"engine run: {e['events_emitted']} events, {e['events_dropped']} dropped, "
                  f"{e['subscriber_errors']} subscriber errors, {e['scrapes']} scrapes, "
                  f"{e['spans_exported']} spans, {e['log_lines']} log lines")
            verdict = "meets" if results["meets_target"] else "misses"
            print(f"on/off {e['ratio']:.3f} {verdict} the >= {TARGET} target")
    if args.plot:
        _plot(results, args.plot)
    return 0


def _plot(results: dict[str, Any], where: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [m for m in ("engine", "events") if m in results]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, m in zip(axes[0], panels, strict=True):
        r = results[m]
        key = "tok_s" if m == "engine" else "req_s"
        ax.boxplot([r[f"off_{key}"], r[f"on_{key}"]], tick_labels=["all off", "all on"])
        ax.set_title(f"{m}: on/off = {r['ratio']:.3f}")
        ax.set_ylabel("tokens/s" if m == "engine" else "synthetic requests/s")
    fig.tight_layout()
    path = default_plot_path("observability") if where == "auto" else Path(where)
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m agentic_llm.benchmarks.observability [options]``."""
    p = argparse.ArgumentParser(prog="python -m agentic_llm.benchmarks.observability")
    p.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
    p.add_argument("--plot", metavar="PNG", nargs="?", const="auto", default=None,
                   help="also write a PNG chart (default path under bench/results/)")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
