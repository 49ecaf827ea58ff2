"""Requests, plans and subgraph texts shared by the subgraph-cache tests."""

from __future__ import annotations

from typing import Any

from agentic_llm.dsl.emit import quote
from agentic_llm.planner import ExecutionPlan, GenerateRequest, plan

__all__ = ["make_plan", "hotel_text", "request_json"]

TOOLS = [
    {"name": "web_search", "description": "search the web",
     "arguments": [{"name": "query", "type": "string", "required": True}], "output": "results"},
    {"name": "rank", "description": "rank items",
     "arguments": [{"name": "items", "type": "string", "required": True}], "output": "ranked"},
]


def request_json(city: str = "Rome", budget: int = 120, *, tenant: str = "",
                 path: str = "/dynamic/plan_1", tools: list[dict[str, Any]] | None = None,
                 permissions: list[str] | None = None) -> dict[str, Any]:
    ctx: dict[str, Any] = {"available_vars": {"city": "string", "budget": "number"},
                           "values": {"city": city, "budget": budget}}
    if permissions is not None:
        ctx["permissions"] = permissions
    return {
        "target_path": path,
        "prompt": "Find hotels in {{ city }} under {{ budget }} and rank them",
        "context": ctx,
        "tools": TOOLS if tools is None else tools,
        "tenant": tenant,
    }


def make_plan(**kw: Any) -> ExecutionPlan:
    return plan(GenerateRequest.from_json(request_json(**kw)))


def hotel_text(city: str = "Rome", budget: int = 120, path: str = "/dynamic/plan_1") -> str:
    """A canonical subgraph that carries the values literally."""
    city = quote(city)[1:-1]
    return f"""### AgenticDSL `{path}`
```yaml
# --- BEGIN AgenticDSL ---
graph_type: subgraph
entry: "start"
nodes:
  - id: "start"
    type: start
    next: ["{path}/search"]
  - id: "search"
    type: tool_call
    tool: "web_search"
    arguments:
      "query": "hotels in {city} under {budget}"
    output_keys: ["results"]
    next: ["{path}/rank"]
  - id: "rank"
    type: tool_call
    tool: "rank"
    arguments:
      "items": "{{{{ results }}}}"
    output_keys: ["ranked"]
    next: ["{path}/done"]
  - id: "done"
    type: end
# --- END AgenticDSL ---
```
"""
