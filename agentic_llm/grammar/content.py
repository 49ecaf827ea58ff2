"""Content rules the graph layer consults: required tool calls, a minimum node count
and a required join over named branches.

The rules are checked at the points where a document could stop growing, so a
generation can never reach a dead end:

- a reference list (``next``, fork ``branches``) written while no node is pending,
  while the document still owes nodes or tool calls, must name a fresh node (and a
  ``next`` line is then mandatory), so the document keeps a node to write;
- when the node slots left (this node and the budget's remaining ones) only just
  cover the required tools not yet called, this node must be a ``tool_call`` of one
  of them;
- the end marker is allowed only once every rule holds.

A required join over named branch ids ``N`` (``require_join``) owes a ``join`` node
whose ``wait_for`` lists every id of ``N``. The rules keep a path to it open:

- slots: ``slack = max_nodes - count - pending - unreferenced(N) - J`` never drops
  below 0, where ``J`` is 1 until the join is written or a pending id is designated
  to become it. A reference list may name any fresh id while ``slack >= 1``; at
  ``slack == 0`` only the unreferenced branch ids, or, once all are referenced and
  no join candidate exists yet, one fresh id that becomes the join candidate;
- the join candidate is declared only after every branch, must be a ``join``, and
  its ``wait_for`` names branches only and closes once it names all of them;
- a branch may not write a context key another branch writes (its ``output_keys``
  and ``assign`` keys), so the join merges with ``error_on_conflict`` cleanly.

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
    join: frozenset[str] = frozenset()  # branch ids a join must wait for

    @classmethod
    def from_plan(cls, plan: Any) -> ContentRules | None:
        """The rules of an ``ExecutionPlan``'s request (None when it asks for none)."""
        c = getattr(plan.request, "constraints", None)
        if c is None or c.empty:
            return None
        return cls(frozenset(c.require_tools), c.min_nodes, plan.max_nodes,
                   frozenset(getattr(c, "require_join", ())))

    def missing(self, g: GraphState) -> frozenset[str]:
        """Required tools no declared node calls yet."""
        return self.require_tools - frozenset(g.called)

    def owes(self, g: GraphState) -> bool:
        """The document is not acceptable yet."""
        return (bool(self.missing(g)) or g.count < self.min_nodes
                or bool(self.join) and not g.joined)

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

    # -- the required join ------------------------------------------------------------

    def unreferenced(self, g: GraphState, new: tuple[str, ...] = ()) -> list[str]:
        """Branch ids no reference names yet (``new``: ids a list being written added)."""
        if not self.join or g.joined:
            return []
        seen = set(g.declared) | set(g.pending) | set(new)
        return sorted(self.join - seen)

    def slack(self, g: GraphState, new: tuple[str, ...] = ()) -> int:
        """Node slots left after the pending ids, the unreferenced branches and the
        join (``new``: ids a list being written made pending)."""
        owed = 0 if g.joined or g.jc else 1
        return (self.max_nodes - g.count - len(g.pending) - len(new)
                - len(self.unreferenced(g, new)) - owed)

    def any_fresh(self, g: GraphState, new: tuple[str, ...] = ()) -> bool:
        """Any fresh id may be named here (else only the unreferenced branch ids)."""
        if not self.join or g.joined:
            return True
        s = self.slack(g, new)
        return s >= 1 or s == 0 and not self.unreferenced(g, new) and not g.jc

    def branches_done(self, g: GraphState) -> bool:
        return self.join <= set(g.declared)

    def taken_keys(self, g: GraphState) -> frozenset[str]:
        """Keys the node being written may not write: those of the other branches
        (empty unless it is a branch of the required join)."""
        if g.cur not in self.join or g.joined:
            return frozenset()
        written = g.written()
        return frozenset(k for n in self.join if n != g.cur for k in written.get(n, ()))

    def type_ok(self, g: GraphState, node_type: str) -> bool:
        if g.jc and g.cur == g.jc:
            return node_type == "join"  # the designated join candidate
        if node_type == "end" and self.must_grow(g):
            return False  # an end node names no next node; the document owes one
        return self.forced_tools(g) is None or node_type == "tool_call"

    def tool_ok(self, g: GraphState, tool: str) -> bool:
        forced = self.forced_tools(g)
        return forced is None or tool in forced
