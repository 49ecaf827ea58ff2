"""Content rules the graph layer consults: required tool calls and a minimum node count.

The rules are checked at the points where a document could stop growing, so a
generation can never reach a dead end:

- a reference list (``next``, fork ``branches``) written while no node is pending,
  while the document still owes nodes or tool calls, must name a fresh node (and a
  ``next`` line is then mandatory), so the document keeps a node to write;
- when the node slots left (this node and the budget's remaining ones) only just
  cover the required tools not yet called, this node must be a ``tool_call`` of one
  of them;
- the end marker is allowed only once every rule holds.

The planner has already refused combinations no document meets (a required tool not
granted, ``min_nodes`` above ``max_nodes``, more required tools than slots).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentic_llm.grammar.graph import GraphState

__all__ = ["ContentRules"]


@dataclass(frozen=True)
class ContentRules:
    """``require_tools`` the document must call; ``min_nodes`` it must declare."""

    require_tools: frozenset[str] = frozenset()
    min_nodes: int = 0
    max_nodes: int = 0

    @classmethod
    def from_plan(cls, plan: Any) -> ContentRules | None:
        """The rules of an ``ExecutionPlan``'s request (None when it asks for none)."""
        c = getattr(plan.request, "constraints", None)
        if c is None or c.empty:
            return None
        return cls(frozenset(c.require_tools), c.min_nodes, plan.max_nodes)

    def missing(self, g: GraphState) -> frozenset[str]:
        """Required tools no declared node calls yet."""
        return self.require_tools - frozenset(g.called)

    def owes(self, g: GraphState) -> bool:
        """The document is not acceptable yet."""
        return bool(self.missing(g)) or g.count < self.min_nodes

    def must_grow(self, g: GraphState) -> bool:
        """No node is pending and the document still owes: this reference list must
        name a fresh node."""
        return not g.pending and self.owes(g)

    def forced_tools(self, g: GraphState) -> frozenset[str] | None:
        """The tools this node must call when the slots left only just cover the
        missing ones (None: any granted tool, any type)."""
        missing = self.missing(g)
        if missing and len(missing) >= 1 + self.max_nodes - g.count:
            return missing
        return None

    def type_ok(self, g: GraphState, node_type: str) -> bool:
        if node_type == "end" and self.must_grow(g):
            return False  # an end node names no next node; the document owes one
        return self.forced_tools(g) is None or node_type == "tool_call"

    def tool_ok(self, g: GraphState, tool: str) -> bool:
        forced = self.forced_tools(g)
        return forced is None or tool in forced
