"""What the engine needs from a constrained-decoding matcher.

``agentic_llm.grammar`` implements this for AgenticDSL plans (xgrammar token masks
combined with graph-level checks); the engine only sees this protocol, so any other
constraint (plain JSON, a regex) can drive it too.

Bitmasks follow xgrammar's layout: an ``int32`` tensor of shape
``[batch, ceil(vocab_size / 32)]``; bit ``j % 32`` of word ``j // 32`` is set when
token ``j`` is allowed.

A matcher may also offer ``fill_next_token_row(row)``, the same fill into one row
given as a ``uint32`` numpy array (a view of the batch mask); the mask filler calls
it when present, which spares a tensor view per row on the step's path.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

__all__ = ["TokenMatcher", "bitmask_words"]


def bitmask_words(vocab_size: int) -> int:
    """Number of int32 words in one bitmask row for ``vocab_size`` tokens."""
    return (vocab_size + 31) // 32


@runtime_checkable
class TokenMatcher(Protocol):
    """Per-request constraint state, advanced one token at a time.

    ``fill_next_token_bitmask`` (and ``accept_token`` of a parked token) may run on
    the mask worker thread while the model's forward runs on another; a matcher is
    only ever used by one thread at a time (``engine.constraint_state`` owns the
    hand-off).
    """

    def fill_next_token_bitmask(self, bitmask: torch.Tensor, index: int = 0) -> None:
        """Write the allowed-token set for the next position into row ``index``."""
        ...

    def accept_token(self, token_id: int) -> bool:
        """Advance by ``token_id``; False (and no state change) if it is not allowed."""
        ...

    def rollback(self, num_tokens: int) -> None:
        """Undo the last ``num_tokens`` accepted tokens."""
        ...

    def find_jump_forward_string(self) -> str:
        """Text that every accepted continuation must start with ("" if none)."""
        ...

    def is_terminated(self) -> bool:
        """True when the document is complete and only end-of-sequence may follow."""
        ...
