"""``agentic-llm bench cache``: prefix and subgraph cache hit rates and latency.

Runs one workload (``--workload FILE.jsonl`` or ``--synthetic N``) through the real
planner, grammar matcher and engine in four modes, each on a fresh engine and cache:

    none      no cache at all (the baseline)
    prefix    radix prefix cache over the KV pool
    exact     + subgraph cache, exact hits only
    fuzzy     + subgraph cache with fuzzy hits (values rebound)

Per mode it reports the request hit rate, the token prefix hit rate, prefill and
decode tokens computed, p50/p99 latency of hits and misses, and the workload's
oracle hit rate (the share of requests whose structure was seen before). It also
checks transparency: with greedy decoding every exact hit must equal the text the
``none`` mode generated for that request, and every fuzzy hit must validate against
its plan; any other hit counts as a false hit.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentic_llm.benchmarks.report import (
    default_plot_path,
    display_path,
    emit,
    print_table,
    progress,
    ratio,
    summarize,
)
from agentic_llm.benchmarks.workloads import WorkloadSpec, read_jsonl, synthetic_workload

__all__ = ["add_arguments", "run", "run_benchmark", "build_tiny_model", "main", "MODES"]

MODES = ("none", "prefix", "exact", "fuzzy")


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--workload", metavar="FILE.jsonl", help="requests, one JSON object per line")
    src.add_argument("--synthetic", metavar="N", type=int, default=None,
                     help="generate N synthetic requests (default 80)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic workload")
    p.add_argument("--templates", type=int, default=8, help="task templates in the synthetic workload")
    p.add_argument("--model", metavar="DIR", default=None,
                   help="checkpoint (default: AGENTIC_MODEL_DIR, the shipped model, else a tiny random Llama)")
    p.add_argument("--num-blocks", type=int, default=2048, help="KV pages of each engine")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")


@dataclass
class _Sample:
    latency_s: float
    kind: str  # exact | fuzzy | miss | refused | invalid
    text: str | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    decode_tokens: int = 0
    lookup_s: float = 0.0  # subgraph-cache lookup alone (planning excluded)


@dataclass
class ModeResult:
    """Everything measured for one mode."""

    mode: str
    samples: list[_Sample] = field(default_factory=list)
    prefix_queries: int = 0
    prefix_hits: int = 0

    def summary(self, oracle: float) -> dict[str, Any]:
        n = len(self.samples)
        hits = [s for s in self.samples if s.kind in ("exact", "fuzzy")]
        misses = [s for s in self.samples if s.kind in ("miss", "invalid")]
        hit_lat = summarize([s.lookup_s * 1000 for s in hits])
        hit_e2e = summarize([s.latency_s * 1000 for s in hits])
        miss_lat = summarize([s.latency_s * 1000 for s in misses])
        return {
            "requests": n,
            "request_hit_rate": len(hits) / n if n else 0.0,
            "exact_hits": sum(s.kind == "exact" for s in self.samples),
            "fuzzy_hits": sum(s.kind == "fuzzy" for s in self.samples),
            "invalid_generations": sum(s.kind == "invalid" for s in self.samples),
            "refused": sum(s.kind == "refused" for s in self.samples),
            "token_prefix_hit_rate": ratio(float(self.prefix_hits), float(self.prefix_queries)),
            "prefill_tokens": sum(s.prompt_tokens - s.cached_tokens for s in self.samples),
            "decode_tokens": sum(s.decode_tokens for s in self.samples),
            "hit_p50_ms": hit_lat["p50"], "hit_p99_ms": hit_lat["p99"],
            "hit_e2e_p50_ms": hit_e2e["p50"], "hit_e2e_p99_ms": hit_e2e["p99"],
            "miss_p50_ms": miss_lat["p50"], "miss_p99_ms": miss_lat["p99"],
            "oracle_hit_rate": oracle,
        }


def build_tiny_model(path: Path) -> Path:
    """A random-weight Llama checkpoint (HF layout) with a byte-level BPE trained on
    DSL text; for development and tests when no trained model is available."""
    from agentic_llm.models.random_init import write_random_llama
    from agentic_llm.planner.prompt import STABLE_PROMPT_PREFIX

    corpus = [STABLE_PROMPT_PREFIX, "TARGET BUDGET TYPES TOOLS LIBRARY CONTEXT VALUES GOAL OUTPUT"]
    return write_random_llama(path, vocab_size=700, max_positions=4096,
                              tokenizer_corpus=corpus * 10)


def _model_dir(arg: str | None, tmp: Path) -> tuple[Path, str]:
    from agentic_llm import envs

    if arg:
        return Path(arg), "given"
    if envs.model_dir() is not None:
        return envs.model_dir(), "AGENTIC_MODEL_DIR"  # type: ignore[return-value]
    try:
        import agentic_llm.models as shipped

        d = Path(shipped.default_model_dir())  # type: ignore[attr-defined]
        if (d / "config.json").is_file():
            return d, "shipped"
    except (ImportError, AttributeError, OSError):
        pass
    return build_tiny_model(tmp / "tiny"), "tiny random Llama"


def _oracle(requests: list[dict[str, Any]]) -> float:
    """Share of requests whose group (structure without values) appeared earlier."""
    from agentic_llm.cache.key import SubgraphKey
    from agentic_llm.planner import GenerateRequest, PlanRefusal, plan

    seen: set[str] = set()
    again = 0
    for r in requests:
        try:
            g = SubgraphKey.from_plan(plan(GenerateRequest.from_json(r))).group_prefix()
        except PlanRefusal:
            continue
        again += g in seen
        seen.add(g)
    return again / len(requests) if requests else 0.0


def _run_mode(mode: str, requests: list[dict[str, Any]], model_dir: Path, compiler: Any,
              num_blocks: int, show: bool) -> ModeResult:
    from agentic_llm.cache.radix import RadixCache
    from agentic_llm.cache.subgraph import SubgraphCache, SubgraphCacheConfig
    from agentic_llm.dsl import DSLParseError, has_errors, parse, validate
    from agentic_llm.engine import LLMEngine, SamplingParams
    from agentic_llm.planner import GenerateRequest, PlanRefusal, plan
    from agentic_llm.planner.plan import ENGINE_VERSION

    engine = LLMEngine.from_pretrained(model_dir, num_blocks=num_blocks, block_size=16)
    radix = None
    if mode != "none":
        radix = RadixCache(engine.pool)
        engine.prefix_cache = radix
        engine.scheduler.prefix_cache = radix
    cache = None
    if mode in ("exact", "fuzzy"):
        cache = SubgraphCache(config=SubgraphCacheConfig(fuzzy=mode == "fuzzy"), engine_version=ENGINE_VERSION)
    result = ModeResult(mode)
    tokenizer = engine.tokenizer
    assert tokenizer is not None
    for r in progress(requests, total=len(requests), desc=mode, enabled=show):
        t0 = time.perf_counter()
        try:
            p = plan(GenerateRequest.from_json(r))
        except PlanRefusal:
            result.samples.append(_Sample(time.perf_counter() - t0, "refused"))
            continue
        if cache is not None:
            t1 = time.perf_counter()
            found = cache.lookup_plan(p)
            t2 = time.perf_counter()
            if found.hit:
                result.samples.append(_Sample(t2 - t0, found.kind, found.text, lookup_s=t2 - t1))
                continue
        ids = tokenizer.encode(p.render_prompt()).ids
        params = SamplingParams(max_tokens=p.max_tokens, temperature=0.0)
        out = engine.generate([ids], params, matchers=[compiler.matcher_for(p, max_tokens=p.max_tokens)])[0]
        text = out.text or ""
        try:
            valid = not has_errors(validate(parse(text), p.validation_policy()))
        except DSLParseError:
            valid = False
        if valid and cache is not None:
            cache.register_plan(p, text, kv_tokens=len(ids) + len(out.output_token_ids))
        result.samples.append(_Sample(
            time.perf_counter() - t0, "miss" if valid else "invalid", text, len(ids),
            out.metrics.num_cached_tokens, out.metrics.num_decode_steps))
    if radix is not None:
        result.prefix_queries, result.prefix_hits = radix.queries_tokens, radix.hit_tokens
        radix.check_integrity()
    engine.close()
    return result


def _transparency(results: dict[str, ModeResult], requests: list[dict[str, Any]]) -> dict[str, Any]:
    """Exact hits against the cache-off text; fuzzy hits re-validated independently."""
    from agentic_llm.dsl import DSLParseError, has_errors, parse, validate
    from agentic_llm.planner import GenerateRequest, plan

    base = results.get("none")
    checked = false_hits = fuzzy_invalid = fuzzy_checked = fuzzy_same = 0
    for mode in ("exact", "fuzzy"):
        res = results.get(mode)
        if res is None:
            continue
        for i, s in enumerate(res.samples):
            if s.kind == "exact" and base is not None:
                checked += 1
                false_hits += s.text != base.samples[i].text
            elif s.kind == "fuzzy":
                fuzzy_checked += 1
                policy = plan(GenerateRequest.from_json(requests[i])).validation_policy()
                try:
                    bad = has_errors(validate(parse(s.text or ""), policy))
                except DSLParseError:
                    bad = True
                fuzzy_invalid += bad
                # not required (a fuzzy hit is a rebound earlier answer), but worth knowing
                fuzzy_same += base is not None and s.text == base.samples[i].text
    return {"exact_hits_checked": checked, "exact_false_hits": false_hits,
            "fuzzy_hits_checked": fuzzy_checked, "fuzzy_invalid": fuzzy_invalid,
            "fuzzy_equal_to_cache_off": fuzzy_same}


def run_benchmark(requests: list[dict[str, Any]], *, modes: tuple[str, ...] = MODES, model: str | None = None,
                  num_blocks: int = 2048, show_progress: bool = True) -> dict[str, Any]:
    """Run ``requests`` in each of ``modes``; return the summary dictionary."""
    from agentic_llm.grammar import GrammarCompiler, TokenizerInfo

    clean = [{k: v for k, v in r.items() if k != "arrival_s"} for r in requests]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, source = _model_dir(model, Path(tmp))
        cfg = json.loads((model_dir / "config.json").read_text())
        info = TokenizerInfo.from_hf_tokenizer_json(model_dir / "tokenizer.json", vocab_size=cfg["vocab_size"])
        compiler = GrammarCompiler(info)
        results = {m: _run_mode(m, clean, model_dir, compiler, num_blocks, show_progress) for m in modes}
    oracle = _oracle(clean)
    summary = {m: r.summary(oracle) for m, r in results.items()}
    out: dict[str, Any] = {"model": display_path(model_dir), "model_source": source, "requests": len(clean),
                           "modes": summary, "transparency": _transparency(results, clean)}
    out["targets"] = _targets(summary)
    return out


def _targets(s: dict[str, dict[str, Any]]) -> dict[str, Any]:
    t: dict[str, Any] = {}
    if "fuzzy" in s:
        f = s["fuzzy"]
        t["fuzzy_hit_rate_over_oracle"] = ratio(f["request_hit_rate"], f["oracle_hit_rate"])
        t["hit_p50_ms"] = f["hit_p50_ms"]
        t["hit_e2e_p50_ms"] = f["hit_e2e_p50_ms"]
        t["miss_over_hit_e2e_p50"] = ratio(f["miss_p50_ms"], f["hit_e2e_p50_ms"])
    if "none" in s and "prefix" in s:
        t["prefill_reduction"] = 1.0 - ratio(float(s["prefix"]["prefill_tokens"]),
                                             float(s["none"]["prefill_tokens"]))
    return t


_COLUMNS = ["request_hit_rate", "exact_hits", "fuzzy_hits", "token_prefix_hit_rate", "prefill_tokens",
            "decode_tokens", "hit_p50_ms", "hit_p99_ms", "hit_e2e_p50_ms", "miss_p50_ms", "miss_p99_ms",
            "oracle_hit_rate"]


def _plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(out["modes"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    axes[0].bar(modes, [out["modes"][m]["request_hit_rate"] for m in modes], label="request hits")
    axes[0].axhline(next(iter(out["modes"].values()))["oracle_hit_rate"], color="k", ls="--", label="oracle")
    axes[0].set_title("request hit rate")
    axes[0].legend()
    axes[1].bar(modes, [out["modes"][m]["prefill_tokens"] for m in modes])
    axes[1].set_title("prefill tokens computed")
    for key, lab in (("hit_p50_ms", "hit p50"), ("miss_p50_ms", "miss p50")):
        axes[2].plot(modes, [out["modes"][m][key] for m in modes], marker="o", label=lab)
    axes[2].set_yscale("log")
    axes[2].set_title("latency (ms)")
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(path)


def run(args: argparse.Namespace) -> int:
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        print(f"agentic-llm bench cache: unknown modes {bad}; choose from {','.join(MODES)}", file=sys.stderr)
        return 2
    if args.workload:
        requests = read_jsonl(args.workload)
    else:
        n = args.synthetic if args.synthetic is not None else 80
        requests = synthetic_workload(WorkloadSpec(num_requests=n, num_templates=args.templates, seed=args.seed))
    out = run_benchmark(requests, modes=modes, model=args.model, num_blocks=args.num_blocks,
                        show_progress=not args.json)
    if args.plot:
        path = default_plot_path("cache") if args.plot == "auto" else Path(args.plot)
        _plot(out, path)
        out["plot"] = str(path)
    emit(out, as_json=args.json)
    if not args.json:
        print(f"model: {out['model']} ({out['model_source']}), {out['requests']} requests")
        print_table(["mode", *_COLUMNS], [[m, *(v[c] for c in _COLUMNS)] for m, v in out["modes"].items()])
        print("transparency:", json.dumps(out["transparency"]))
        print("targets:", json.dumps(out["targets"], default=str))
    tr = out["transparency"]
    return 1 if tr["exact_false_hits"] or tr["fuzzy_invalid"] else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m agentic_llm.benchmarks.cache [options]``: the same as ``agentic-llm bench cache``."""
    p = argparse.ArgumentParser(prog="python -m agentic_llm.benchmarks.cache", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
    p.add_argument("--plot", metavar="PNG", nargs="?", const="auto", default=None,
                   help="also write a PNG chart (default path under bench/results/)")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
