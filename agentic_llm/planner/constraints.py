"""Plan content constraints: what a useful plan must contain, beyond being valid.

A request may ask that the plan call some of its granted tools (``require_tools``)
and have at least ``min_nodes`` nodes (``start`` included). The graph grammar
enforces both while the model writes (``agentic_llm.grammar.content``); the planner
refuses a combination no document can meet before any generation starts.

Request JSON::

    "constraints": {"require_tools": ["web_search", "summarize"], "min_nodes": 4}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["ContentConstraints", "check_feasible"]


def _bad(field_name: str, message: str) -> AgenticError:
    return AgenticError(ErrorCode.INVALID_REQUEST, f"{field_name}: {message}", field=field_name)


@dataclass(frozen=True)
class ContentConstraints:
    """``require_tools``: granted tools the plan must call; ``min_nodes``: the
    smallest node count accepted (0: no minimum)."""

    require_tools: tuple[str, ...] = ()
    min_nodes: int = 0

    @property
    def empty(self) -> bool:
        return not self.require_tools and self.min_nodes <= 0

    @classmethod
    def from_json(cls, obj: Any, where: str = "constraints") -> ContentConstraints:
        """Raises AgenticError ERR_INVALID_REQUEST naming the bad field."""
        if obj is None:
            return cls()
        if not isinstance(obj, Mapping):
            raise _bad(where, "must be an object")
        unknown = sorted(set(obj) - {"require_tools", "min_nodes"})
        if unknown:
            raise _bad(where, f"unknown field(s) {unknown}; known fields: ['min_nodes', 'require_tools']")
        tools = obj.get("require_tools") or []
        if not isinstance(tools, list) or not all(isinstance(t, str) and t for t in tools):
            raise _bad(f"{where}.require_tools", "must be a list of tool names")
        n = obj.get("min_nodes", 0)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise _bad(f"{where}.min_nodes", f"must be an integer >= 0, got {n!r}")
        return cls(tuple(dict.fromkeys(tools)), n)

    def to_json(self) -> dict[str, Any]:
        return {"require_tools": list(self.require_tools), "min_nodes": self.min_nodes}


def check_feasible(c: ContentConstraints, *, granted: Sequence[str], denied: Sequence[str],
                   node_types: Sequence[str], max_nodes: int) -> None:
    """Refuse constraints no valid document can meet.

    Raises:
        AgenticError: ERR_TOOL_NOT_GRANTED (a required tool is not granted),
            ERR_UNSUPPORTED_CAPABILITY (required tools but no ``tool_call`` node
            type), ERR_BUDGET_EXCEEDED (``min_nodes`` above ``max_nodes``, or more
            required tools than node slots besides ``start``).
    """
    if c.empty:
        return
    missing = [t for t in c.require_tools if t not in granted]
    if missing:
        why = "denied by the permissions" if all(t in denied for t in missing) else "not granted"
        raise AgenticError(ErrorCode.TOOL_NOT_GRANTED,
                           f"constraints.require_tools names {missing}, {why}; granted: {list(granted)}",
                           tools=missing)
    if c.require_tools and "tool_call" not in node_types:
        raise AgenticError(ErrorCode.UNSUPPORTED_CAPABILITY,
                           "constraints.require_tools needs tool_call nodes, which the node-type "
                           "whitelist does not allow")
    if c.min_nodes > max_nodes:
        raise AgenticError(ErrorCode.BUDGET_EXCEEDED,
                           f"constraints.min_nodes is {c.min_nodes} but budget.max_nodes is {max_nodes}",
                           min_nodes=c.min_nodes, max_nodes=max_nodes)
    if len(c.require_tools) + 1 > max_nodes:
        raise AgenticError(ErrorCode.BUDGET_EXCEEDED,
                           f"{len(c.require_tools)} required tool calls and the start node need "
                           f"{len(c.require_tools) + 1} nodes; budget.max_nodes is {max_nodes}",
                           max_nodes=max_nodes)
