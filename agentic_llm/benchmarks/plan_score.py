"""Score a generated plan against a gold call sequence.

Predicted calls are the ``tool_call`` nodes in document order. A predicted dependency
edge ``(A, B)`` is an argument of call ``B`` whose template reads a key that call
``A`` writes (its ``output_keys``), the AgenticDSL form of NESTFUL's
``"$var1.key$"``. Tool names and edges are compared as multisets.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["PlanCalls", "extract_calls", "prf", "PlanScore", "score_plan"]

_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class PlanCalls:
    """The calls of one generated plan: tool names in order, data edges, node count."""

    tools: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]
    node_count: int


def _keys(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return []


def extract_calls(nodes: Sequence[Any]) -> PlanCalls:
    """From nodes with ``type`` and ``fields`` (``AstNodeInfo``) in document order."""
    tools: list[str] = []
    edges: list[tuple[str, str]] = []
    writers: dict[str, str] = {}  # key -> tool of the latest call that wrote it
    for n in nodes:
        if n.type != "tool_call":
            continue
        tool = str(n.fields.get("tool", ""))
        args = n.fields.get("arguments") or {}
        read = {m for v in (args.values() if isinstance(args, dict) else ()) for m in _VAR.findall(str(v))}
        edges.extend((writers[k], tool) for k in sorted(read) if k in writers)
        tools.append(tool)
        for k in _keys(n.fields.get("output_keys")):
            writers[k.split(".", 1)[0]] = tool
    return PlanCalls(tuple(tools), tuple(edges), len(nodes))


def prf(pred: Sequence[Any], gold: Sequence[Any]) -> tuple[float, float, float]:
    """Multiset precision, recall and F1 (both empty: 1, 1, 1)."""
    if not pred and not gold:
        return 1.0, 1.0, 1.0
    hit = sum((Counter(pred) & Counter(gold)).values())
    p = hit / len(pred) if pred else 0.0
    r = hit / len(gold) if gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


@dataclass(frozen=True)
class PlanScore:
    """One request's scores."""

    tool_p: float
    tool_r: float
    tool_f1: float
    edge_f1: float
    exact: bool
    one_node: bool
    needed_called: bool


def score_plan(calls: PlanCalls, gold_tools: Sequence[str], gold_edges: Sequence[tuple[str, str]]) -> PlanScore:
    """Scores of ``calls`` against the gold tool sequence and dependency edges.

    ``one_node``: the plan has at most one node besides ``start`` and calls no tool
    (``start -> end`` or ``start -> /end_soft``): a plan that does nothing.
    """
    p, r, f = prf(calls.tools, gold_tools)
    _, _, ef = prf(calls.edges, gold_edges)
    return PlanScore(
        tool_p=p, tool_r=r, tool_f1=f, edge_f1=ef,
        exact=tuple(calls.tools) == tuple(gold_tools),
        one_node=calls.node_count <= 2 and not calls.tools,
        needed_called=set(gold_tools) <= set(calls.tools),
    )
