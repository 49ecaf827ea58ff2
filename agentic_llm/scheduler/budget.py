"""Per-request generation controller: the plan's budget enforced while tokens flow.

A generate_subgraph request carries a budget (``max_nodes``, ``max_tokens``,
``timeout_sec``). The controller turns it into engine limits, watches the request's
outputs step by step, and decides what the caller gets:

- ``max_nodes``: enforced by the grammar itself (the graph layer closes the document
  when the node budget is spent), so the document stays valid; the controller
  reports when the limit was reached;
- ``max_tokens``: the engine stops sampling there. If the document is already complete,
  or only forced text (no choice left to the model) remains, the controller appends
  that text and the document is valid; otherwise the result is a clear
  ERR_BUDGET_EXCEEDED, never a truncated document reported as valid;
- ``timeout_sec``: checked on the controller's clock at every step; on expiry the
  request is aborted and closed the same way as for ``max_tokens``;
- allowed tools are enforced by the grammar; the matcher's ``masked_tool_attempts``
  (steps where the model wanted a tool the plan does not grant) is reported.

Progress (tokens used, nodes declared, masked tool attempts, elapsed time) is passed to
an ``on_progress`` callback after every step that changed the request.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from agentic_llm.engine.outputs import FinishReason, RequestOutput
from agentic_llm.engine.sampling import SamplingParams
from agentic_llm.errors import AgenticError, ErrorCode

__all__ = ["GenerationBudget", "BudgetProgress", "BudgetOutcome", "GenerationController", "close_forced"]


@dataclass(frozen=True)
class GenerationBudget:
    """Limits of one generation.

    Attributes:
        max_tokens: most output tokens the model may produce (>= 1).
        max_nodes: node limit the grammar enforces (None: the grammar's own).
        timeout_sec: wall-clock limit from start (None or 0: none).
    """

    max_tokens: int = 512
    max_nodes: int | None = None
    timeout_sec: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise AgenticError(ErrorCode.INVALID_REQUEST, f"budget.max_tokens must be an integer >= 1, got {self.max_tokens!r}")
        if self.max_nodes is not None and (not isinstance(self.max_nodes, int) or self.max_nodes < 1):
            raise AgenticError(ErrorCode.INVALID_REQUEST, f"budget.max_nodes must be an integer >= 1, got {self.max_nodes!r}")
        t = self.timeout_sec
        if t is not None and (not isinstance(t, int | float) or not math.isfinite(t) or t < 0):
            raise AgenticError(ErrorCode.INVALID_REQUEST, f"budget.timeout_sec must be a finite number >= 0, got {t!r}")

    @classmethod
    def from_plan(cls, plan: Any, timeout_sec: float | None = None) -> GenerationBudget:
        """The budget of an ``ExecutionPlan`` (its ``max_tokens`` and ``max_nodes``)."""
        return cls(max_tokens=int(plan.max_tokens), max_nodes=int(plan.max_nodes), timeout_sec=timeout_sec or None)


@dataclass(frozen=True)
class BudgetProgress:
    """What a request has used so far."""

    tokens_used: int
    node_count: int
    masked_tool_attempts: int
    elapsed_s: float
    finished: bool = False


@dataclass
class BudgetOutcome:
    """The controller's verdict on one request.

    Attributes:
        token_ids: output tokens, including any forced closing text.
        text: decoded output (the partial text when ``valid`` is False).
        valid: the document is complete (and validates, when a policy was given).
        stopped_by: "max_tokens", "timeout_sec" or "max_nodes" when a budget ended or
            shaped the document; None when it finished on its own.
        closed_by_force: forced text was appended to close the document after a stop.
        error: ERR_BUDGET_EXCEEDED when a budget cut the document and it could not be
            closed; the engine's error when it failed otherwise.
        progress: the final counters.
        diagnostics: validation diagnostics (when a policy was given).
    """

    token_ids: list[int]
    text: str
    valid: bool
    stopped_by: str | None
    closed_by_force: bool
    error: AgenticError | None
    progress: BudgetProgress
    diagnostics: list[Any] = field(default_factory=list)


def close_forced(matcher: Any, max_rounds: int = 64) -> str | None:
    """Append the text the grammar forces until the document is complete.

    Returns the appended text when the document ends complete, None when the model
    still had a choice to make (the document cannot be closed without it). The
    matcher is advanced by what was appended.
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


class GenerationController:
    """Runs one request on an engine under a :class:`GenerationBudget`.

    Args:
        engine: an ``LLMEngine``.
        budget: the limits.
        matcher: the request's grammar matcher (``DSLMatcher``); without one the
            output cannot be judged complete and any budget stop is an error.
        validation_policy: when given, the final text must also pass
            ``agentic_llm.dsl.check_text`` with no error.
        on_progress: called with a :class:`BudgetProgress` after each change.
        clock: seconds, monotonic (tests pass a fake).
    """

    def __init__(
        self,
        engine: Any,
        budget: GenerationBudget,
        *,
        matcher: Any = None,
        validation_policy: Any = None,
        on_progress: Callable[[BudgetProgress], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.budget = budget
        self.matcher = matcher
        self.validation_policy = validation_policy
        self.on_progress = on_progress
        self.clock = clock
        self.request_id: str | None = None
        self._start = 0.0
        self._timed_out = False
        self._tokens: list[int] = []

    def params(self, base: SamplingParams | None = None) -> SamplingParams:
        """``base`` with the budget's ``max_tokens`` (the timeout is the controller's)."""
        return replace(base or SamplingParams(), max_tokens=self.budget.max_tokens, timeout_s=None)

    def start(self, prompt: Sequence[int] | str, base: SamplingParams | None = None, **request_kw: Any) -> str:
        """Queue the request on the engine; returns its id."""
        self._start = self.clock()
        self.request_id = self.engine.add_request(prompt, self.params(base), self.matcher, **request_kw)
        return self.request_id

    def progress(self, finished: bool = False) -> BudgetProgress:
        """Current counters."""
        m = self.matcher
        return BudgetProgress(
            tokens_used=len(self._tokens),
            node_count=int(getattr(m, "node_count", 0)) if m is not None else 0,
            masked_tool_attempts=int(getattr(m, "masked_tool_attempts", 0)) if m is not None else 0,
            elapsed_s=self.clock() - self._start,
            finished=finished,
        )

    def observe(self, out: RequestOutput) -> BudgetProgress:
        """Take one engine output of this request; enforce the timeout; report progress."""
        self._tokens = list(out.output_token_ids)
        t = self.budget.timeout_sec
        if not out.finished and t and self.clock() - self._start > t and self.request_id is not None:
            self._timed_out = True
            self.engine.abort(self.request_id)
        prog = self.progress(out.finished)
        if self.on_progress is not None:
            self.on_progress(prog)
        return prog

    def check_timeout(self) -> bool:
        """Abort the request when its time is up (call between steps); True if it did."""
        t = self.budget.timeout_sec
        if self._timed_out or not t or self.request_id is None or self.clock() - self._start <= t:
            return False
        self._timed_out = True
        self.engine.abort(self.request_id)
        return True

    def run(self, prompt: Sequence[int] | str, base: SamplingParams | None = None, **request_kw: Any) -> BudgetOutcome:
        """Start the request, step the engine until it ends, and judge the result."""
        rid = self.start(prompt, base, **request_kw)
        while True:
            self.check_timeout()
            for out in self.engine.step():
                if out.request_id != rid:
                    continue
                self.observe(out)
                if out.finished:
                    return self.finish(out)

    def finish(self, out: RequestOutput) -> BudgetOutcome:
        """The verdict for the request's final output."""
        tokens = list(out.output_token_ids)
        self._tokens = tokens
        tok = getattr(self.engine, "tokenizer", None)
        text = tok.decode(tokens, skip_special_tokens=True) if tok is not None else (out.text or "")
        stopped_by: str | None = None
        if self._timed_out or out.finish_reason is FinishReason.TIMEOUT:
            stopped_by = "timeout_sec"
        elif out.finish_reason is FinishReason.LENGTH:
            stopped_by = "max_tokens"
        elif out.finish_reason in (FinishReason.ERROR, FinishReason.ABORT):
            return self._verdict(tokens, text, False, None, False, out.error)
        m = self.matcher
        closed = False
        complete = m is not None and m.is_completed()
        if stopped_by is not None and m is not None and not complete:
            extra = close_forced(m)
            if extra is not None:
                closed, complete = True, True
                text += extra
                if tok is not None:
                    tokens += tok.encode(extra, add_special_tokens=False).ids
        if stopped_by is None and m is not None and complete:
            limit = self.budget.max_nodes
            if limit is not None and getattr(m, "node_count", 0) >= limit:
                stopped_by = "max_nodes"
        diagnostics: list[Any] = []
        valid = complete if m is not None else stopped_by is None
        if valid and self.validation_policy is not None:
            from agentic_llm import dsl

            diagnostics = dsl.check_text(text, self.validation_policy)
            valid = not any(d.is_error for d in diagnostics)
        error = None
        if not valid and stopped_by in ("max_tokens", "timeout_sec"):
            limit_desc = (f"max_tokens={self.budget.max_tokens}" if stopped_by == "max_tokens"
                          else f"timeout_sec={self.budget.timeout_sec}")
            prog = self.progress(True)
            error = AgenticError(
                ErrorCode.BUDGET_EXCEEDED,
                f"the document was not complete when {limit_desc} ran out ({prog.tokens_used} tokens, "
                f"{prog.node_count} nodes); raise the budget or lower budget.max_nodes",
                budget=stopped_by, tokens_used=prog.tokens_used, node_count=prog.node_count,
            )
        return self._verdict(tokens, text, valid, stopped_by, closed, error, diagnostics)

    def _verdict(self, tokens: list[int], text: str, valid: bool, stopped_by: str | None, closed: bool,
                 error: AgenticError | None, diagnostics: list[Any] | None = None) -> BudgetOutcome:
        prog = self.progress(True)
        if self.on_progress is not None:
            self.on_progress(prog)
        return BudgetOutcome(tokens, text, valid and error is None, stopped_by, closed, error, prog,
                             diagnostics or [])
