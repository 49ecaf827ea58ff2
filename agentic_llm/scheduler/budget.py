"""What a budget stop means for a generated document: one behaviour, used by the pipeline.

A request's budget (``max_nodes``, ``max_tokens``, ``timeout_sec``) is enforced where
each limit belongs, and judged here:

- ``max_nodes``: the grammar closes the document when the node budget is spent, so
  the document stays valid; :func:`budget_stop` reports ``"max_nodes"``;
- ``max_tokens``: the engine stops sampling there (finish reason ``length``). If the
  document is complete, or only forced text (no choice left to the model) remains,
  :func:`close_forced` appends that text and the document is valid (reported as
  ``"max_tokens"``); otherwise the result is ERR_BUDGET_EXCEEDED, never a truncated
  document reported as valid;
- ``timeout_sec``: a deadline, enforced by the engine loop
  (``agentic_llm.engine.loop``); the caller gets ERR_TIMEOUT (nodes already streamed
  stay valid);
- allowed tools: enforced by the grammar.
"""

from __future__ import annotations

from typing import Any

from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["budget_exceeded", "budget_stop", "close_forced"]


def close_forced(matcher: Any, max_rounds: int = 64) -> str | None:
    """Append the text the grammar forces until the document is complete.

    Returns the appended text ("" when already complete), or None when the model
    still had a choice to make (the document cannot be closed without it). The
    matcher is advanced by what was appended. Call it only once the engine is done
    with the request (its final output was delivered).
    """
    if matcher.is_completed():
        return ""
    added: list[str] = []
    for _ in range(max_rounds):
        s = matcher.find_jump_forward_string()
        if not s or not matcher.accept_string(s):
            return None
        added.append(s)
        if matcher.is_completed():
            return "".join(added)
    return None


def budget_stop(finish_reason: str, closed_by_force: bool, node_count: int, max_nodes: int) -> str:
    """Which budget shaped a valid document: "max_tokens", "max_nodes" or ""."""
    if finish_reason == "length" and closed_by_force:
        return "max_tokens"
    if max_nodes > 0 and node_count >= max_nodes:
        return "max_nodes"
    return ""


def budget_exceeded(max_tokens: int, nodes_completed: int) -> AgenticError:
    """The error for a document that ``max_tokens`` cut before it could be closed."""
    return AgenticError(
        ErrorCode.BUDGET_EXCEEDED,
        f"the subgraph was not complete after max_tokens={max_tokens} tokens; "
        "raise budget.max_tokens or lower budget.max_nodes",
        budget="max_tokens", max_tokens=max_tokens, nodes_completed=nodes_completed)
