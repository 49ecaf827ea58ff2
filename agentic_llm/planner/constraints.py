"""Plan content constraints: what a useful plan must contain, beyond being valid.

A request may ask that the plan call some of its granted tools (``require_tools``),
have at least ``min_nodes`` nodes (``start`` included), and join named branches
(``require_join``: node ids; the plan must declare a node with each id and a ``join``
whose ``wait_for`` lists all of them). The graph grammar enforces them while the
model writes (``agentic_llm.grammar.content``); the planner refuses a combination no
document can meet before any generation starts.

Request JSON::

    "constraints": {"require_tools": ["web_search", "summarize"], "min_nodes": 4}
    "constraints": {"require_join": ["flights", "hotels"]}
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["ContentConstraints", "check_feasible"]

_ID = re.compile(r"[a-z][a-z0-9_]{0,31}")
_FIELDS = ["min_nodes", "require_join", "require_tools"]


def _bad(field_name: str, message: str) -> AgenticError:
    return AgenticError(ErrorCode.INVALID_REQUEST, f"{field_name}: {message}", field=field_name)


@dataclass(frozen=True)
class ContentConstraints:
    """``require_tools``: granted tools the plan must call; ``min_nodes``: the
    smallest node count accepted (0: no minimum); ``require_join``: node ids of
    branches a ``join`` must wait for (empty: none)."""

    require_tools: tuple[str, ...] = ()
    min_nodes: int = 0
    require_join: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.require_tools and self.min_nodes <= 0 and not self.require_join

    @classmethod
    def from_json(cls, obj: Any, where: str = "constraints") -> ContentConstraints:
        """Raises AgenticError ERR_INVALID_REQUEST naming the bad field."""
        if obj is None:
            return cls()
        if not isinstance(obj, Mapping):
            raise _bad(where, "must be an object")
        unknown = sorted(set(obj) - set(_FIELDS))
        if unknown:
            raise _bad(where, f"unknown field(s) {unknown}; known fields: {_FIELDS}")
        tools = obj.get("require_tools") or []
        if not isinstance(tools, list) or not all(isinstance(t, str) and t for t in tools):
            raise _bad(f"{where}.require_tools", "must be a list of tool names")
        n = obj.get("min_nodes", 0)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise _bad(f"{where}.min_nodes", f"must be an integer >= 0, got {n!r}")
        join = obj.get("require_join") or []
        if not isinstance(join, list) or not all(isinstance(b, str) for b in join):
            raise _bad(f"{where}.require_join", "must be a list of node ids")
        for b in join:
            if _ID.fullmatch(b) is None or b in ("start", "true", "false"):
                raise _bad(f"{where}.require_join",
                           f"{b!r} is not a usable node id (lowercase letter, then up to 31 "
                           "lowercase letters, digits or '_'; not 'start', 'true' or 'false')")
        if len(set(join)) != len(join):
            raise _bad(f"{where}.require_join", f"names a branch twice: {join}")
        return cls(tuple(dict.fromkeys(tools)), n, tuple(join))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"require_tools": list(self.require_tools), "min_nodes": self.min_nodes}
        if self.require_join:
            out["require_join"] = list(self.require_join)
        return out


def check_feasible(c: ContentConstraints, *, granted: Sequence[str], denied: Sequence[str],
                   node_types: Sequence[str], max_nodes: int) -> None:
    """Refuse constraints no valid document can meet.

    Raises:
        AgenticError: ERR_TOOL_NOT_GRANTED (a required tool is not granted),
            ERR_UNSUPPORTED_CAPABILITY (required tools but no ``tool_call`` node
            type; a required join but no ``join`` node type; a required join
            together with required tools), ERR_BUDGET_EXCEEDED (``min_nodes``
            above ``max_nodes``, more required tools than node slots besides
            ``start``, or more branches than fit beside ``start`` and the join).
    """
    if c.empty:
        return
    if c.require_join:
        _check_join(c, node_types=node_types, max_nodes=max_nodes)
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


def _check_join(c: ContentConstraints, *, node_types: Sequence[str], max_nodes: int) -> None:
    n = len(c.require_join)
    if "join" not in node_types:
        raise AgenticError(ErrorCode.UNSUPPORTED_CAPABILITY,
                           "constraints.require_join needs a join node, which the node-type "
                           f"whitelist does not allow (allowed: {list(node_types)})")
    if c.require_tools:
        raise AgenticError(ErrorCode.UNSUPPORTED_CAPABILITY,
                           "constraints.require_join cannot be combined with "
                           "constraints.require_tools: the grammar does not share node slots "
                           "between the two; ask for the join alone and grant the tools")
    if n + 2 > max_nodes:
        raise AgenticError(ErrorCode.BUDGET_EXCEEDED,
                           f"constraints.require_join names {n} branch(es); with the start node "
                           f"and the join they need {n + 2} nodes; budget.max_nodes is {max_nodes}",
                           max_nodes=max_nodes)
