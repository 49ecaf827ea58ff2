"""Start-up warm-up of the mask caches: one exemplar document per grammar shape.

An exemplar writes every node type of the shape once, with every optional field,
templates, reference lists of one and of several elements, a fork with its join and
an external target, so feeding it token by token through a matcher visits the
lexical classes real documents use (``lexclass``). Random walks add the odd ones.
"""

from __future__ import annotations

from agentic_llm.planner import GenerateRequest

__all__ = ["WARM_REQUEST", "exemplar_document", "warm_request"]

WARM_TARGET = "/dynamic/warm"
WARM_EXTERNAL = "/lib/util/check"

WARM_REQUEST = {
    "target_path": WARM_TARGET, "prompt": "warm up {{ a }}",
    "context": {"available_vars": {"a": "string", "b": "number"},
                "permissions": ["tool:*", "llm_call", "dsl_call", "generate_subgraph", "codelet_call"]},
    "tools": [{"name": "search", "arguments": [{"name": "query"}, {"name": "limit", "required": False}]},
              {"name": "rank", "arguments": [{"name": "items"}]}],
    "library": [{"path": WARM_EXTERNAL, "signature": "(x: string) -> y: string"}],
    "budget": {"max_nodes": 24, "max_tokens": 8192, "max_depth": 1},
}


def warm_request(node_types: tuple[str, ...]) -> GenerateRequest:
    """The warm-up request narrowed to ``node_types``."""
    return GenerateRequest.from_json({**WARM_REQUEST, "node_types": [t for t in node_types if t != "start"]})


def _body(node_type: str) -> list[str]:
    if node_type == "assign":
        return ["    assign:", '      "k": "value of {{ a }}"', '      "k2": "{{ b }} more"']
    if node_type == "tool_call":
        return ['    tool: "search"', "    arguments:", '      "query": "hotels in {{ a }} under {{ b }}"',
                '      "limit": "top 10"', '    output_keys: ["results", "count"]']
    if node_type == "assert":
        return ['    condition: "{{ a }}"', f'    on_failure: "{WARM_EXTERNAL}"']
    if node_type == "generate_subgraph":
        return ['    prompt_template: "plan more for {{ a }}"', '    output_keys: ["plan"]']
    if node_type == "llm_call":
        return ['    prompt_template: "answer {{ a }} briefly"', '    output_keys: ["answer"]']
    if node_type == "dsl_call":
        return ['    prompt_template: "write {{ b }}"', '    llm_tool_name: "writer"',
                '    output_keys: ["text"]']
    if node_type == "codelet_call":
        return ['    runtime: "python"', '    code: "print(1)"', '    security: "sandbox"']
    raise ValueError(f"no exemplar body for node type {node_type!r}")


def exemplar_document(node_types: tuple[str, ...]) -> str:
    """A canonical document over ``WARM_REQUEST``'s plan narrowed to ``node_types``."""
    t = WARM_TARGET
    content = [n for n in node_types if n not in ("start", "end", "fork", "join")]
    lines = [f"### AgenticDSL `{t}`", "```yaml", "# --- BEGIN AgenticDSL ---", "graph_type: subgraph",
             'entry: "start"', "nodes:", '  - id: "start"', "    type: start"]
    ids = [f"n{i}_{n}" for i, n in enumerate(content)]
    fork = {"fork", "join", "assign"} <= set(node_types)
    chain = ids + (["split"] if fork else []) + ["finish"]
    lines.append(f'    next: ["{t}/{chain[0]}"]')
    for i, (nid, n) in enumerate(zip(ids, content, strict=True)):
        lines += [f'  - id: "{nid}"', f"    type: {n}"] + _body(n)
        nxt = [f"{t}/{chain[i + 1]}"] + ([WARM_EXTERNAL] if i == 0 else [])
        lines.append("    next: [" + ", ".join(f'"{x}"' for x in nxt) + "]")
    if fork:
        lines += ['  - id: "split"', "    type: fork", "    fork:",
                  f'      branches: ["{t}/left", "{t}/right"]']
        for side in ("left", "right"):
            lines += [f'  - id: "{side}"', "    type: assign", "    assign:",
                      f'      "{side}": "{{{{ a }}}}"', f'    next: ["{t}/merge"]']
        lines += ['  - id: "merge"', "    type: join", "    join:",
                  f'      wait_for: ["{t}/left", "{t}/right"]', f'    next: ["{t}/finish"]']
    lines += ['  - id: "finish"', "    type: end", "    termination_mode: soft",
              "# --- END AgenticDSL ---", "```"]
    return "\n".join(lines) + "\n"
