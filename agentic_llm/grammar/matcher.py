"""``DSLMatcher``: xgrammar's token mask combined with the graph layer's.

Implements ``agentic_llm.engine.constraints.TokenMatcher``. A matcher is used by one
thread at a time; the shared ``VocabIndex`` and compiled grammar are read-only, so
masks for a batch can be filled on a worker thread while the model runs.

Size: past the 500-line guideline because the ``TokenMatcher`` protocol is one
object whose methods share the position caches (the carried slot, the string row,
the line memo) and the token budget's forced text: accept, rollback, jump-forward
and the reference mask each read and reset them, so they stay in one class. The
fast mask paths that need none of the budget live in ``fastmask.py`` (the base
class), the budget's arithmetic in ``budget.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agentic_llm.grammar.budget import TokenBudget
from agentic_llm.grammar.closing import FENCE
from agentic_llm.grammar.fastmask import _ID_CHARS, _LETTERS, FastMask, fresh_tail
from agentic_llm.grammar.graph import (
    GraphPlan,
    GraphState,
    Slot,
    apply_line,
    initial_state,
    line_ok,
    slot,
    template_vars,
    used_keys,
)
from agentic_llm.grammar.lexclass import mask_key
from agentic_llm.grammar.maskcache import MaskCache
from agentic_llm.grammar.memo import BoundedMemo
from agentic_llm.grammar.runtime import closes_as_string
from agentic_llm.grammar.vocab import MAX_ID, VocabIndex

__all__ = ["DSLMatcher"]

_STRING_SPECIAL = frozenset('"\\{\n')
_FREE = Slot(True)


def _keeps_string_class(tok: str) -> bool:
    """True when ``tok``, appended inside a string at a character boundary, leaves
    the position in the same lexical class and graph verdicts: ASCII (no character
    left unfinished) without a quote, a backslash, a brace or a newline."""
    return tok.isascii() and _STRING_SPECIAL.isdisjoint(tok)


def _tensor_row(row: np.ndarray) -> torch.Tensor:
    """``row`` (``uint32`` words) as a ``[1, words]`` int32 tensor sharing its memory."""
    return torch.from_numpy(row.view(np.int32)).unsqueeze(0)


class DSLMatcher(FastMask):
    """Per-request constraint state for one plan.

    Args:
        compiled: the xgrammar compiled grammar of the plan's shape.
        gp: the plan's graph layer.
        vocab: the shared vocabulary index.
        cache: the compiled grammar's ``MaskCache``; without one every mask is
            computed directly (``fill_reference``).
        verify: compare every mask with ``fill_reference`` and raise on a difference
            (tests).

    Attributes:
        node_count: nodes declared so far.
        masked_tool_attempts: steps at which xgrammar allowed a token at a tool-name
            or argument-key position that the graph layer masked out.
    """

    def __init__(self, compiled: Any, gp: GraphPlan, vocab: VocabIndex, *,
                 cache: MaskCache | None = None, verify: bool = False,
                 budget: TokenBudget | None = None) -> None:
        import xgrammar as xgr

        self._compiled = compiled
        self._xm = xgr.GrammarMatcher(compiled)
        self._gp = gp
        self._vocab = vocab
        self._cache = cache
        self.verify = verify
        self._rowview: tuple[Any, ...] | None = None
        self._vbuf: torch.Tensor | None = None
        # finished lines of the current position (a few hundred tokens' worth)
        self._line_memo: dict[str, tuple[GraphState, bool, GraphState]] = BoundedMemo(256)
        self._slot_pre: tuple[GraphState, str, Slot] | None = None
        self._after_memo: tuple[Any, str, dict[str, tuple[Slot, bool] | None]] = (None, "", {})
        # inside a string: the last mask (``_free_row``) and, after a token that kept
        # the position's lexical class, the position it serves again (``_free_carry``)
        self._free_row: tuple[GraphState, str, np.ndarray] | None = None
        self._free_carry: tuple[GraphState, str, np.ndarray] | None = None
        self._g: GraphState = initial_state()
        self._line = ""
        # one entry per step xgrammar can roll back (a token or a string): the
        # position before it
        self._history: list[tuple[GraphState, str]] = []
        self.masked_tool_attempts = 0
        # the token budget (budget.py): tokens and bytes accepted, and the closing
        # tokens once forced, as (tokens accepted when forcing began, token ids)
        self.budget = budget
        self._lens: list[int] = []
        self._bytes = 0
        self._forced: tuple[int, tuple[int, ...]] | None = None
        self.forced_tokens = 0

    def copy(self) -> DSLMatcher:
        """A fresh matcher at the start of the document, sharing the compiled grammar,
        the plan's graph layer, the vocabulary and the mask cache (all read-only or
        safe to share)."""
        return DSLMatcher(self._compiled, self._gp, self._vocab, cache=self._cache,
                          verify=self.verify, budget=self.budget)

    def _push_step(self) -> None:
        self._history.append((self._g, self._line))

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
        memo = self._line_memo
        for full in parts[:-1]:
            # the state after a finished line is computed once and shared (mask
            # checks of many tokens, then accept), so its memos carry over
            hit = memo.get(full)
            if hit is None or hit[0] is not g:
                ok = line_ok(self._gp, g, full, True)
                hit = memo[full] = (g, ok, apply_line(self._gp, g, full) if ok else g)
            if not hit[1]:
                return None
            g = hit[2]
        return (g, parts[-1]) if line_ok(self._gp, g, parts[-1], False) else None

    def _ok(self, tid: int) -> bool:
        tok = self._vocab.texts[tid] if tid < len(self._vocab.texts) else ""
        return bool(tok) and self._advance(self._g, self._line, tok) is not None

    def _free_rejects(self, cand: Any, exact: bool, keys: bool = True) -> list[int]:
        """Candidates (newline tokens) a free position rejects.

        Finishing a free line leads to the same next state whatever its text (the
        line's key is already written), so that state is computed once and what a
        token writes after its first newline is checked once per distinct text.
        """
        gp, g, line, texts = self._gp, self._g, self._line, self._vocab.texts
        bad: list[int] = []
        nxt: GraphState | None = None
        after_ok: dict[str, bool] = {}
        before_ok: dict[str, bool] = {}
        # at an assign key (exact): a token closing the key plainly is decided by
        # whether the key is taken and by what follows the quote, once per tail
        plain_key = exact and keys and '"' in line
        key = line[line.index('"') + 1:] if plain_key else ""
        plain_key = plain_key and "{" not in key and "\\" not in key
        tail_ok: dict[str, bool] = {}
        used = used_keys(gp, g) if plain_key else frozenset()
        strict = gp.strict_strings  # a closed string's verdict depends on its content
        for t in cand:
            tid = int(t)
            tok = texts[tid]
            if plain_key and '"' in tok and "\n" not in tok:
                x, y = tok.split('"', 1)
                if "{" not in x and "\\" not in x:
                    if key + x in used or gp.strict_strings and not closes_as_string(key + x):
                        bad.append(tid)
                        continue
                    ok = tail_ok.get(y)
                    if ok is None:
                        ok = tail_ok[y] = self._ok(tid)
                    if not ok:
                        bad.append(tid)
                    continue
            if exact or "\n" not in tok:
                if not self._ok(tid):
                    bad.append(tid)
                continue
            before, after = tok.split("\n", 1)
            # a free line's verdict depends on its templates only, so every brace-free
            # ending shares one check
            bk = before if "{" in before or strict and '"' in before else "\x00" + before[-1:]
            bo = before_ok.get(bk)
            if bo is None:
                bo = before_ok[bk] = line_ok(gp, g, line + before, True)
            if not bo:
                bad.append(tid)
                continue
            if nxt is None:
                adv = self._advance(g, line, before + "\n")
                nxt = adv[0] if adv is not None else apply_line(gp, g, line + before)
            ok = after_ok.get(after)
            if ok is None:
                # a token spanning more lines goes on from the same next state
                ok = after_ok[after] = (self._advance(nxt, "", after) is not None if "\n" in after
                                        else line_ok(gp, nxt, after, False))
            if not ok:
                bad.append(tid)
        return bad

    # -- TokenMatcher -------------------------------------------------------------

    def fill_next_token_bitmask(self, bitmask: torch.Tensor, index: int = 0) -> None:
        """Write the allowed-token set for the next position into row ``index``.

        Three paths, all equal to ``fill_reference``: inside fixed or finite text
        whose tokens cannot run past it, the prefix tokens of the allowed texts (no
        xgrammar call: every prefix of an allowed text is grammatical); elsewhere
        xgrammar's row for the position's lexical class (cached per compiled
        grammar, ``lexclass``) narrowed by the graph layer; and, for a position
        with no safe class, the direct computation.
        """
        if self.budget is not None:
            tid = self._forced_token()
            if tid is not None:
                self._fill_one(self._row_view(bitmask, index), tid)
                return
        if self._g.done or self._cache is None:
            self._fill_direct(bitmask, index)
            return
        self._fill_row(self._row_view(bitmask, index), bitmask, index)

    def fill_next_token_row(self, row: np.ndarray) -> None:
        """``fill_next_token_bitmask`` into ``row``, one row of a batch mask as ``uint32``
        words (a view: the batch mask is written). The engine's mask filler uses it."""
        if self.budget is not None:
            tid = self._forced_token()
            if tid is not None:
                self._fill_one(row, tid)
                return
        if self._g.done or self._cache is None:
            self._fill_direct(_tensor_row(row), 0)
            return
        self._fill_row(row, None, 0)

    # -- the budget ---------------------------------------------------------------

    @property
    def tokens_used(self) -> int:
        """Tokens accepted so far (rollbacks subtracted)."""
        return len(self._lens)

    def min_tokens(self) -> int:
        """Tokens that surely close the document from the current position (the
        whole smallest document before the first token)."""
        assert self.budget is not None, "a matcher without a budget"
        if self._g.done:
            return len(self._xm.find_jump_forward_string().encode())
        return self.budget.reserve(self._g, self._line)

    def _fill_one(self, row: np.ndarray, tid: int) -> None:
        row.fill(0)
        row[tid >> 5] = np.uint32(1 << (tid & 31))
        if self.verify:
            ref = self._reference_row()
            if not (int(ref[tid >> 5]) >> (tid & 31)) & 1:
                raise RuntimeError(f"forced closing token {tid} is not allowed after {self._line!r}")

    def _reference_row(self) -> np.ndarray:
        import xgrammar as xgr

        buf = xgr.allocate_token_bitmask(1, self._vocab.info.vocab_size)
        attempts = self.masked_tool_attempts
        self.fill_reference(buf, 0)
        self.masked_tool_attempts = attempts
        return buf[0].numpy().view(np.uint32).copy()

    def _forced_token(self) -> int | None:
        """The one token the budget allows next, or ``None`` while it allows the
        grammar's whole mask (budget.py)."""
        b = self.budget
        assert b is not None
        used = len(self._lens)
        f = self._forced
        if f is not None:
            k = used - f[0]
            if 0 <= k < len(f[1]):
                return f[1][k]
            self._forced = None
        left = b.limit - used
        if self._g.done:
            rest = self._xm.find_jump_forward_string().encode().decode("latin-1")
            if not rest or self._xm.is_completed():
                return None
            text = rest
        else:
            room_bytes = None if b.max_bytes is None else b.max_bytes - self._bytes
            quick = b.line_start_reserve(self._g) + 2 * b.margin + len(self._line) + 16
            if left >= quick and (room_bytes is None or room_bytes >= b.byte_margin + 512
                                  + 96 * self._gp.max_nodes + 2 * len(self._line)):
                return None
            reserve = b.reserve(self._g, self._line)
            if left >= reserve + b.margin and (
                    room_bytes is None or room_bytes >= 512 + 96 * self._gp.max_nodes
                    + 2 * len(self._line) + b.byte_margin):
                return None
            text = "".join(b.split(self._g, self._line))
            if room_bytes is not None and left >= reserve + b.margin and room_bytes >= len(text) + b.byte_margin:
                return None
        ids = b.spell(text)[1]
        self._forced = (used, ids)
        self.forced_tokens += 1
        return ids[0]

    def _fill_direct(self, bitmask: torch.Tensor, index: int) -> None:
        """xgrammar's own row once the document is done; without a mask cache, the
        reference."""
        if self._g.done:
            self._xm.fill_next_token_bitmask(bitmask, index)
        else:
            self.fill_reference(bitmask, index)

    def _fill_row(self, row: np.ndarray, bitmask: torch.Tensor | None, index: int) -> None:
        """The fast paths, into ``row``; ``bitmask[index]`` is the same row as a tensor,
        for the paths where xgrammar writes it (made from ``row`` when not given)."""
        fc = self._free_carry
        if fc is not None and fc[0] is self._g and fc[1] == self._line:
            # the string continues in the same lexical class: the same mask, and the
            # same free slot (what ``accept_token`` then asks)
            np.copyto(row, fc[2])
            self._free_row = fc
            self._slot_pre = (self._g, self._line, _FREE)
            if self.verify:
                self._check_against_reference(row)
            return
        sl = self._current_slot()
        if not sl.free and sl.fresh < 0 and not sl.fresh_entry and not self._tool_line():
            closure = self._vocab.prefix_closure(sl.texts)
            if closure is None:
                closure = self._closure_through(sl)
            if closure is not None:
                row.fill(0)
                row[closure[0]] = closure[1]
                if self.verify:
                    self._check_against_reference(row)
                return
        key = mask_key(self._gp, self._g, self._line)
        if key is None:
            self.fill_reference(bitmask if bitmask is not None else _tensor_row(row), index)
            return
        cache = self._cache
        assert cache is not None  # callers go to _fill_direct without one
        entry = cache.get(key)
        if entry is None:
            self._xm.fill_next_token_bitmask(bitmask if bitmask is not None else _tensor_row(row), index)
            entry = cache.put(key, row.copy())
        self._fill_graph(row, entry, sl, key)
        if self.verify:
            self._check_against_reference(row)

    def _tool_line(self) -> bool:
        """A tool-name or argument-key line, where ``masked_tool_attempts`` is counted."""
        return self._g.ctype == "tool_call" and self._line.startswith(("    tool: ", '      "'))

    def _current_slot(self) -> Slot:
        """``slot()`` of the current position, carried over from the previous position
        when the last token only advanced inside finite text."""
        pre = self._slot_pre
        if pre is not None and pre[0] is self._g and pre[1] == self._line:
            return pre[2]  # type: ignore[no-any-return]
        sl = slot(self._gp, self._g, self._line)
        self._slot_pre = (self._g, self._line, sl)
        return sl

    def _carry_slot(self, tok: str) -> None:
        """After ``tok`` was accepted at the position whose slot is cached: when the
        token ended strictly inside finite text, the next slot is what remains of
        the texts it entered."""
        pre = self._slot_pre
        self._slot_pre = None
        if pre is None or "\n" in tok:
            return
        g, line, sl = pre
        if sl.free or sl.fresh >= 0 or sl.fresh_entry or line + tok != self._line or g is not self._g:
            return
        n = len(tok)
        if any(a == tok for a in sl.texts):
            return
        rem = tuple(a[n:] for a in sl.texts if a.startswith(tok))
        if rem:
            self._slot_pre = (self._g, self._line, Slot(False, rem))

    def fill_reference(self, bitmask: torch.Tensor, index: int = 0) -> None:
        """The mask computed directly (xgrammar's row, then the graph layer): the
        definition ``fill_next_token_bitmask`` must equal, and its fallback."""
        self._xm.fill_next_token_bitmask(bitmask, index)
        if self._g.done:
            return
        row = bitmask[index].numpy().view(np.uint32)
        v = self._vocab
        sl = slot(self._gp, self._g, self._line)
        if sl.free:
            # a `{` is only ever the start of `{{ name }}`: context-free per token here
            names = template_vars(self._gp, self._g, self._line)
            np.bitwise_and(row, ~(v.brace_bits & ~v.brace_ok_bits(names)), out=row)
            cand = v.ids_in(row & (v.newline_bits | v.quote_bits if sl.check_quotes
                                   else v.newline_bits | v.multi_quote_bits if self._gp.strict_strings
                                   else v.newline_bits))
            if cand.size:
                bad = self._free_rejects(cand, sl.check_quotes, not sl.close_check)
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
                if a == sl.fresh_entry and fresh_tail(v.texts[tid][len(a):]) or self._ok(int(tid)):
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
            # past the graph part (the stop token): still one step to roll back
            if not self._xm.accept_token(token_id):
                return False
            self._push_step()
            n = len(self._vocab.texts[token_id]) if token_id < len(self._vocab.texts) else 0
            self._lens.append(n)
            self._bytes += n
            return True
        tok = self._vocab.texts[token_id] if 0 <= token_id < len(self._vocab.texts) else ""
        nxt = self._advance_known(tok) if tok else None
        if nxt is None:
            return False
        if not self._xm.accept_token(token_id):
            return False
        fr = self._free_row
        keep = (fr is not None and fr[0] is self._g and fr[1] == self._line and nxt[0] is self._g
                and _keeps_string_class(tok))
        self._push_step()
        self._g, self._line = nxt
        self._lens.append(len(tok))
        self._bytes += len(tok)
        self._free_carry = (nxt[0], nxt[1], fr[2]) if keep and fr is not None else None
        self._free_row = None
        self._carry_slot(tok)
        return True

    def _advance_known(self, tok: str) -> tuple[GraphState, str] | None:
        """``_advance`` from the current position, without re-checking the line when
        the slot computed for this position already decides it: a token inside one
        of a finite slot's texts, a token without a brace or a newline in a free
        field (whose line check looks at templates only), or id characters that
        keep a fresh id shorter than MAX_ID."""
        pre = self._slot_pre
        if pre is not None and "\n" not in tok and pre[0] is self._g and pre[1] == self._line:
            sl = pre[2]
            if sl.free:
                if not sl.check_quotes and "{" not in tok and (
                        tok.count('"') < 2 or not self._gp.strict_strings):
                    return self._g, self._line + tok
            elif sl.fresh >= 0:
                # id characters that keep a fresh id below MAX_ID: it can still become
                # an unused id (the mask lets such runs through wholesale)
                if (tok and set(tok) <= _ID_CHARS and sl.fresh + len(tok) < MAX_ID
                        and (sl.fresh > 0 or tok[0] in _LETTERS)):
                    return self._g, self._line + tok
            elif not sl.fresh_entry and any(a.startswith(tok) for a in sl.texts):
                return self._g, self._line + tok
        return self._advance(self._g, self._line, tok)

    def accept_string(self, text: str) -> bool:
        """Advance by ``text`` (for jump-forward); False and no change if not allowed."""
        tok = text.encode().decode("latin-1")
        nxt = self._advance(self._g, self._line, tok) if not self._g.done else (self._g, "")
        if nxt is None or not self._xm.accept_string(text):
            return False
        self._push_step()  # the whole string is one step, for xgrammar too
        self._lens.append(len(tok))
        self._bytes += len(tok)
        self._slot_pre = self._free_row = self._free_carry = None
        self._g, self._line = nxt
        return True

    def rollback(self, num_tokens: int) -> None:
        """Undo the last ``num_tokens`` accepted steps (a token, or a string given to
        ``accept_string``), in O(``num_tokens``).

        Raises:
            ValueError: more steps than were accepted since the start (nothing
                is changed).
        """
        if num_tokens <= 0:
            return
        if num_tokens > len(self._history):
            raise ValueError(f"cannot rollback {num_tokens} steps: only "
                             f"{len(self._history)} were accepted")
        self._xm.rollback(num_tokens)
        self._g, self._line = self._history[-num_tokens]
        del self._history[-num_tokens:]
        # the carried caches are checked against the position before use, but a
        # rolled-back position is entered fresh (restoring them measured no faster)
        self._slot_pre = self._free_row = self._free_carry = None
        for _ in range(min(num_tokens, len(self._lens))):
            self._bytes -= self._lens.pop()

    def find_jump_forward_string(self) -> str:
        """Text every allowed continuation starts with: xgrammar's forced text, extended
        by the graph layer when it allows exactly one continuation."""
        s = self._xm.find_jump_forward_string()
        if self.budget is not None and not self._jump_fits(s):
            return ""
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

    def _jump_fits(self, s: str) -> bool:
        """Whether the budget lets the engine take the forced text ``s`` without a
        mask (each of its tokens could otherwise cost reserve it does not check)."""
        b = self.budget
        assert b is not None
        if self._forced_token() is not None:
            return False
        if self._g.done or not s:
            return True
        nxt = self._advance(self._g, self._line, s.encode().decode("latin-1"))
        if nxt is None:
            return False
        n = len(s.encode())
        left = b.limit - len(self._lens) - n
        if nxt[0].done:
            return left >= len(FENCE)  # only the closing fence is left
        room = None if b.max_bytes is None else b.max_bytes - self._bytes - n
        return left >= b.reserve(nxt[0], nxt[1]) + b.margin and (
            room is None or room >= len("".join(b.split(nxt[0], nxt[1]))) + b.byte_margin)

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
        self._slot_pre = self._free_row = self._free_carry = None
        self.masked_tool_attempts = 0
        self._lens.clear()
        self._bytes = 0
        self._forced = None
        self.forced_tokens = 0
