"""``DSLGrammar``: a ``DSLMatcher`` as SGLang's ``BaseGrammarObject``.

SGLang's scheduler calls, per request and on one thread: ``accept_token`` after each
sampled token (a ValueError aborts the request), ``fill_vocab_mask_batched`` over the
batch's grammar rows, ``apply_vocab_mask`` with the first grammar of the batch,
``is_terminated``, and, for EAGLE draft trees (``spec_utils.traverse_tree``),
``accept_token`` / ``fill_vocab_mask`` / ``rollback(1)`` over every node. The mask
layout is xgrammar's (int32 words, bit ``j % 32`` of word ``j // 32``), the same as
SGLang's own xgrammar backend, so rows of both kinds share one batch mask.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sglang.srt.constrained.base_grammar_backend import BaseGrammarObject, GrammarStats

from agentic_llm.grammar.matcher import DSLMatcher

__all__ = ["DSLGrammar"]


def _words(vocab_mask: torch.Tensor) -> np.ndarray:
    """The batch mask as ``uint32`` words sharing its memory (a CPU tensor)."""
    return vocab_mask.numpy().view(np.uint32)


class DSLGrammar(BaseGrammarObject):  # type: ignore[misc]
    """One request's constraint state.

    Args:
        matcher: the request's matcher (at the start of the document).
        vocab_size: the model's vocabulary size (the mask width).
        key: the grammar key, for error messages.
        grammar_stats: SGLang's per-grammar statistics.
    """

    def __init__(self, matcher: DSLMatcher, vocab_size: int, *, key: str = "",
                 grammar_stats: GrammarStats | None = None) -> None:
        super().__init__()
        self.matcher = matcher
        self.vocab_size = vocab_size
        self.key = key
        self.grammar_stats = grammar_stats if grammar_stats is not None else GrammarStats(
            dispatch_type="agentic-dsl")
        self.accepted = 0
        self._after_end = 0

    # -- state ---------------------------------------------------------------------

    def accept_token(self, token: int) -> None:
        """Advance by ``token``. The document is terminated once it is complete (SGLang
        then finishes the request); tokens after that are ignored, as SGLang's
        xgrammar backend ignores them, and a rollback undoes them first."""
        if self.matcher.is_terminated():
            self._after_end += 1  # kept count of, so that rollback stays exact
            return
        self.current_token = token
        if not self.matcher.accept_token(int(token)):
            raise ValueError(
                f"ERR_GRAMMAR: token {token} is not allowed by the agentic-dsl grammar after "
                f"{self.accepted} tokens (line so far {self.matcher.text!r})")
        self.accepted += 1

    def rollback(self, k: int) -> None:
        ignored = min(k, self._after_end)
        self._after_end -= ignored
        if k > ignored:
            self.matcher.rollback(k - ignored)
            self.accepted -= k - ignored

    def is_terminated(self) -> bool:
        return self.matcher.is_terminated()

    def copy(self) -> DSLGrammar:
        """A fresh grammar at the start state sharing the compiled data: what SGLang
        gives each request from its cached object."""
        stats = dataclasses.replace(self.grammar_stats, is_cache_hit=True, tree_traversal_time=[])
        return DSLGrammar(self.matcher.copy(), self.vocab_size, key=self.key, grammar_stats=stats)

    # -- masks ---------------------------------------------------------------------

    def allocate_vocab_mask(self, vocab_size: int, batch_size: int, device: Any) -> torch.Tensor:
        return torch.full((batch_size, (vocab_size + 31) // 32), -1, dtype=torch.int32)

    def fill_vocab_mask(self, vocab_mask: torch.Tensor, idx: int) -> None:
        self.matcher.fill_next_token_row(_words(vocab_mask)[idx])

    @staticmethod
    def fill_vocab_mask_batched(entries: Sequence[Any], vocab_mask: torch.Tensor) -> None:
        """Fill the listed rows (SGLang ``GrammarRow``s), leaving the others as they are.

        The batch mask is viewed as words once; ``agentic-dsl`` rows are written in
        place through that view, other backends' rows (a JSON-schema request in
        the same batch) by their own ``fill_vocab_mask``."""
        words = _words(vocab_mask)
        for entry in entries:
            g = entry.grammar
            if isinstance(g, DSLGrammar):
                g.matcher.fill_next_token_row(words[entry.row])
            else:
                g.fill_vocab_mask(vocab_mask, entry.row)

    @staticmethod
    def reset_vocab_mask(vocab_mask: torch.Tensor) -> None:
        vocab_mask.fill_(-1)

    @staticmethod
    def move_vocab_mask(vocab_mask: torch.Tensor, device: Any) -> torch.Tensor:
        return vocab_mask.to(device, non_blocking=True)

    @staticmethod
    def apply_vocab_mask(logits: torch.Tensor, vocab_mask: torch.Tensor) -> None:
        """Set the logits of disallowed tokens to -inf, in place: SGLang's Triton
        kernel on a GPU, xgrammar's CPU kernel on the CPU."""
        if logits.device.type == "cuda":
            from sglang.kernels.ops.grammar.bitmask_ops import apply_token_bitmask_inplace_triton

            apply_token_bitmask_inplace_triton(logits, vocab_mask)
            return
        import xgrammar as xgr

        xgr.apply_token_bitmask_inplace(logits, vocab_mask.to(logits.device), backend="cpu")

    # -- jump-forward: removed from SGLang (PR #4032); ours runs in our own engine -

    def try_jump_forward(self, tokenizer: Any) -> None:
        return None

    def __repr__(self) -> str:
        return f"DSLGrammar(accepted={self.accepted}, terminated={self.is_terminated()})"
