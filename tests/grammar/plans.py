"""Varied plans for grammar tests."""

from __future__ import annotations

import random

from agentic_llm.planner import ExecutionPlan, GenerateRequest, plan

_TYPES = ["string", "integer", "number", "boolean", "array", "object"]
_VARS = ["city", "budget", "topic", "user_name", "limit", "lang"]


def random_plan(rng: random.Random, *, max_tools: int = 200, max_nodes: int = 50) -> ExecutionPlan:
    n_tools = rng.choice([0, 1, 2, 3, 5, 10, rng.randint(0, max_tools)])
    tools = []
    for i in range(n_tools):
        args = [{"name": f"arg_{j}", "type": rng.choice(_TYPES), "required": rng.random() < 0.5}
                for j in range(rng.randint(0, 4))]
        tools.append({"name": f"tool_{i}", "arguments": args})
    library = [{"path": f"/lib/std/op_{i}", "signature": "(a: string) -> b: string"}
               for i in range(rng.randint(0, 3))]
    vars_ = rng.sample(_VARS, rng.randint(0, 3))
    perms = None if rng.random() < 0.5 else (["tool:*", "llm_call", "dsl_call", "generate_subgraph"]
                                              + (["codelet_call"] if rng.random() < 0.3 else []))
    req = {
        "target_path": f"/dynamic/p{rng.randint(0, 99)}",
        "prompt": "do it",
        "context": {"available_vars": {v: "string" for v in vars_}, "permissions": perms},
        "tools": tools,
        "library": library,
        "budget": {"max_nodes": rng.randint(1, max_nodes), "max_tokens": 4096,
                   "max_depth": rng.randint(0, 2)},
    }
    return plan(GenerateRequest.from_json(req))
