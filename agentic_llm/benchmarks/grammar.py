"""``agentic-llm bench grammar``: compile and mask cost on the 151k Qwen vocabulary.

Measures, beside xgrammar's builtin JSON grammar on the same vocabulary (baseline):
cold compile of a new plan with 10 / 100 / 500 tools (grammar caches emptied), warm
(cached) compile, per-token mask time p50 / p99 / max while feeding realistic
documents, and the share of output characters jump-forward supplies.

Mask time is reported three ways: ``mask`` (the headline) after the start-up
warm-up of the mask caches (``GrammarCompiler.warm_masks``, which feeds exemplar
documents, not the measured ones) on plans never seen before; ``mask_cold`` with no
warm-up at all; ``mask_repeat`` for the same plans a second time. ``--walks N``
also runs N soundness random walks over varied plans and counts failures.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

from agentic_llm.benchmarks.report import emit, print_table, progress, ratio, summarize

__all__ = ["add_arguments", "run", "realistic_documents"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeat", type=int, default=5, help="repetitions of each compile timing")
    p.add_argument("--walks", type=int, default=0, help="also run N soundness random walks")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _request(n_tools: int, target: str = "/dynamic/plan_1") -> dict[str, Any]:
    tools = [{"name": "web_search", "arguments": [{"name": "query"}, {"name": "limit", "type": "integer", "required": False}]},
             {"name": "rank", "arguments": [{"name": "items", "type": "array"}, {"name": "by"}]}]
    tools += [{"name": f"tool_{i}", "arguments": [{"name": "x"}, {"name": "y", "required": False}]}
              for i in range(max(0, n_tools - 2))]
    return {"target_path": target, "prompt": "Find three hotels in {{ city }} and rank them",
            "context": {"available_vars": {"city": "string", "budget": "number"},
                        "values": {"city": "Rome", "budget": 120}},
            "tools": tools[:n_tools] if n_tools >= 2 else tools[:n_tools],
            "library": [{"path": "/lib/math/add", "signature": "(a: number, b: number) -> sum: number"}],
            "budget": {"max_nodes": 12, "max_tokens": 2048}}


def realistic_documents() -> list[tuple[dict[str, Any], str]]:
    """(request, canonical document) pairs shaped like what an agent would ask for."""
    t = "/dynamic/plan_1"
    head = f"### AgenticDSL `{t}`\n```yaml\n# --- BEGIN AgenticDSL ---\ngraph_type: subgraph\nentry: \"start\"\nnodes:\n"
    tail = "# --- END AgenticDSL ---\n```\n"
    d1 = head + f'''  - id: "start"
    type: start
    next: ["{t}/search"]
  - id: "search"
    type: tool_call
    tool: "web_search"
    arguments:
      "query": "hotels in {{{{ city }}}} under {{{{ budget }}}} euros"
      "limit": "top 10"
    output_keys: ["results"]
    next: ["{t}/rank_them"]
  - id: "rank_them"
    type: tool_call
    tool: "rank"
    arguments:
      "items": "{{{{ city }}}}"
      "by": "price and rating"
    output_keys: ["ranked"]
    next: ["{t}/check"]
  - id: "check"
    type: assert
    condition: "{{{{ city }}}}"
    on_failure: "/lib/math/add"
    next: ["{t}/done"]
  - id: "done"
    type: end
    termination_mode: soft
''' + tail
    d2 = head + f'''  - id: "start"
    type: start
    next: ["{t}/split"]
  - id: "split"
    type: fork
    fork:
      branches: ["{t}/search_a", "{t}/search_b"]
  - id: "search_a"
    type: tool_call
    tool: "web_search"
    arguments:
      "query": "cheap hotels {{{{ city }}}}"
    output_keys: ["cheap"]
    next: ["{t}/merge"]
  - id: "search_b"
    type: tool_call
    tool: "web_search"
    arguments:
      "query": "best rated hotels {{{{ city }}}}"
    output_keys: ["best"]
    next: ["{t}/merge"]
  - id: "merge"
    type: join
    join:
      wait_for: ["{t}/search_a", "{t}/search_b"]
    next: ["{t}/summary"]
  - id: "summary"
    type: assign
    assign:
      "shortlist": "{{{{ city }}}}: three hotels under {{{{ budget }}}}"
    next: ["{t}/end"]
  - id: "end"
    type: end
''' + tail
    d3 = head + f'''  - id: "start"
    type: start
    next: ["{t}/plan_more"]
  - id: "plan_more"
    type: generate_subgraph
    prompt_template: "Plan a day trip in {{{{ city }}}} for less than {{{{ budget }}}}"
    output_keys: ["trip"]
    next: ["/lib/math/add"]
''' + tail
    return [(_request(2), d1), (_request(2), d2), (_request(2), d3)]


def _mask_times(compiler: Any, p: Any, ids: list[int], accepts: list[float] | None = None) -> list[float]:
    """Mask time at each token of ``ids``; with ``accepts``, accept times go there."""
    import xgrammar as xgr

    m = compiler.matcher_for(p)
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    out = []
    for tid in ids:
        t0 = time.perf_counter()
        m.fill_next_token_bitmask(bm, 0)
        t1 = time.perf_counter()
        ok = m.accept_token(tid)
        t2 = time.perf_counter()
        out.append(t1 - t0)
        if accepts is not None:
            accepts.append(t2 - t1)
        if not ok:
            raise RuntimeError(f"benchmark document rejected at token {tid}")
    return out


def _jump_share(compiler: Any, p: Any, doc: str) -> float:
    enc = compiler.tokenizer_info.encode
    m = compiler.matcher_for(p)
    pos = jumped = 0
    while pos < len(doc):
        jf = m.find_jump_forward_string()
        if jf and doc.startswith(jf, pos) and m.accept_string(jf):
            jumped += len(jf)
            pos += len(jf)
            continue
        tid = enc(doc[pos:])[0]
        if not m.accept_token(tid):
            raise RuntimeError(f"benchmark document rejected at character {pos}")
        pos += len(compiler.tokenizer_info.token_bytes[tid].decode("utf-8", "replace"))
    return jumped / len(doc)


def _json_baseline(compiler: Any, docs: list[str]) -> dict[str, Any]:
    import xgrammar as xgr

    xc = xgr.GrammarCompiler(compiler.tokenizer_info.xgrammar, max_threads=2, cache_enabled=False)
    t0 = time.perf_counter()
    cg = xc.compile_builtin_json_grammar()
    compile_s = time.perf_counter() - t0
    times: list[float] = []
    bm = xgr.allocate_token_bitmask(1, compiler.tokenizer_info.vocab_size)
    for doc in docs:
        m = xgr.GrammarMatcher(cg)
        for tid in compiler.tokenizer_info.encode(doc):
            t1 = time.perf_counter()
            m.fill_next_token_bitmask(bm, 0)
            times.append(time.perf_counter() - t1)
            m.accept_token(tid)
    return {"compile_s": compile_s, "mask": summarize(times)}


def _reads_outputs(text: str, variables: frozenset[str]) -> bool:
    """True when a tool argument of ``text`` reads a name that is no context variable
    (an earlier node's output)."""
    from agentic_llm.dsl import parse
    from agentic_llm.grammar.dataflow import template_names

    for block in parse(text).blocks:
        for node in getattr(block, "nodes", ()):
            for v in (getattr(node, "arguments", None) or {}).values():
                if any(x not in variables for x in template_names(str(v))):
                    return True
    return False


def _walks(compiler: Any, n: int, seed: int, quiet: bool) -> dict[str, Any]:
    """Soundness walks. Every other walk is a dataflow walk: two or three required
    tool calls and brace-biased token draws, so arguments that read earlier outputs
    occur; every finished document must validate, load as YAML and (for the
    ``agenticrt`` target, the default) pass the reference runtime's model."""
    import yaml

    from agentic_llm.dsl import check_text
    from agentic_llm.dsl.conformance import check_runtime
    from agentic_llm.grammar.walk import random_walk
    from agentic_llm.planner import GenerateRequest, PlanRefusal, plan

    rng = random.Random(seed)
    fails: list[dict[str, Any]] = []
    reading = 0
    for i in progress(range(n), total=n, desc="walks", enabled=not quiet):
        dataflow = i % 2 == 1
        n_tools = rng.choice([2, 3]) if dataflow else rng.choice([0, 1, 3, 10, 50, 200])
        req = _request(n_tools, target=f"/dynamic/w{i}")
        req["budget"] = {"max_nodes": rng.randint(1, 50), "max_tokens": 8192}
        if dataflow:
            req["constraints"] = {"require_tools": [t["name"] for t in req["tools"]]}
            req["budget"]["max_nodes"] = rng.randint(n_tools + 1, 10)
        if rng.random() < 0.5:
            req["library"] = []
        try:
            p = plan(GenerateRequest.from_json(req))
        except PlanRefusal:
            continue
        r = random_walk(compiler.matcher_for(p, max_string=24), compiler.vocab, rng,
                        brace_bias=0.5 if dataflow else 0.0)
        problems = [] if r.completed else [r.reason]
        if r.completed:
            problems += [d.message for d in check_text(r.text, p.validation_policy())
                         if d.severity == "error"]
            if p.target_runtime == "agenticrt":
                problems += [d.message for d in check_runtime(r.text, loaded=[e.path for e in p.library])
                             if d.severity == "error"]
            try:
                yaml.safe_load(r.text.split("```yaml\n", 1)[1].rsplit("```", 1)[0])
            except yaml.YAMLError as exc:
                problems.append(str(exc))
            reading += _reads_outputs(r.text, frozenset(p.template_vars))
        if problems:
            fails.append({"walk": i, "problems": problems[:3]})
    return {"walks": n, "failures": len(fails), "reading_earlier_outputs": reading,
            "examples": fails[:3]}


def run(args: argparse.Namespace) -> int:
    from agentic_llm.grammar import GrammarCompiler, TokenizerInfo
    from agentic_llm.planner import GenerateRequest, plan

    quiet = args.json
    t0 = time.perf_counter()
    ti = TokenizerInfo.from_qwen()
    compiler = GrammarCompiler(ti)
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiler.precompile_standard()
    precompile_s = time.perf_counter() - t0

    result: dict[str, Any] = {"vocab_size": ti.vocab_size, "setup_s": setup_s,
                              "precompile_standard_s": precompile_s}
    cold: dict[str, Any] = {}
    for n in (10, 100, 500):
        p = plan(GenerateRequest.from_json(_request(n)))
        new_shape, known_shape = [], []
        for _ in range(max(1, args.repeat // 2)):
            compiler.clear_caches()  # a cold compile on purpose
            t1 = time.perf_counter()
            compiler.matcher_for(p)
            new_shape.append(time.perf_counter() - t1)
        compiler.precompile_standard()
        for i in range(args.repeat):
            q = plan(GenerateRequest.from_json(_request(n, target=f"/dynamic/cold_{n}_{i}")))
            t1 = time.perf_counter()
            compiler.matcher_for(q)
            known_shape.append(time.perf_counter() - t1)
        cold[str(n)] = {"new_plan_s": summarize(known_shape)["p50"],
                        "new_grammar_shape_s": summarize(new_shape)["p50"]}
    result["cold_compile"] = cold
    p = plan(GenerateRequest.from_json(_request(10)))
    compiler.matcher_for(p)
    result["warm_compile_s"] = summarize([_timed(lambda: compiler.compiled_for_plan(p))
                                          for _ in range(200)])["p50"]

    docs = realistic_documents()
    # cold: no mask-cache warm-up, every lexical class is met for the first time
    cold_compiler = GrammarCompiler(ti)
    cold_compiler.precompile_standard()
    cold_times: list[float] = []
    for req, doc in docs:
        cold_times += _mask_times(cold_compiler, plan(GenerateRequest.from_json(req)), ti.encode(doc))
    result["mask_cold"] = summarize(cold_times)
    # warm: after the start-up warm-up (exemplar documents, not these), plans unseen
    t1 = time.perf_counter()
    result["warm_classes"] = compiler.warm_masks()
    result["warm_masks_s"] = time.perf_counter() - t1
    times: list[float] = []
    accepts: list[float] = []
    repeat: list[float] = []
    shares = []
    for req, doc in progress(docs, desc="documents", enabled=not quiet):
        dp = plan(GenerateRequest.from_json(req))
        times += _mask_times(compiler, dp, ti.encode(doc), accepts)
        shares.append(_jump_share(compiler, dp, doc))
    for req, doc in docs:  # the same plans again: every per-plan memo is warm too
        repeat += _mask_times(compiler, plan(GenerateRequest.from_json(req)), ti.encode(doc))
    result["mask"] = summarize(times)
    # the other half of a constrained step's grammar cost, for the record
    result["accept"] = summarize(accepts)
    result["mask_repeat"] = summarize(repeat)
    result["jump_forward_share"] = sum(shares) / len(shares)
    result["json_baseline"] = _json_baseline(compiler, [json.dumps(r, indent=2) for r, _ in docs])
    result["mask_p50_ratio_vs_json"] = ratio(result["mask"]["p50"], result["json_baseline"]["mask"]["p50"])
    result["mask_p99_ratio_vs_json"] = ratio(result["mask"]["p99"], result["json_baseline"]["mask"]["p99"])
    if args.walks:
        result["soundness"] = _walks(compiler, args.walks, args.seed, quiet)

    emit(result, as_json=args.json)
    if not args.json:
        rows = [[f"cold compile, new plan, {n} tools (ms)", cold[n]["new_plan_s"] * 1e3, 50.0]
                for n in cold]
        rows += [[f"cold compile, new grammar shape, {n} tools (ms)", cold[n]["new_grammar_shape_s"] * 1e3, "-"]
                 for n in cold]
        rows += [
            ["warm compile (ms)", result["warm_compile_s"] * 1e3, 0.1],
            ["mask p50 (us)", result["mask"]["p50"] * 1e6, 10.0],
            ["mask p99 (us)", result["mask"]["p99"] * 1e6, 200.0],
            ["mask max (us)", result["mask"]["max"] * 1e6, "-"],
            ["accept p50 / p99 (us)",
             f'{result["accept"]["p50"] * 1e6:.1f} / {result["accept"]["p99"] * 1e6:.1f}', "-"],
            ["mask p50 / p99, cold mask cache (us)",
             f'{result["mask_cold"]["p50"] * 1e6:.1f} / {result["mask_cold"]["p99"] * 1e6:.1f}', "-"],
            ["mask p50 / p99, repeated plans (us)",
             f'{result["mask_repeat"]["p50"] * 1e6:.1f} / {result["mask_repeat"]["p99"] * 1e6:.1f}', "-"],
            ["json baseline mask p50 (us)", result["json_baseline"]["mask"]["p50"] * 1e6, "-"],
            ["json baseline mask p99 (us)", result["json_baseline"]["mask"]["p99"] * 1e6, "-"],
            ["json baseline compile (ms)", result["json_baseline"]["compile_s"] * 1e3, "-"],
            ["jump-forward share of chars", result["jump_forward_share"], 0.30],
        ]
        print_table(["measure", "value", "target"], rows)
        if args.walks:
            s = result["soundness"]
            print(f"soundness: {s['walks']} walks, {s['failures']} failures, "
                  f"{s['reading_earlier_outputs']} reading earlier outputs")
    if args.plot:
        _plot(result, args.plot)
    return 1 if args.walks and result["soundness"]["failures"] else 0


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _plot(result: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agentic_llm.benchmarks.report import default_plot_path

    out = default_plot_path("grammar") if path == "auto" else path
    fig, ax = plt.subplots(figsize=(7, 3.2))
    series = [("dsl, warm", result["mask"]), ("dsl, cold", result["mask_cold"]),
              ("dsl, repeat", result["mask_repeat"]), ("json", result["json_baseline"]["mask"])]
    xs = range(len(series))
    ax.bar([x - 0.2 for x in xs], [m["p50"] * 1e6 for _n, m in series], width=0.4, label="p50")
    ax.bar([x + 0.2 for x in xs], [m["p99"] * 1e6 for _n, m in series], width=0.4, label="p99")
    ax.axhline(10, color="C0", linestyle=":", linewidth=1)
    ax.axhline(200, color="C1", linestyle=":", linewidth=1)
    ax.set_xticks(list(xs), [n for n, _m in series])
    ax.set_yscale("log")
    ax.set_ylabel("mask time per token (us)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
