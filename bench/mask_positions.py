"""Per-position mask time on the ``bench grammar`` documents, slowest first.

Feeds the realistic documents of ``agentic-llm bench grammar`` the way its warm
``mask`` figure does (start-up warm-up, then plans never seen before) and records,
at every position, the mask time, the line written so far and the node type. The
slowest positions show where the mask tail comes from.

    PYTHONPATH=. python bench/mask_positions.py [--top 40] [--rounds 3] [--gc freeze] [--profile] [--json]

``--rounds`` repeats the whole feed on fresh compilers and keeps each position's
median, so a position is slow because of its work, not because of a pause of a
shared machine; the p99 over those medians, beside xgrammar's JSON grammar fed the
same way in the same process, is a steadier ratio than one ``bench grammar`` run on
a loaded machine. ``--profile`` runs cProfile over the first fill of every
position (a further feed) and prints the hottest functions.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from agentic_llm.benchmarks.report import emit


def _feed(profiler: Any = None) -> list[dict[str, Any]]:
    import xgrammar as xgr

    from agentic_llm.benchmarks.grammar import realistic_documents
    from agentic_llm.grammar import GrammarCompiler, TokenizerInfo
    from agentic_llm.planner import GenerateRequest, plan

    ti = _feed.ti = getattr(_feed, "ti", None) or TokenizerInfo.from_qwen()  # type: ignore[attr-defined]
    compiler = GrammarCompiler(ti)
    compiler.precompile_standard()
    compiler.warm_masks()
    if _feed.gc_mode == "freeze":  # type: ignore[attr-defined]
        import gc

        gc.collect()
        gc.freeze()
    bm = xgr.allocate_token_bitmask(1, ti.vocab_size)
    rows: list[dict[str, Any]] = []
    for d, (req, doc) in enumerate(realistic_documents()):
        m = compiler.matcher_for(plan(GenerateRequest.from_json(req)))
        for i, tid in enumerate(ti.encode(doc)):
            g, line = m._g, m.text
            if profiler is not None:
                profiler.enable()
            t0 = time.perf_counter()
            m.fill_next_token_bitmask(bm, 0)
            dt = time.perf_counter() - t0
            if profiler is not None:
                profiler.disable()
            t0 = time.perf_counter()
            m.fill_next_token_bitmask(bm, 0)
            again = time.perf_counter() - t0
            rows.append({"doc": d, "pos": i, "us": dt * 1e6, "again_us": again * 1e6, "ctype": g.ctype, "line": line,
                         "token": ti.token_bytes[tid].decode("utf-8", "replace")})
            if not m.accept_token(tid):
                raise RuntimeError(f"document {d} rejected at token {i}")
    return rows


def _json_positions(rounds: int) -> list[float]:
    """xgrammar's builtin JSON grammar on the requests of the same documents (the
    baseline of ``bench grammar``): each position's median mask time in microseconds."""
    import json

    import xgrammar as xgr

    from agentic_llm.benchmarks.grammar import realistic_documents

    ti = _feed.ti  # type: ignore[attr-defined]
    cg = xgr.GrammarCompiler(ti.xgrammar, max_threads=2, cache_enabled=False).compile_builtin_json_grammar()
    bm = xgr.allocate_token_bitmask(1, ti.vocab_size)
    docs = [json.dumps(r, indent=2) for r, _ in realistic_documents()]
    runs: list[list[float]] = []
    for _ in range(rounds):
        times: list[float] = []
        for doc in docs:
            m = xgr.GrammarMatcher(cg)
            for tid in ti.encode(doc):
                t0 = time.perf_counter()
                m.fill_next_token_bitmask(bm, 0)
                times.append((time.perf_counter() - t0) * 1e6)
                m.accept_token(tid)
        runs.append(times)
    return [statistics.median(col) for col in zip(*runs, strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threshold", type=float, default=40.0, help="microseconds")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--sort", default="cumulative", help="cProfile sort key")
    ap.add_argument("--gc", choices=("default", "freeze", "off"), default="default",
                    help="garbage collector: as is, frozen after the warm-up, or off")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    _feed.gc_mode = args.gc  # type: ignore[attr-defined]
    if args.gc == "off":
        import gc

        gc.disable()
    feeds = [_feed() for _ in range(args.rounds)]
    rows = feeds[0]
    json_us = _json_positions(args.rounds)
    for k, r in enumerate(rows):
        r["us"] = statistics.median(f[k]["us"] for f in feeds)
        r["again_us"] = statistics.median(f[k]["again_us"] for f in feeds)
    slow = sorted(rows, key=lambda r: -r["us"])
    over = [r for r in rows if r["us"] > args.threshold]
    from agentic_llm.benchmarks.report import percentile

    p99 = percentile([r["us"] for r in rows], 99)
    jp99 = percentile(json_us, 99)
    result = {"positions": len(rows), "over_threshold": len(over), "threshold_us": args.threshold,
              "p99_us": p99, "json_p99_us": jp99, "p99_ratio": p99 / jp99, "slowest": slow[:args.top]}
    if args.json:
        emit(result, as_json=True)
    else:
        print(f"{len(rows)} positions, {len(over)} over {args.threshold:.0f} us (median of {args.rounds}); "
              f"p99 {p99:.1f} us, xgrammar JSON p99 {jp99:.1f} us, ratio {p99 / jp99:.2f}")
        for r in slow[:args.top]:
            print(f"{r['us']:8.1f} {r['again_us']:6.1f}  d{r['doc']} p{r['pos']:<4} {r['ctype'] or '-':18} {r['line']!r:60} + {r['token']!r}")
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        _feed(prof)
        pstats.Stats(prof).sort_stats(args.sort).print_stats(45)


if __name__ == "__main__":
    main()
