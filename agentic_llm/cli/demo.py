"""``agentic-llm demo``: start a server on a free loopback port and talk to it.

Sends a request, the same request again (a subgraph-cache hit), a streamed request
(node events as they complete) and a three-branch fork, printing what came back and
which answers the cache served.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run", "run_demo", "plan_line"]

_REQUEST: dict[str, Any] = {
    "target_path": "/dynamic/plan_1",
    "prompt": "Search the web for three hotels in {{ city }} under {{ budget }} and rank them",
    "context": {
        "available_vars": {"city": "string", "budget": "number"},
        "values": {"city": "Rome", "budget": 120},
        "permissions": ["tool:web_search", "tool:rank"],
    },
    "tools": [
        {"name": "web_search", "description": "search the web",
         "arguments": [{"name": "query", "type": "string", "required": True}], "output": "results"},
        {"name": "rank", "description": "rank items",
         "arguments": [{"name": "items", "type": "string", "required": True}], "output": "ranked"},
    ],
    "budget": {"max_nodes": 6, "max_tokens": 384, "timeout_sec": 120},
}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="start a local server and send it a few requests",
                       description=__doc__)
    p.add_argument("--model", metavar="PATH", help="checkpoint directory or .gguf file (default: SmolLM2-135M-Instruct "
                   "with the shipped adapter when installed, else agentic-tiny; or AGENTIC_MODEL_DIR)")
    p.add_argument("--show-text", action="store_true", help="print each generated document")
    p.set_defaults(func=run)


def _line(label: str, r: Any) -> str:
    hit = "CACHE HIT" if r.cache_hit else "generated"
    return (f"{label:<22} {r.target_path:<20} {hit:<10} cache={r.cache.value:<6} "
            f"nodes={r.counts.node_count} tokens={r.counts.completion_tokens} "
            f"valid={r.valid} {r.timings.total_ms:.0f} ms")


def _short(value: Any, limit: int = 28) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def plan_line(result: Any) -> str:
    """The plan's nodes in document order on one line: ``tool(arg=value, ...)`` for a
    tool call and ``-> key`` for what it writes, the node type otherwise."""
    steps = []
    for n in result.nodes:
        if n.type == "tool_call":
            args = n.fields.get("arguments") or {}
            shown = ", ".join(f"{k}={_short(v)}" for k, v in args.items()) if isinstance(args, dict) else ""
            keys = n.fields.get("output_keys") or []
            out = f" -> {', '.join(map(str, keys))}" if keys else ""
            steps.append(f"{n.fields.get('tool', '?')}({shown}){out}")
        else:
            steps.append(n.type)
    return "  plan: " + " | ".join(steps)


def run(args: argparse.Namespace) -> int:
    from agentic_llm.config import ServerConfig
    from agentic_llm.serving import build_pipeline

    config = ServerConfig.from_dict({
        "listen": "127.0.0.1:0", "cache": {"store": "memory"},
        "model": {"dir": args.model or ""},
        "limits": {"max_concurrent": 8, "max_queue": 16, "drain_timeout_sec": 10},
    })
    from agentic_llm.serving import resolve_model_dir

    model = resolve_model_dir(config.model.dir)
    print(f"agentic-llm demo: loading {model.name} ...", file=sys.stderr, flush=True)
    pipeline = build_pipeline(config, model_dir=model)
    adapter = getattr(getattr(pipeline.engine, "loaded", None), "adapter", None)
    print(f"model: {model.name}" + (f" + adapter {adapter.name}" if adapter else ""), flush=True)
    try:
        return run_demo(config, pipeline, show_text=args.show_text)
    finally:
        pipeline.close()


def run_demo(config: Any, pipeline: Any, *, show_text: bool = False, out: Any = None) -> int:
    """Serve ``pipeline`` on ``config.listen``, send the demo requests, print, drain.

    Returns 0 when every answer was a valid subgraph, else 1.
    """
    from agentic_llm.client import Client
    from agentic_llm.server import AgenticServer
    from agentic_llm.serving import NodeEvent, ServingResult

    out = out or sys.stdout

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    server = AgenticServer(config, pipeline).start()
    ok = True
    try:
        say(f"server listening on {server.address}")
        with Client(server.address) as client:
            say(f"health: {client.health()}")
            first = client.generate_subgraph(_REQUEST)
            say(_line("GenerateSubgraph", first))
            say(plan_line(first))
            if show_text:
                say(first.text)
            again = client.generate_subgraph(_REQUEST)
            say(_line("same request again", again))
            ok = ok and first.valid and again.valid and again.cache_hit
            streamed = dict(_REQUEST, target_path="/dynamic/plan_2")
            for item in client.stream(streamed):
                if isinstance(item, NodeEvent):
                    say(f"  stream: node {item.index} {item.node.path} ({item.node.type}) "
                        f"at {item.elapsed_ms:.0f} ms")
                elif isinstance(item, ServingResult):
                    say(_line("GenerateSubgraphStream", item))
                    ok = ok and item.valid
            branches = [dict(_REQUEST, target_path=f"/dynamic/fork_{i}",
                             prompt=f"Branch {i}: " + _REQUEST["prompt"]) for i in range(3)]
            for b in client.fork(branches, dag_id="demo-dag"):
                if b.result is not None:
                    say(_line(f"GenerateFork[{b.branch_id}]", b.result))
                    ok = ok and b.result.valid
                else:
                    say(f"GenerateFork[{b.branch_id}] error: {b.error}")
                    ok = False
            stats = client.cache_stats()
            say(f"cache: {stats['entries']:.0f} entries, {stats['exact_hits']:.0f} exact hits, "
                f"{stats['misses']:.0f} misses, prefix hit tokens {stats['prefix_hit_tokens']:.0f}"
                f"/{stats['prefix_query_tokens']:.0f}")
    finally:
        server.drain(10)
    return 0 if ok else 1
