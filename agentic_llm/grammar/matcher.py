"""``DSLMatcher``: xgrammar's token mask combined with the graph layer's.

Implements ``agentic_llm.engine.constraints.TokenMatcher``. A matcher is used by one
thread at a time; the shared ``VocabIndex`` and compiled grammar are read-only, so
masks for a batch can be filled on a worker thread while the model runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agentic_llm.grammar.graph import (
    GraphPlan,
    GraphState,
    apply_line,
    initial_state,
    line_ok,
    slot,
)
from agentic_llm.grammar.vocab import MAX_ID, VocabIndex

__all__ = ["DSLMatcher"]


_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")
_ID_CHARS = _LETTERS | frozenset("0123456789_")


def _fresh_tail(tail: str) -> bool:
    """A token tail that starts a fresh node id (a letter, then id characters)."""
    return 0 < len(tail) < MAX_ID and tail[0] in _LETTERS and set(tail) <= _ID_CHARS


class DSLMatcher:
    """Per-request constraint state for one plan.

    Attributes:
        node_count: nodes declared so far.
        masked_tool_attempts: steps at which xgrammar allowed a token at a tool-name
            or argument-key position that the graph layer masked out.
    """

    def __init__(self, compiled: Any, gp: GraphPlan, vocab: VocabIndex) -> None:
        import xgrammar as xgr

        self._xm = xgr.GrammarMatcher(compiled)
        self._gp = gp
        self._vocab = vocab
        self._g: GraphState = initial_state()
        self._line = ""
        self._history: list[tuple[GraphState, str]] = []
        self.masked_tool_attempts = 0

    # -- state --------------------------------------------------------------------

    @property
    def node_count(self) -> int:
        return self._g.count

    @property
    def text(self) -> str:
        """The current line so far (latin-1 view of its bytes)."""
        return self._line

    def _advance(self, g: GraphState, line: str, tok: str) -> tuple[GraphState, str] | None:
        text = line + tok
        if "\n" not in text:
            return (g, text) if line_ok(self._gp, g, text, False) else None
        parts = text.split("\n")
        for full in parts[:-1]:
            if not line_ok(self._gp, g, full, True):
                return None
            g = apply_line(self._gp, g, full)
        return (g, parts[-1]) if line_ok(self._gp, g, parts[-1], False) else None

    def _ok(self, tid: int) -> bool:
        tok = self._vocab.texts[tid] if tid < len(self._vocab.texts) else ""
        return bool(tok) and self._advance(self._g, self._line, tok) is not None

    def _free_rejects(self, cand: np.ndarray, exact: bool) -> list[int]:
        """Candidates (newline tokens) a free position rejects.

        Finishing a free line leads to the same next state whatever its text (the
        line's key is already written), so that state is computed once and the
        next-line prefixes are checked once each.
        """
        gp, g, line, texts = self._gp, self._g, self._line, self._vocab.texts
        bad: list[int] = []
        nxt: GraphState | None = None
        after_ok: dict[str, bool] = {}
        for t in cand:
            tid = int(t)
            tok = texts[tid]
            if exact or tok.count("\n") != 1:
                if not self._ok(tid):
                    bad.append(tid)
                continue
            before, after = tok.split("\n", 1)
            full = line + before
            if not line_ok(gp, g, full, True):
                bad.append(tid)
                continue
            if nxt is None:
                nxt = apply_line(gp, g, full)
            ok = after_ok.get(after)
            if ok is None:
                ok = after_ok[after] = line_ok(gp, nxt, after, False)
            if not ok:
                bad.append(tid)
        return bad

    # -- TokenMatcher -------------------------------------------------------------

    def fill_next_token_bitmask(self, bitmask: torch.Tensor, index: int = 0) -> None:
        """Write the allowed-token set for the next position into row ``index``."""
        self._xm.fill_next_token_bitmask(bitmask, index)
        if self._g.done:
            return
        row = bitmask[index].numpy().view(np.uint32)
        v = self._vocab
        sl = slot(self._gp, self._g, self._line)
        if sl.free:
            # a `{` is only ever the start of `{{ name }}`: context-free per token here
            np.bitwise_and(row, ~(v.brace_bits & ~v.brace_ok_bits(self._gp.variables)), out=row)
            cand = v.ids_in(row & (v.newline_bits | v.quote_bits if sl.check_quotes
                                   else v.newline_bits))
            if cand.size:
                bad = self._free_rejects(cand, sl.check_quotes)
                if bad:
                    arr = np.asarray(bad, dtype=np.int64)
                    np.bitwise_and.at(row, arr >> 5, ~(np.uint32(1) << (arr & 31).astype(np.uint32)))
            return
        allowed: list[int] = []
        keep = np.zeros_like(row)
        texts = [t if t else "\n" for t in sl.texts]
        for a in texts:
            allowed += v.prefixes_of(a)
            longer = v.longer_with_prefix(a, row)
            if a == "/" and a == sl.fresh_entry and longer.size:
                # "/" + id characters start a fresh id; only tokens that also close it
                # (hold a quote) need the exact check, the rest cannot continue
                keep |= v.slash_id_bits
                shift = (longer & 31).astype(np.uint32)
                in_ids = ((v.slash_id_bits[longer >> 5] >> shift) & 1).astype(bool)
                quoted = ((v.quote_bits[longer >> 5] >> shift) & 1).astype(bool)
                longer = longer[~in_ids & quoted]
            for tid in longer:
                if a == sl.fresh_entry and _fresh_tail(v.texts[tid][len(a):]) or self._ok(int(tid)):
                    allowed.append(int(tid))
        if sl.fresh >= 0:
            room = MAX_ID - sl.fresh
            runs = v.idrun_letter_le if sl.fresh == 0 else v.idrun_le
            if room >= 1:
                # An id shorter than MAX_ID can always still become an unused one, so
                # shorter runs pass wholesale; a run that fills the id to exactly
                # MAX_ID ends it, and must not end it on an id already taken.
                keep |= runs[room - 1]
                for tid in v.ids_in(row & runs[room] & ~runs[room - 1]):
                    if self._ok(int(tid)):
                        allowed.append(int(tid))
            for tid in v.ids_in(row & v.quote_bits):
                if self._ok(int(tid)):
                    allowed.append(int(tid))
        if allowed:
            ids = np.asarray(allowed, dtype=np.int64)
            np.bitwise_or.at(keep, ids >> 5, (np.uint32(1) << (ids & 31).astype(np.uint32)))
        if (self._g.ctype == "tool_call" and self._line.startswith(("    tool: ", '      "'))
                and np.any(row & ~keep)):
            self.masked_tool_attempts += 1
        np.bitwise_and(row, keep, out=row)

    def accept_token(self, token_id: int) -> bool:
        """Advance by ``token_id``; False (and no state change) if it is not allowed."""
        if self._g.done:
            return bool(self._xm.accept_token(token_id))
        tok = self._vocab.texts[token_id] if 0 <= token_id < len(self._vocab.texts) else ""
        nxt = self._advance(self._g, self._line, tok) if tok else None
        if nxt is None:
            return False
        if not self._xm.accept_token(token_id):
            return False
        self._history.append((self._g, self._line))
        self._g, self._line = nxt
        return True

    def accept_string(self, text: str) -> bool:
        """Advance by ``text`` (for jump-forward); False and no change if not allowed."""
        tok = text.encode().decode("latin-1")
        nxt = self._advance(self._g, self._line, tok) if not self._g.done else (self._g, "")
        if nxt is None or not self._xm.accept_string(text):
            return False
        self._history.append((self._g, self._line))
        self._g, self._line = nxt
        return True

    def rollback(self, num_tokens: int) -> None:
        """Undo the last ``num_tokens`` accepted tokens."""
        if num_tokens <= 0:
            return
        self._xm.rollback(num_tokens)
        for _ in range(min(num_tokens, len(self._history))):
            self._g, self._line = self._history.pop()

    def find_jump_forward_string(self) -> str:
        """Text every allowed continuation starts with: xgrammar's forced text, extended
        by the graph layer when it allows exactly one continuation."""
        s = self._xm.find_jump_forward_string()
        if self._g.done:
            return s
        nxt = self._advance(self._g, self._line, s.encode().decode("latin-1"))
        if nxt is None:
            return s
        g, line = nxt
        sl = slot(self._gp, g, line)
        if not sl.free and sl.fresh < 0 and len(sl.texts) == 1 and sl.texts[0]:
            s += sl.texts[0].encode("latin-1").decode("utf-8", "ignore")
        return s

    def is_terminated(self) -> bool:
        """True when the document is complete and only end-of-sequence may follow."""
        return bool(self._xm.is_terminated() or self._xm.is_completed())

    def is_completed(self) -> bool:
        """True when the document is complete (only end-of-sequence may follow)."""
        return bool(self._xm.is_completed())

    def reset(self) -> None:
        self._xm.reset()
        self._g = initial_state()
        self._line = ""
        self._history.clear()
        self.masked_tool_attempts = 0
