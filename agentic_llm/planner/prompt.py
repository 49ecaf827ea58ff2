"""The model's prompt: a stable part shared by every request, then what varies.

The stable part (``STABLE_PROMPT_PREFIX``) is the same text for every plan, so the
prefix cache keeps its KV pages; it states the DSL rules in a few lines and shows one
canonical example. The varying part is terse and regular (one line per tool, per
library entry, per field) because small models are trained on exactly this text.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentic_llm.planner.plan import ExecutionPlan

__all__ = ["STABLE_PROMPT_PREFIX", "render_varying_part", "render_prompt"]

STABLE_PROMPT_PREFIX = """\
Write one AgenticDSL block: a subgraph at TARGET, in canonical form.
Rules:
- heading, ```yaml fence, BEGIN/END markers exactly as in the example.
- body: graph_type: subgraph, entry: "start", nodes.
- first node: id "start", type start, next list.
- ids: lowercase letters, digits, _; each id once.
- next, branches, wait_for: TARGET/<id> of a node here, or a LIBRARY path.
- no cycles; at most BUDGET nodes; only TYPES.
- tool_call: a TOOLS name, its arguments (? marks optional), output_keys.
- strings double-quoted; variables as {{ name }} from CONTEXT.
Example:
### AgenticDSL `/dynamic/example`
```yaml
# --- BEGIN AgenticDSL ---
graph_type: subgraph
entry: "start"
nodes:
  - id: "start"
    type: start
    next: ["/dynamic/example/search"]
  - id: "search"
    type: tool_call
    tool: "web_search"
    arguments:
      "query": "{{ topic }}"
    output_keys: ["results"]
    next: ["/dynamic/example/done"]
  - id: "done"
    type: end
# --- END AgenticDSL ---
```
"""


def _value(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


DESCRIPTION_CHARS = 80


def _short(text: str, limit: int = DESCRIPTION_CHARS) -> str:
    """``text`` on one line, cut at a word boundary to at most ``limit`` characters."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return (cut or text[:limit]).rstrip(",;:") + "..."


def render_varying_part(plan: ExecutionPlan, *, descriptions: bool = False) -> str:
    """The per-request part: target, budget, types, tools, library, context, goal.

    ``descriptions`` adds each tool's description (one line, at most
    ``DESCRIPTION_CHARS`` characters) after its signature: an instruct model picks
    tools by what they do. The shipped format model was trained without them.
    """
    req = plan.request
    lines = [
        f"TARGET: {plan.target_path}",
        f"BUDGET: {plan.max_nodes} nodes, {plan.max_tokens} tokens",
        "TYPES: " + " ".join(t for t in plan.node_types if t != "start"),
        "TOOLS:",
    ]
    for tool in plan.tools:
        args = ", ".join(a.name + ("" if a.required else "?") for a in tool.arguments)
        out = f" -> {tool.output}" if tool.output else ""
        about = f": {_short(tool.description)}" if descriptions and tool.description.strip() else ""
        lines.append(f"{tool.name}({args}){out}{about}")
    lines.append("LIBRARY:")
    for entry in plan.library:
        lines.append(f"{entry.path} {entry.signature}".rstrip())
    ctx = req.context.available_vars
    lines.append("CONTEXT: " + " ".join(f"{k}:{ctx[k]}" for k in sorted(ctx)))
    vals = req.context.values
    lines.append("VALUES: " + " ".join(f"{k}={_value(vals[k])}" for k in sorted(vals)))
    if plan.signature:
        lines.append(f"SIGNATURE: {plan.signature}")
    lines.append(f"GOAL: {' '.join(req.prompt.split())}")
    lines.append("OUTPUT:")
    return "\n".join(lines) + "\n"


def render_prompt(plan: ExecutionPlan) -> str:
    """The whole prompt: ``STABLE_PROMPT_PREFIX`` then ``render_varying_part``."""
    return STABLE_PROMPT_PREFIX + render_varying_part(plan)
