"""Data dependencies: which earlier outputs a ``tool_call`` argument may read.

A tool call's argument value may hold ``{{ key }}`` where ``key`` is a context
variable of the plan or a context key that a node *surely run before this one*
surely writes. Both notions follow the reference runtime (AgenticRT):

- its scheduler starts a node once every node naming it in ``next`` has finished
  (in-degree counting over ``next`` edges; a join's own ``wait_for`` is not a
  scheduling edge there), but an ``assert`` failure jumps straight to its
  ``on_failure`` target and a fork starts its branch targets itself, so for those
  targets nothing before them is sure. The nodes sure to have run before ``X`` are
  therefore the nodes that reach ``X`` backwards along ``next`` edges, without
  passing through a jump target (an ``on_failure`` or ``branches`` target): a jump
  target itself has run, what precedes it need not have;
- a ``tool_call`` (likewise ``llm_call``, ``dsl_call``, ``generate_subgraph``) with
  a single output key stores its whole result under that key; with several keys it
  copies only the ones the result happens to hold, so only a single key is sure.
  Every ``assign`` key is written. Only keys that read back as a plain Inja name
  (``[A-Za-z_][A-Za-z0-9_]*``, at most 32 characters, no Inja keyword) are offered.

A later reference could make an earlier node a jump target and void a guarantee a
written argument relied on; the graph layer therefore records the nodes a reading
argument relied on (``GraphState.relied``) and never lets ``on_failure`` or
``branches`` name one of them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentic_llm.grammar.graph import GraphState

__all__ = ["MAX_KEY", "readable_key", "upstream", "upstream_keys", "template_names"]

MAX_KEY = 32
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
# names Inja reads as literals, operators or loop state, never as a context key
_RESERVED = frozenset({"true", "false", "null", "True", "False", "None", "none", "and", "or",
                       "not", "in", "is", "if", "else", "loop"})
_TEMPLATE = re.compile(r"\{\{ ([A-Za-z0-9_]+) \}\}")


def readable_key(key: str) -> bool:
    """True when ``{{ key }}`` reads the context key ``key``."""
    return _KEY.fullmatch(key) is not None and key not in _RESERVED


def template_names(text: str) -> list[str]:
    """The names of the ``{{ name }}`` templates in ``text`` (the profile's only form)."""
    return _TEMPLATE.findall(text)


def upstream(g: GraphState) -> frozenset[str]:
    """Nodes surely run before the node being written (memoized on the line state)."""
    hit = g.memo.get("upstream")
    if hit is None:
        hit = g.memo["upstream"] = _upstream(g)
    return hit  # type: ignore[no-any-return]


def _upstream(g: GraphState) -> frozenset[str]:
    if not g.cur or g.cur in g.jumps:
        return frozenset()
    preds: dict[str, list[str]] = {}
    for s, d in g.nedges:
        preds.setdefault(d, []).append(s)
    seen: set[str] = set()
    todo = [g.cur]
    while todo:
        x = todo.pop()
        for p in preds.get(x, ()):
            if p not in seen:
                seen.add(p)
                if p not in g.jumps:
                    todo.append(p)
    seen.discard(g.cur)
    return frozenset(seen)


def upstream_keys(g: GraphState) -> frozenset[str]:
    """Context keys surely written before the node being written runs."""
    hit = g.memo.get("upstream_keys")
    if hit is None:
        up = upstream(g)
        hit = g.memo["upstream_keys"] = frozenset(k for n, k in g.skeys if n in up)
    return hit  # type: ignore[no-any-return]
