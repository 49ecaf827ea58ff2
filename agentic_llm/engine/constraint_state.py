"""One request's constraint: its matcher, the token it has not taken yet, and who holds it.

Every change to a request's matcher inside the engine and the scheduler goes
through :class:`ConstraintState`: taking a sampled token now (:meth:`~ConstraintState.accept`)
or leaving it for the next mask fill (:meth:`~ConstraintState.park`), lending the
matcher to a fill (:meth:`~ConstraintState.lend`), undoing tokens
(:meth:`~ConstraintState.rollback`), asking whether the document is complete
(:meth:`~ConstraintState.is_terminated`), forced text for jump-forward, and the end
of the request (:meth:`~ConstraintState.release`).

Threads. The matcher belongs to the engine thread, except while a fill holds it:
:meth:`~ConstraintState.lend` hands the matcher and the parked token to one fill
(a :class:`~agentic_llm.engine.masking.FillFuture`), whose worker runs
:func:`take_and_fill` on it, possibly on the mask worker thread while the forward
runs. The hand-back is the fill's completion: every other method first waits for a
lent fill to complete, so the engine thread never touches the matcher while the
worker does, and a token handed to a fill is taken exactly once, by that fill, even
when the request ends (finish, abort, a failed forward) while the fill runs.
After :meth:`~ConstraintState.release` the matcher is its caller's again: serving
closes a document cut off by the length limit with ``scheduler.budget.close_forced``
on it, once the engine has finished the request.

``docs/engine.md`` ("The constrained step") shows one step as a sequence diagram.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from agentic_llm.engine.constraints import TokenMatcher
from agentic_llm.errors import AgenticError, ErrorCode


class FillFuture(Protocol):
    """What a lent fill must offer (``engine.masking.FillFuture`` does): a wait for its
    completion. Declared here so this module, which the scheduler imports, needs
    nothing from the engine above it."""

    def wait(self) -> None: ...

__all__ = ["ConstraintState", "refused_token_error", "take_and_fill"]


def refused_token_error(token: int) -> AgenticError:
    """The error of a request whose matcher refused a token its own mask allowed."""
    return AgenticError(
        ErrorCode.GRAMMAR, f"the constraint refused token {token} although its mask allowed it", token_id=token)


class ConstraintState:
    """A request's matcher and its lifecycle on the engine thread (see the module docstring).

    Args:
        matcher: the request's constraint, already at the start of the output.

    Attributes:
        matcher: the constraint. Read it (``copy``, ``text``) but change it only
            through this object while the request runs; after :meth:`release` the
            engine no longer touches it.
    """

    __slots__ = ("matcher", "_pending", "_lent", "_released")

    def __init__(self, matcher: TokenMatcher) -> None:
        self.matcher = matcher
        self._pending: int | None = None  # sampled, in the output, not taken by the matcher yet
        self._lent: FillFuture | None = None  # the fill that holds the matcher until it completes
        self._released = False

    def _reclaim(self) -> None:
        """Take the matcher back from a lent fill, waiting for the fill to complete.
        (Callers test ``self._lent`` first: one call fewer on the step's path.)"""
        fill = self._lent
        if fill is not None:
            fill.wait()
            self._lent = None

    @property
    def pending(self) -> int | None:
        """The parked token: sampled and in the output, not yet taken by the matcher."""
        return self._pending

    @property
    def released(self) -> bool:
        """True once the request has ended (:meth:`release`)."""
        return self._released

    def is_terminated(self) -> bool:
        """True when the document is known complete (only end-of-sequence may follow).

        False while a token is parked: the fill that takes it finds out
        (``FilledMask.done``). So a request whose state is not terminated needs a mask.
        """
        if self._lent is not None:
            self._reclaim()
        return self._pending is None and self.matcher.is_terminated()

    def accept(self, token: int) -> bool:
        """The matcher takes ``token`` now; False (nothing changed) when it refuses it."""
        if self._lent is not None:
            self._reclaim()
        assert self._pending is None and not self._released, "accept after park or release"
        return self.matcher.accept_token(token)

    def park(self, token: int) -> None:
        """Leave ``token`` for the next fill to take, beside the next forward (see
        ``MaskFiller.defers_accept``). The token is already in the output."""
        if self._lent is not None:
            self._reclaim()
        assert self._pending is None and not self._released, "a token is parked already, or released"
        self._pending = token

    def lend(self, fill: FillFuture) -> int | None:
        """Hand the matcher to ``fill`` until it completes; return the parked token,
        which the fill now takes (:func:`take_and_fill`) and this state forgets."""
        if self._lent is not None:
            self._reclaim()
        assert not self._released, "lend after release"
        tok, self._pending = self._pending, None
        self._lent = fill
        return tok

    def rollback(self, num_tokens: int) -> None:
        """Undo the last ``num_tokens`` output tokens; a parked token is the last one
        (dropped, never taken)."""
        if self._lent is not None:
            self._reclaim()
        assert not self._released, "rollback after release"
        if num_tokens <= 0:
            return
        if self._pending is not None:
            self._pending = None
            num_tokens -= 1
        if num_tokens:
            self.matcher.rollback(num_tokens)

    def jump_forward_string(self) -> str:
        """Text every continuation must start with; "" when complete or a token is parked."""
        if self._lent is not None:
            self._reclaim()
        if self._pending is not None or self.matcher.is_terminated():
            return ""
        return self.matcher.find_jump_forward_string()

    def release(self) -> None:
        """The request ended: a parked token is taken now (so the matcher matches the
        output, for callers that read it afterwards), a lent fill waited for, and
        the engine is done with the matcher. Calling it again does nothing."""
        if self._lent is not None:
            self._reclaim()
        if self._released:
            return
        self._released = True
        tok, self._pending = self._pending, None
        if tok is not None and not self.matcher.is_terminated():
            self.matcher.accept_token(tok)


def take_and_fill(matcher: TokenMatcher, token: int | None, row: np.ndarray, mask: torch.Tensor, index: int) -> bool:
    """The fill's part of a lend, on whichever thread runs the fill: take the handed
    ``token`` (None: nothing parked), then write the next-token mask into ``row``
    (a ``uint32`` view of row ``index`` of ``mask``).

    Returns True when ``token`` completed the document (no mask written: the request
    stops before this step's token). Raises ``ERR_GRAMMAR`` when the matcher refuses
    ``token``, whatever the matcher raises otherwise.
    """
    if token is not None:
        if not matcher.accept_token(token):
            raise refused_token_error(token)
        if matcher.is_terminated():
            return True
    fill_row = getattr(matcher, "fill_next_token_row", None)
    if fill_row is not None:  # no tensor view per row (constraints module)
        fill_row(row)
    else:
        matcher.fill_next_token_bitmask(mask, index)
    return False
