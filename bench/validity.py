"""Validity of a model's subgraphs, grammar-constrained against unconstrained decoding.

Runs the held-out requests in ``bench/validity_requests.jsonl`` (200 requests the
shipped model never saw: another seed of the corpus generator, no prompt shared
with the training set) through the serving pipeline (:class:`agentic_llm.serving.local.LocalGenerator`, the
path ``serve`` runs) twice, with and without the grammar, greedy, and validates every output against its
own plan. Constrained decoding must reach 100%; anything less is a bug in the
grammar, the matcher or the engine, and the failures are listed.

    python bench/validity.py [--model DIR] [--limit N] [--no-jump-forward] [--json] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path
from typing import Any

from agentic_llm.benchmarks.report import display_path, emit, print_table, progress

HERE = Path(__file__).resolve().parent
DEFAULT_REQUESTS = HERE / "validity_requests.jsonl"


def load_requests(path: Path, limit: int | None) -> list[dict[str, Any]]:
    """Request JSON objects, one per line."""
    with path.open(encoding="utf-8") as fh:
        reqs = [json.loads(line) for line in fh if line.strip()]
    return reqs[:limit] if limit else reqs


def evaluate(gen: Any, requests: list[dict[str, Any]], *, constrained: bool, chunk: int,
             show: bool, jump_forward: bool = True) -> dict[str, Any]:
    """Generate for every request and count valid outputs; failures keep their first errors."""
    results = []
    t0 = time.perf_counter()
    chunks = [requests[i : i + chunk] for i in range(0, len(requests), chunk)]
    label = "constrained" if constrained else "unconstrained"
    for part in progress(chunks, total=len(chunks), desc=label, enabled=show):
        results += gen.generate(part, honour_timeouts=False)
    wall = time.perf_counter() - t0
    valid = sum(r.valid for r in results)
    codes: collections.Counter[str] = collections.Counter()
    failures = []
    for i, r in enumerate(results):
        if r.valid:
            continue
        if r.error is not None:
            codes[r.error.code.value] += 1
        for d in r.errors:
            codes[d.code] += 1
        failures.append({"index": i, "target_path": r.target_path, "finish_reason": r.finish_reason,
                         "error": None if r.error is None else str(r.error),
                         "diagnostics": [str(d) for d in r.errors[:3]], "text": r.text})
    out_tokens = [r.timings.output_tokens for r in results if r.timings]
    forced = sum(r.timings.forced_tokens for r in results if r.timings)
    return {
        "mode": label,
        "requests": len(results),
        "valid": valid,
        "valid_rate": valid / len(results) if results else 0.0,
        "error_codes": dict(codes.most_common()),
        "finish_reasons": dict(collections.Counter(r.finish_reason for r in results)),
        "output_tokens_total": sum(out_tokens),
        "jump_forward_tokens": forced,
        "wall_s": wall,
        "failures": failures,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/validity.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
    p.add_argument("--requests", type=Path, default=DEFAULT_REQUESTS, help="request JSON lines")
    p.add_argument("--limit", type=int, default=None, help="first N requests only")
    p.add_argument("--chunk", type=int, default=25, help="requests batched together")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="where the model runs (cpu, cuda)")
    p.add_argument("--constrained-only", action="store_true", help="skip the unconstrained pass")
    p.add_argument("--no-jump-forward", action="store_true",
                   help="sample every token, forced text included (the masks alone keep outputs valid)")
    p.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    args = p.parse_args(argv)

    import torch

    from agentic_llm.serving.local import LocalGenerator

    torch.set_num_threads(args.threads)
    requests = load_requests(args.requests, args.limit)
    modes = []
    for c in ((True,) if args.constrained_only else (True, False)):
        gen = LocalGenerator(args.model, constrained=c, jump_forward=not args.no_jump_forward,
                             max_num_seqs=args.chunk, device=args.device)
        try:
            modes.append(evaluate(gen, requests, constrained=c, chunk=args.chunk, show=not args.json,
                                  jump_forward=not args.no_jump_forward))
        finally:
            gen.close()
    result = {"model": str(args.model or "shipped"), "device": args.device, "requests_file": display_path(args.requests),
              "modes": modes}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.json:
        emit(result, as_json=True)
    else:
        print_table(["mode", "valid", "rate", "out tokens", "jump-forward", "wall s", "errors"],
                    [[m["mode"], f"{m['valid']}/{m['requests']}", f"{100 * m['valid_rate']:.1f}%",
                      m["output_tokens_total"], m["jump_forward_tokens"], m["wall_s"],
                      ", ".join(f"{k}×{v}" for k, v in m["error_codes"].items()) or "-"]
                     for m in modes])
        bad = modes[0]["failures"]
        if bad:
            print(f"\n{len(bad)} constrained output(s) failed validation (a bug):")
            for f in bad[:5]:
                print(f"- #{f['index']} {f['target_path']} {f['finish_reason']} {f['error'] or ''} "
                      f"{'; '.join(f['diagnostics'])}")
    return 0 if modes[0]["valid"] == modes[0]["requests"] else 1


if __name__ == "__main__":
    sys.exit(main())
